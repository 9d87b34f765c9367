"""The ``opsmind`` command line: run the engine, replay files, check configuration, demo, benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from opsmind.cli.auth_cmd import tokens_app, users_app
from opsmind.cli.options import finite
from opsmind.cli.rca_cmd import rca_app
from opsmind.cli.ui_cmd import ui_app
from opsmind.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from opsmind.cli.demo_fleet import SimWorld

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="OpsMind: an open-source AI operations engine."
)
config_app = typer.Typer(no_args_is_help=True, help="Configuration commands.")
bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks: print a table and write it to docs/benchmarks/."
)
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
app.add_typer(rca_app, name="rca")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(ui_app, name="ui")
console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


def _load(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _describe(exc: BaseException) -> str:
    """One line for an error the command's input or environment caused (a file, a database, a setting)."""
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}"
    if isinstance(exc, sqlite3.Error):
        return f"database (storage.path): {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


# What a user's input or machine causes, reported in one line instead of a traceback (OPSMIND_TRACEBACK=1
# shows the traceback). Anything else is a bug of ours and keeps its traceback.
USER_ERRORS = (ConfigError, OSError, sqlite3.Error, UnicodeDecodeError)


def main(argv: list[str] | None = None) -> None:
    """The ``opsmind`` command (the console script and ``python -m opsmind``)."""
    try:
        app(args=argv, prog_name="opsmind")
    except USER_ERRORS as exc:
        if os.environ.get("OPSMIND_TRACEBACK"):
            raise
        console.print(f"[red]error[/red]: {escape(_describe(exc))}")
        raise SystemExit(2) from None


def _check_port_free(host: str, port: int, option: str = "api.port or OPSMIND_API__PORT") -> None:
    """Refuse to start, naming the ``option`` to change, when the API's address is taken or not ours."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            console.print(
                f"[red]cannot listen on {host}:{port}[/red]: {exc.strerror or exc} "
                f"(choose another address: {option})"
            )
            raise typer.Exit(2) from exc


def check_storage_path(settings: Settings) -> None:
    """The SQLite database at ``storage.path`` opened read-only when it exists (sqlite3.Error naming the
    file when it is not one), or its folder checked for writing (ConfigError): SQLite's own "unable to
    open database file" names neither."""
    path = settings.storage.path
    if settings.storage.backend != "sqlite" or path == ":memory:":
        return
    db = Path(path)
    if db.is_dir():
        raise ConfigError(f"storage.path: {path} is a folder; name the database file in it")
    if db.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as exc:
            raise ConfigError(f"storage.path: {path} is not a database OpsMind can open ({exc})") from exc
    elif not os.access(db.parent if str(db.parent) else Path("."), os.W_OK):
        raise ConfigError(f"storage.path: cannot create {path} (its folder is missing or not writable)")


def preflight(settings: Settings) -> None:
    """What ``opsmind run`` would refuse at start, found without starting: the engine is built once on an
    in-memory database (it loads the runbooks, the classifier, the users file, the prices and the command
    allow-list, raising ConfigError), and the SQLite database at ``storage.path`` is opened read-only when
    it exists (sqlite3.Error when it is not one) or its folder checked for writing; a PostgreSQL store
    (which keeps the users and tokens too, so ``storage.path`` is not used) or a Redis bus is connected
    to and left as it is (ConnectionError when it cannot be reached)."""
    from opsmind.engine import Engine

    check_storage_path(settings)
    if settings.storage.backend == "postgres":
        from opsmind.store.backends import check_reachable

        check_reachable(settings.storage)
    if settings.bus.backend == "redis":
        from opsmind.bus.backends import check_reachable as check_bus

        check_bus(settings.bus)
    # Built on embedded backends: the check creates nothing on a server.
    memory = settings.storage.model_copy(update={"path": ":memory:", "backend": "sqlite"})
    bus = settings.bus.model_copy(update={"backend": "memory"})
    engine = Engine(settings.model_copy(update={"storage": memory, "bus": bus}))
    engine.store.close()
    engine.credentials.close()


