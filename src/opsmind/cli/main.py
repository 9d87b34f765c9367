"""The ``opsmind`` command line: run the engine, replay files, check configuration, demo, benchmarks."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler

from opsmind.config import ConfigError, Settings, load_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="OpsMind: an open-source AI operations engine."
)
config_app = typer.Typer(no_args_is_help=True, help="Configuration commands.")
bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks: print a table and write it to docs/benchmarks/."
)
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
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
        console.print(f"[red]configuration error[/red]: {exc}")
        raise typer.Exit(2) from exc


def _serve(settings: Settings, extra_source: str | None = None, fault_after_s: float = 30.0) -> None:
    import uvicorn

    from opsmind.api.app import create_app
    from opsmind.engine import Engine

    engine = Engine(settings)
    sources = []
    if extra_source == "demo":
        from opsmind.cli.demo_source import DemoSource

        sources.append(DemoSource(engine, engine.clock, fault_after_s=fault_after_s).run)
    fastapi_app = create_app(engine, sources=sources)
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


@app.command()
def demo(
    port: int = typer.Option(8080, help="API port on 127.0.0.1"),
    data_dir: Path | None = typer.Option(None, help="where the demo database goes (default: a temp dir)"),
    fault_after: float = typer.Option(30.0, min=0, help="seconds until the first injected fault"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the engine on embedded defaults with a demo fleet feeding it; a fault appears after 30 s
    (``--fault-after``) and every 10 minutes after that, on a different service each time."""
    _setup_logging(verbose)
    directory = data_dir or Path(tempfile.mkdtemp(prefix="opsmind-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    settings = _load(None).model_copy(deep=True)
    settings.storage.path = str(directory / "opsmind.db")
    settings.api.port = port
    settings.incidents.resolve_after_s = 120
    settings.incidents.check_interval_s = 5
    console.print(f"demo data in {directory}; try: curl http://127.0.0.1:{port}/api/v1/incidents")
    _serve(settings, extra_source="demo", fault_after_s=fault_after)


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="YAML configuration file")) -> None:
    """Validate a configuration file (with OPSMIND_* environment overrides applied)."""
    settings = _load(file)
    console.print(
        f"[green]{file}: valid[/green] (storage {settings.storage.path}, "
        f"API {settings.api.host}:{settings.api.port}, {len(settings.scrape)} scrape targets, "
        f"{len(settings.notify.webhooks)} webhooks)"
    )


@app.command()
def replay(
    file: Path = typer.Argument(..., help="CSV (timestamp,value[,labels]) or NDJSON file"),
    metric: str = typer.Option("replayed_value", help="metric name for CSV rows"),
    label: list[str] = typer.Option([], "--label", "-l", help="label for CSV rows, k=v (repeatable)"),
    url: str = typer.Option("http://127.0.0.1:8080", help="OpsMind API to push to"),
    speed: float = typer.Option(0.0, help="time acceleration; 0 replays as fast as possible"),
    align_now: bool = typer.Option(False, help="shift timestamps so the first point is now"),
    batch_size: int = typer.Option(1000, min=1),
) -> None:
    """Replay a file into a running OpsMind through its JSON push API."""
    from opsmind.cli.replay_cmd import run_replay

    labels: dict[str, str] = {}
    for item in label:
        k, sep, v = item.partition("=")
        if not sep or not k:
            console.print(f"[red]invalid --label {item!r}[/red]: expected k=v")
            raise typer.Exit(2)
        labels[k] = v
    if not file.is_file():
        console.print(f"[red]{file}: no such file[/red]")
        raise typer.Exit(2)
    code = asyncio.run(run_replay(file, metric, labels, url, speed or None, align_now, batch_size, console))
    raise typer.Exit(code)


@bench_app.command("ingest")
def bench_ingest(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    series: int = typer.Option(100_000, help="active series for the memory measurement"),
    seconds: float = typer.Option(20.0, help="duration of the throughput run"),
    out: Path = typer.Option(Path("docs/benchmarks/ingest.md"), help="where the table is written"),
) -> None:
    """Remote-write throughput (durably stored samples/s on one core) and memory per active series."""
    from opsmind.bench.ingest import run_ingest_benchmark

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run_ingest_benchmark(series=series, seconds=seconds, out=out, json_out=json_out, console=console)