def _check_url(url: str) -> None:
    """Refuse a ``--url`` that is not an http(s) address with a host (``localhost:8080`` was taken for a
    URL of scheme "localhost" and failed later as unreachable)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        console.print(f"[red]invalid --url {escape(repr(url))}[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        console.print(f"[red]invalid --url {escape(repr(url))}[/red]: expected http://host:port")
        raise typer.Exit(2)


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` the report cannot be written to before a run of minutes, not after it."""
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a"):  # append mode: an existing report is not touched
            pass
        if not existed:
            out.unlink()
    except OSError as exc:
        why = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        console.print(f"[red]--out {escape(str(out))}: cannot write ({escape(why)})[/red]")
        raise typer.Exit(2) from exc


def _serve(
    settings: Settings,
    demo: tuple[float, float, float] | None = None,
    world: SimWorld | None = None,
    train: tuple[int, Path | None] | None = None,
) -> None:
    """Run the engine and its API; with ``demo`` (fault after, every, for), beside the simulated fleet
    ``world`` (a new one when None), whose actuator scales what ``settings.scale`` lists as ``simulator``;
    with ``train`` (seeds per fault kind, cache file), the demo's fault classifier is trained meanwhile."""
    import uvicorn

    from opsmind.api.app import create_app
    from opsmind.clock import RealClock
    from opsmind.engine import Engine

    _check_port_free(
        settings.api.host, settings.api.port, "--port" if demo is not None else "api.host, api.port"
    )
    check_storage_path(settings)
    sources = []
    routers = []
    if demo is not None:
        from opsmind.cli.demo_fleet import ClassifierTraining, DemoFleet, SimWorld, inject_router

        clock = RealClock()
        world = world if world is not None else SimWorld(clock)
        engine = Engine(
            settings,
            clock=clock,
            actuators={"simulator": world.scaler(settings.scale)},
            remediators={"simulator": world.remediate},
        )
        fault_after, fault_every, fault_for = demo
        fleet = DemoFleet(
            engine,
            clock,
            fault_after_s=fault_after,
            fault_every_s=fault_every,
            fault_for_s=fault_for,
            world=world,
        )
        sources.append(fleet.run)
        routers.append(inject_router(fleet))
        if train is not None and train[0] > 0:
            training = ClassifierTraining(engine, train[0], train[1])
            sources.append(training.run)
            console.print(
                f"training the fault classifier in a background process on {training.describe()}; "
                "until it is swapped in, every incident is classified unknown (the log says when)"
            )
    else:
        engine = Engine(settings)  # an unreachable PostgreSQL or Redis: ConnectionError, one line (main)
    fastapi_app = create_app(engine, sources=sources, extra_routers=routers)
    console.print(f"OpsMind API on http://{settings.api.host}:{settings.api.port}/api/v1/health")
    uvicorn.run(fastapi_app, host=settings.api.host, port=settings.api.port, log_level="warning")


@app.command()
def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML configuration file"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the engine and its API with the given configuration."""
    _setup_logging(verbose)
    _serve(_load(config))


demo_app = typer.Typer(help="The demo: the engine watching a simulated fleet.")
app.add_typer(demo_app, name="demo")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    port: int = typer.Option(8080, min=1, max=65535, help="API port on 127.0.0.1"),
    data_dir: Path | None = typer.Option(None, help="where the demo database goes (default: a temp dir)"),
    fault_after: float = typer.Option(
        30.0, min=0, callback=finite, help="seconds until the first injected fault"
    ),
    fault_every: float = typer.Option(300.0, min=10, callback=finite, help="seconds between injected faults"),
    auth_file: Path | None = typer.Option(
        None,
        "--auth-file",
        help="YAML users {name: {password, role}}; default: admin, operator and viewer with random "
        "passwords printed once",
    ),
    train_seeds: int = typer.Option(
        4,
        min=0,
        help="simulated incidents per fault kind the fault classifier is trained on in the background "
        "(the benchmark's training seeds); 0: no classifier",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the engine on embedded defaults watching the default simulated fleet (11 services) at real
    time; a fault is injected after 30 s and every 5 minutes. OpsMind heals it (low-risk runbooks run on
    their own, riskier ones wait for an operator's approval in the dashboard); a simulated operator
    steps in later only if the fault is still there. Access control is on."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    _check_port_free("127.0.0.1", port, "--port")  # before anything is created or printed
    directory = data_dir or Path(tempfile.mkdtemp(prefix="opsmind-demo-"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        settings, world = _demo_settings(directory, port, auth_file)
    except BaseException:  # a bad --auth-file, --data-dir...: nothing of this run is left behind
        if data_dir is None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    from opsmind.cli.demo_fleet import SCALED

    # The simulated operator waits until shortly before the next fault, so OpsMind's own remediation
    # (detection, a runbook, its verification) comes first and is what one sees.
    operator_after = max(min(150.0, fault_every / 2), fault_every - 30.0)
    console.print(f"demo data in {directory}; try: curl http://127.0.0.1:{port}/api/v1/incidents")
    console.print(
        f"scaling {' and '.join(SCALED)} predictively through the simulator's actuator: applied to the "
        f"simulation, not a dry run (opsmind run keeps scaling off); try: curl http://127.0.0.1:{port}"
        "/api/v1/scaling"
    )
    console.print(
        "healing on: low-risk runbooks act through the simulator, medium- and high-risk ones wait for "
        f"approval (GET /api/v1/remediations?state=proposed); a simulated operator remedies a fault "
        f"{operator_after:.0f} s after it started, only if it is still there"
    )
    _serve(
        settings,
        demo=(fault_after, fault_every, operator_after),
        world=world,
        train=(train_seeds, directory / f"fault_classifier-{train_seeds}seeds.pkl"),
    )


def _demo_settings(directory: Path, port: int, auth_file: Path | None) -> tuple[Settings, SimWorld]:
    """The demo's settings (its database in ``directory``, access control on) and its simulated world."""
    from opsmind.cli.demo_fleet import SimWorld
    from opsmind.clock import RealClock
    from opsmind.decide.prices import load_prices

    settings = _load(None).model_copy(deep=True)
    settings.storage.path = str(directory / "opsmind.db")
    settings.api.port = port
    settings.incidents.resolve_after_s = 120
    settings.incidents.check_interval_s = 5
    # Healing on, acting: low-risk runbooks run by themselves, medium and high ones wait for a person.
    settings.heal = settings.heal.model_copy(
        update={"enabled": True, "mode": "on", "actuator": "simulator", "approval_above_risk": "low"}
    )
    _demo_auth(settings, auth_file)
    world = SimWorld(RealClock())
    return world.configure(settings, load_prices(settings.scale.prices)), world


DEMO_ROLES = ("admin", "operator", "viewer")


def _demo_auth(settings: Settings, auth_file: Path | None) -> None:
    """Turn access control on for the demo: the users of ``auth_file``, else one user per role with a
    random password, stored (hashed) in the demo's credential store and printed once."""
    import secrets

    from opsmind.config import AuthSettings, read_users_file
    from opsmind.store.backends import open_credentials

    if auth_file is not None:
        try:
            users = read_users_file(auth_file)
        except ConfigError as exc:
            console.print(f"[red]--auth-file[/red]: {escape(str(exc))}")
            raise typer.Exit(2) from exc
        settings.api.auth = AuthSettings(enabled=True, users_file=str(auth_file))
        console.print(f"access control on: {len(users)} users from {auth_file}")
        return
    import time

    passwords = {role: secrets.token_urlsafe(12) for role in DEMO_ROLES}
    with open_credentials(settings.storage) as store:
        for role, password in passwords.items():
            store.set_user(role, password, role, time.time())
    settings.api.auth = AuthSettings(enabled=True)
    shown = ", ".join(f"{role} / {pw}" for role, pw in passwords.items())
    console.print(f"access control on; users (name / password, shown once): {shown}")


@demo_app.command("inject")
def demo_inject(
    kind: str = typer.Argument(..., help="fault kind, e.g. bad_deployment (see docs/SCENARIOS.md)"),
    service: str | None = typer.Option(None, help="target service"),
    node: str | None = typer.Option(None, help="target node (node_failure, cpu_saturation)"),
    zone: str | None = typer.Option(None, help="target zone (node_failure)"),
    param: list[str] = typer.Option([], "--param", "-p", help="fault parameter k=v (repeatable)"),
    url: str = typer.Option("http://127.0.0.1:8080", help="the running demo"),
    token: str | None = typer.Option(
        None, envvar="OPSMIND_TOKEN", help="an operator's API token (POST /api/v1/auth/login)"
    ),
) -> None:
    """Inject a fault into a running demo by hand."""
    import httpx

    params: dict[str, float | str] = {}
    for item in param:
        k, sep, v = item.partition("=")
        if not sep or not k:
            console.print(f"[red]invalid --param {escape(repr(item))}[/red]: expected k=v")
            raise typer.Exit(2)
        try:
            number = float(v)
        except ValueError:
            params[k] = v
            continue
        if not math.isfinite(number):
            console.print(f"[red]invalid --param {escape(repr(item))}[/red]: a finite number")
            raise typer.Exit(2)
        params[k] = number
    _check_url(url)
    body = {"kind": kind, "service": service, "node": node, "zone": zone, "params": params}
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(f"{url}/api/v1/demo/faults", json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the demo at {escape(url)}[/red]: {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if r.status_code != 200:
        detail = (
            r.json().get("detail", r.text)
            if r.headers.get("content-type", "").startswith("application/")
            else r.text
        )
        console.print(f"[red]refused (HTTP {r.status_code})[/red]: {detail}")
        raise typer.Exit(2)
    console.print(f"injected {r.json()}")


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="YAML configuration file")) -> None:
    """Validate a configuration file (with OPSMIND_* environment overrides applied), and what the engine
    loads from it at start: runbooks, classifier, users file, price table, command allow-list, the
    database at storage.path."""
    settings = _load(file)
    try:
        preflight(settings)
    except USER_ERRORS as exc:
        console.print(f"[red]{escape(str(file))}: {escape(_describe(exc))}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"[green]{file}: valid[/green] (storage {_storage_name(settings)}, bus {settings.bus.backend}, "
        f"API {settings.api.host}:{settings.api.port}, {len(settings.scrape)} scrape targets, "
        f"{len(settings.notify.webhooks)} webhooks)"
    )


def _storage_name(settings: Settings) -> str:
    """The store in a message, never with the DSN's password."""
    st = settings.storage
    return f"postgres, schema {st.pg_schema}" if st.backend == "postgres" else st.path


@app.command()
def replay(
    file: Path = typer.Argument(..., help="CSV (timestamp,value[,labels]) or NDJSON file"),
    metric: str = typer.Option("replayed_value", help="metric name for CSV rows"),
    label: list[str] = typer.Option([], "--label", "-l", help="label for CSV rows, k=v (repeatable)"),
    url: str = typer.Option("http://127.0.0.1:8080", help="OpsMind API to push to"),
    speed: float = typer.Option(0.0, help="time acceleration; 0 replays as fast as possible"),
    align_now: bool = typer.Option(False, help="shift timestamps so the first point is now"),
    batch_size: int = typer.Option(1000, min=1),
    token: str | None = typer.Option(
        None, envvar="OPSMIND_TOKEN", help="an API token with the operator role, when access control is on"
    ),
) -> None:
    """Replay a file into a running OpsMind through its JSON push API."""
    from opsmind.cli.replay_cmd import run_replay

    labels: dict[str, str] = {}
    for item in label:
        k, sep, v = item.partition("=")
        if not sep or not k:
            console.print(f"[red]invalid --label {escape(repr(item))}[/red]: expected k=v")
            raise typer.Exit(2)
        labels[k] = v
    if not math.isfinite(speed) or speed < 0:
        console.print(f"[red]invalid --speed {speed}[/red]: a finite number >= 0 (0: as fast as possible)")
        raise typer.Exit(2)
    _check_url(url)
    if not file.is_file():
        console.print(f"[red]{escape(str(file))}: {'a directory' if file.is_dir() else 'no such file'}[/red]")
        raise typer.Exit(2)
    code = asyncio.run(
        run_replay(file, metric, labels, url, speed or None, align_now, batch_size, console, token)
    )
    raise typer.Exit(code)


@app.command()
def detect(
    file: Path = typer.Argument(..., help="CSV of timestamp,value rows (a header row is optional)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write here instead of standard output"),
) -> None:
    """Write the anomaly probability of every row of a timestamp,value CSV (scored online)."""
    from opsmind.cli.detect_cmd import DetectFileError, score_file

    if out is not None:
        _check_out(out)  # before scoring, which takes minutes for a large file

    try:
        scored = score_file(file)
    except DetectFileError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    if out is None:
        print(scored.text, end="")
    else:
        try:
            out.write_text(scored.text)
        except OSError as exc:
            console.print(f"[red]--out {escape(str(out))}: cannot write ({exc.strerror or exc})[/red]")
            raise typer.Exit(2) from exc
    console.print(escape(scored.summary()))


sim_app = typer.Typer(no_args_is_help=True, help="The fleet simulator.")
app.add_typer(sim_app, name="sim")


@sim_app.command("run")
def sim_run(
    scenario: Path = typer.Argument(..., help="scenario YAML (see docs/SCENARIOS.md)"),
    speed: str = typer.Option("max", help="'max' (as fast as possible) or a speed-up factor (1 = real time)"),
    out: Path = typer.Option(Path("sim-out"), help="directory for metrics, events and ground truth"),
) -> None:
    """Run a scenario; write metrics.csv.gz, events.ndjson and ground_truth.json to --out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from opsmind.sim.load import TraceError
    from opsmind.sim.runner import ScenarioError, load_scenario, run_to_dir

    try:
        factor = None if speed == "max" else float(speed)
        if factor is not None and not (math.isfinite(factor) and factor > 0):  # nan ran at full speed
            raise ValueError
    except ValueError as exc:
        console.print(f"[red]invalid --speed {speed!r}[/red]: use 'max' or a positive number")
        raise typer.Exit(2) from exc
    try:
        sc = load_scenario(scenario)
        with Progress(
            TextColumn(f"simulating {sc.name}"), BarColumn(), TimeRemainingColumn(), console=console
        ) as bar:
            task = bar.add_task("sim", total=sc.duration_s)
            summary = run_to_dir(
                sc, out, factor, scenario.parent, progress=lambda t, total: bar.update(task, completed=t)
            )
    except (ScenarioError, TraceError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"{sc.name}: {summary['steps']} steps, {summary['samples']} samples, {summary['events']} "
        f"events, {summary['faults']} faults in {summary['wall_s']:.1f} s -> {out}"
    )


@bench_app.command("sim")
def bench_sim(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    hours: float = typer.Option(24.0, min=0.1, callback=finite, help="simulated hours per run"),
    out: Path = typer.Option(Path("docs/benchmarks/sim.md"), help="where the table is written"),
) -> None:
    """Simulated seconds per wall second for the default fleet at 5 s resolution, one core."""
    _check_out(out)
    from opsmind.bench.sim import run_sim_benchmark

    run_sim_benchmark(hours=hours, out=out, json_out=json_out, console=console)


@bench_app.command("ingest")
def bench_ingest(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    series: int = typer.Option(100_000, min=1, help="active series for the memory measurement"),
    seconds: float = typer.Option(20.0, min=1, callback=finite, help="duration of the throughput run"),
    out: Path = typer.Option(Path("docs/benchmarks/ingest.md"), help="where the table is written"),
    postgres: str | None = typer.Option(
        None,
        "--postgres",
        help="also run OpsMind on this PostgreSQL (a DSN; a schema per run, dropped after)",
    ),
    redis_url: str | None = typer.Option(
        None,
        "--redis",
        help="with --postgres, carry the bus on this Redis (redis://...; streams deleted after)",
    ),
) -> None:
    """Remote-write throughput (durably stored samples/s on one core) and memory per active series."""
    _check_out(out)
    from opsmind.bench.ingest import SharedBackends, run_ingest_benchmark

    shared = None
    if redis_url and not postgres:
        console.print("[red]--redis needs --postgres (the rows on shared backends store in PostgreSQL)[/red]")
        raise typer.Exit(2)
    if postgres:
        from opsmind.bus.backends import check_reachable as check_bus
        from opsmind.config import BusSettings, StorageSettings
        from opsmind.store.backends import check_reachable

        try:
            check_reachable(StorageSettings(backend="postgres", dsn=postgres))
            if redis_url:
                check_bus(BusSettings(backend="redis", redis_url=redis_url))
        except (ConnectionError, ValueError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from exc
        shared = SharedBackends(postgres, redis_url)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run_ingest_benchmark(
        series=series, seconds=seconds, out=out, json_out=json_out, console=console, shared=shared
    )


@bench_app.command("detect")
def bench_detect(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    series: int = typer.Option(10_000, min=1, help="synthetic series stepped together"),
    points: int = typer.Option(1_000, min=10, help="points per series"),
    river_series: int = typer.Option(50, min=1, help="series river HalfSpaceTrees is timed on"),
    out: Path = typer.Option(Path("docs/benchmarks/detect.md"), help="where the table is written"),
) -> None:
    """Detection ensemble points/s on one core and bytes per series, river HalfSpaceTrees beside it."""
    _check_out(out)
    from opsmind.bench.detect import run_detect_benchmark

    run_detect_benchmark(
        series=series, points=points, out=out, json_out=json_out, console=console, river_series=river_series
    )


@bench_app.command("nab")
def bench_nab(
    data: Path = typer.Option(
        ..., "--data", help="a folder in NAB's layout: data/<category>/*.csv, labels/combined_windows.json"
    ),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the tables"),
    out: Path = typer.Option(Path("docs/benchmarks/nab.md"), help="where the tables are written"),
) -> None:
    """Numenta Anomaly Benchmark score of OpsMind's detector beside the windowed Gaussian and river HST."""
    _check_out(out)
    from opsmind.bench.nab import NabLayoutError, run_nab_benchmark

    try:
        run_nab_benchmark(data=data, out=out, json_out=json_out, console=console)
    except NabLayoutError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("nab-corpus")
def bench_nab_corpus(
    out: Path = typer.Option(..., "--out", help="an empty or new folder for the corpus"),
    traces: Path = typer.Option(
        Path("../shared/datasets/traces"), "--traces", help="the production traces to build it from"
    ),
    seed: int = typer.Option(1, min=0, help="seed of the injected anomalies (tuning used 1, checking 2)"),
) -> None:
    """Write a tuning corpus in NAB's layout: production traces with injected, labelled anomalies."""
    from opsmind.bench.nab_synth import build_corpus
    from opsmind.sim.load import TraceError

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        console.print(f"[red]{escape(str(out))}: not empty or not a folder; give a new or empty folder[/red]")
        raise typer.Exit(2)
    try:
        counts = build_corpus(traces, out, seed)
    except (OSError, TraceError) as exc:  # OSError: also a folder that cannot be created or written
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"{counts['files']} files, {counts['rows']} rows, {counts['anomalies']} labelled anomalies -> {out}"
    )


@bench_app.command("rca")
def bench_rca(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    seeds: int = typer.Option(3, min=1, help="seeds per fault kind and topology (3 gives 108 cases)"),
    out: Path = typer.Option(Path("docs/benchmarks/rca.md"), help="where the table is written"),
) -> None:
    """Root-cause ranking AC@1, AC@3, Avg@5 on simulated fault cases, OpsMind beside NSigma."""
    _check_out(out)
    from opsmind.bench.rca import run_rca_benchmark

    run_rca_benchmark(seeds=seeds, out=out, json_out=json_out, console=console)


@bench_app.command("chaos")
def bench_chaos(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    scenario: list[Path] = typer.Option(
        [], "--scenario", help="scenario file(s) to run instead of the default set"
    ),
    seeds: int = typer.Option(
        5, min=1, help="seeds for the default set (5: 13 kinds x 5 + 5 two-fault + 5 peak)"
    ),
    out: Path = typer.Option(Path("docs/benchmarks/chaos.md"), help="where the table is written"),
    only: list[str] = typer.Option(
        [], "--only", help="keep the scenarios whose name contains this (repeatable), e.g. chaos-two/"
    ),
    loop: str = typer.Option(
        "engine",
        "--loop",
        help="what OpsMind runs in: engine (the real engine in process on a simulated clock, as users run "
        "it) or bench (the benchmark's own loop); the baseline runs in the bench loop either way",
    ),
) -> None:
    """Fault scenarios healed by OpsMind on its own, beside restarting the most anomalous service."""
    _check_out(out)
    from opsmind.bench.chaos import run_chaos_benchmark
    from opsmind.sim.runner import ScenarioError

    try:
        run_chaos_benchmark(
            seeds=seeds,
            scenario_files=scenario,
            out=out,
            json_out=json_out,
            console=console,
            only=only,
            loop=loop,
        )
    except ScenarioError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


NOISE_FIRST_SEED = 1000  # the noise benchmark's reported seeds start here (opsmind.bench.noise.FIRST_SEED)


@bench_app.command("noise")
def bench_noise(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    seeds: int = typer.Option(4, min=1, help="seeds per topology (4 gives 12 runs, 48 faults)"),
    first_seed: int = typer.Option(
        NOISE_FIRST_SEED,
        min=0,
        help="the first scored seed; another one runs seeds never reported (for tuning)",
    ),
    out: Path = typer.Option(Path("docs/benchmarks/noise.md"), help="where the table is written"),
) -> None:
    """Raw per-metric alerts vs incidents on simulated faults: compression, purity, missed, false."""
    _check_out(out)
    from opsmind.bench.noise import run_noise_benchmark

    run_noise_benchmark(seeds=seeds, out=out, json_out=json_out, console=console, first_seed=first_seed)


@bench_app.command("predict")
def bench_predict(
    trace: list[Path] = typer.Option(
        [], "--trace", help="a trace CSV (repeatable); default: NASA, WC98, Crane"
    ),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    horizon: int = typer.Option(15, "--horizon", min=1, help="forecast horizon in minutes"),
    datasets: Path = typer.Option(Path("../shared/datasets/traces"), help="where the default traces are"),
    out: Path = typer.Option(Path("docs/benchmarks/predict.md"), help="where the table is written"),
) -> None:
    """Rolling-origin load forecast MASE on real traces, the forecaster beside seasonal naive."""
    _check_out(out)
    from opsmind.bench.predict import run_predict_benchmark

    try:
        run_predict_benchmark(
            trace, out=out, json_out=json_out, console=console, horizon=horizon, datasets=datasets
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("autoscale")
def bench_autoscale(
    trace: list[Path] = typer.Option(
        [], "--trace", help="a trace CSV (repeatable; timestamp,value); default: NASA, WC98, Crane"
    ),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    startup_s: float = typer.Option(90.0, "--startup-s", min=0, help="pod start-up delay in seconds"),
    days: float = typer.Option(
        0.0, "--days", min=0, help="replay only the first DAYS of each trace (0: all)"
    ),
    datasets: Path = typer.Option(Path("../shared/datasets/traces"), help="where the default traces are"),
    out: Path = typer.Option(Path("docs/benchmarks/autoscale.md"), help="where the tables are written"),
) -> None:
    """The predictive policy against the HPA frontier (targets 10-90 %) on real traffic traces."""
    for name, value in (("--startup-s", startup_s), ("--days", days)):
        if not math.isfinite(value):  # the range check lets inf through; the replay needs whole minutes
            console.print(f"[red]invalid {name} {value}[/red]: must be a finite number")
            raise typer.Exit(2)
    _check_out(out)
    from dataclasses import replace

    from opsmind.bench.autoscale import BenchSettings, run_autoscale_benchmark

    base = BenchSettings()
    settings = replace(base, replay=replace(base.replay, startup_s=startup_s), days=days or None)
    try:
        run_autoscale_benchmark(
            trace, datasets, out=out, json_out=json_out, console=console, settings=settings
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("ui")
def bench_ui(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    events: int = typer.Option(200, min=1, help="live samples timed to the page (the goal needs >= 100)"),
    points: int = typer.Option(10_000, min=10, help="points per golden-signal chart"),
    loads: int = typer.Option(5, min=1, help="first visits of the service page timed (the median counts)"),
    browser: Path = typer.Option(Path("/usr/bin/chromium"), help="the Chromium Playwright drives"),
    out: Path = typer.Option(Path("docs/benchmarks/ui.md"), help="where the table is written"),
) -> None:
    """Dashboard first render (charts of 10,000 points) and live push latency in a real browser."""
    _check_out(out)
    from opsmind.bench.ui import UiBenchError, run_ui_benchmark

    try:
        run_ui_benchmark(points, events, loads, out=out, json_out=json_out, console=console, browser=browser)
    except UiBenchError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
