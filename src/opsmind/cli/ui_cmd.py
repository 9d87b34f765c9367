"""``opsmind ui screenshots``: a PNG of every dashboard page, taken from a running demo in a real browser.

It starts ``opsmind demo`` as a subprocess (a temporary data folder and ``--auth-file`` with one operator,
the first fault after a few seconds, no classifier training), waits until the demo has something to show
on every page (an incident, a scaling decision, an audit entry; preferably a remediation awaiting
approval), then drives Debian's Chromium through Playwright at 1440x900: the login page, then signed in as
the operator the overview, a service (the first incident's), the incidents, that incident, scaling and
the audit log. Each page is shot once its content is in (its charts drawn, its rows listed, live).
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from opsmind.cli.demo_process import DemoError, DemoProcess, launch_demo
from opsmind.cli.options import finite

ui_app = typer.Typer(no_args_is_help=True, help="The dashboard: screenshots of its pages.")
console = Console(stderr=True)

VIEWPORT = {"width": 1440, "height": 900}
OPERATOR = "operator"
START_TIMEOUT_S = 120.0
PAGE_TIMEOUT_MS = 30_000
PROPOSAL_GRACE_S = 90.0
"""How long, once everything else is there, to wait for a remediation awaiting approval (optional)."""
CHARTS_DRAWN = """() => {
  const figs = [...document.querySelectorAll("figure[data-testid^='chart-']")];
  return figs.length > 0 && figs.every((f) => Number(f.dataset.drawnPoints || 0) > 0);
}"""


class ScreenshotError(Exception):
    """Something the user must fix (a message to print) or the demo failing."""


@dataclass
class Demo(DemoProcess):
    """The demo with its one operator signed in."""

    password: str = ""
    token: str = ""

    def get(self, path: str, **params: Any) -> Any:
        import httpx

        r = httpx.get(
            self.url + path, params=params, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        r.raise_for_status()
        return r.json()


@dataclass
class World:
    """What the pages will show: the incident and service to open."""

    incident: dict[str, Any]
    service: str
    notes: list[str] = field(default_factory=list)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(directory: Path, port: int, fault_after_s: float) -> Demo:
    """``opsmind demo`` on ``port`` with one operator, signed in; returns once its API and page answer."""
    import httpx

    password = secrets.token_urlsafe(12)
    started = launch_demo(
        directory, {OPERATOR: {"password": password, "role": "operator"}}, port, fault_after_s
    )
    demo = Demo(started.url, started.proc, started.log, password)
    demo.wait_ready(START_TIMEOUT_S)
    try:
        r = httpx.post(
            f"{demo.url}/api/v1/auth/login",
            json={"username": OPERATOR, "password": demo.password},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        demo.stop()
        raise ScreenshotError(f"the demo does not answer: {exc!r}\n{demo.tail()}") from exc
    if r.status_code != 200:
        demo.stop()
        raise ScreenshotError(f"cannot sign in to the demo: {r.status_code} {r.text[:200]}")
    demo.token = r.json()["token"]
    return demo


def _slo_status(demo: Demo) -> bool:
    """Whether a followed service's forecast carries its SLO status yet (the overview's SLO table is
    empty before the first prediction step)."""
    import httpx

    for followed in demo.get("/api/v1/capacity"):
        try:
            if demo.get(f"/api/v1/forecasts/{followed['service']}").get("slo"):
                return True
        except httpx.HTTPStatusError:  # 404: no forecast for it yet
            continue
    return False


def wait_for_world(demo: Demo, timeout_s: float) -> World:
    """Until the demo has an incident, a scaling decision, an audit entry and an SLO status; then, for a
    while, a remediation awaiting approval, whose incident is preferred (its page then shows approve /
    reject)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    missing: list[str] = []
    while time.monotonic() < deadline:
        if demo.proc.poll() is not None:
            raise ScreenshotError(f"the demo exited with {demo.proc.returncode}:\n{demo.tail()}")
        try:
            incidents = demo.get("/api/v1/incidents", limit=200)
            decided = [s for s in demo.get("/api/v1/scaling") if s.get("decision")]
            audit = demo.get("/api/v1/audit", limit=1)
            slo = _slo_status(demo)
        except httpx.HTTPError as exc:  # still catching up its hour of history: slow to answer
            missing = [f"answer ({exc!r})"]
            time.sleep(3)
            continue
        missing = [
            what
            for what, have in (
                ("an incident", incidents),
                ("a scaling decision", decided),
                ("an audit entry", audit),
                ("SLO status", slo),
            )
            if not have
        ]
        if not missing:
            break
        time.sleep(3)
    else:
        raise ScreenshotError(f"after {timeout_s:.0f} s the demo still has no {', no '.join(missing)}")
    notes: list[str] = []
    chosen: dict[str, Any] | None = None
    grace = min(deadline, time.monotonic() + PROPOSAL_GRACE_S)
    while chosen is None and time.monotonic() < grace:
        try:
            for r in demo.get("/api/v1/remediations", state="proposed"):
                inc = demo.get(f"/api/v1/incidents/{r['incident_id']}") if r.get("incident_id") else None
                if inc is not None and inc["status"] != "resolved":
                    chosen = inc
                    break
        except httpx.HTTPError:
            pass
        if chosen is None:
            time.sleep(3)
    if chosen is None:
        notes.append("no open incident had a remediation awaiting approval: no approve button to show")
        incidents = demo.get("/api/v1/incidents", limit=200)
        # An open anomaly incident, else any open one, else the latest.
        ranked = sorted(incidents, key=lambda i: (i["status"] == "resolved", i.get("type") != "anomaly"))
        chosen = ranked[0]
    return World(chosen, str(chosen.get("service") or "gateway"), notes)


@dataclass
class Shot:
    name: str
    route: str
    ready: Callable[[Any], None]


def shots(world: World) -> list[Shot]:
    def visible(testid: str) -> Callable[[Any], None]:
        """The first element whose test id starts with ``testid`` is shown."""
        return lambda page: page.locator(f"[data-testid^='{testid}']").first.wait_for(timeout=PAGE_TIMEOUT_MS)

    def charts(testid: str) -> Callable[[Any], None]:
        """That, and every chart on the page has drawn."""

        def ready(page: Any) -> None:
            visible(testid)(page)
            page.wait_for_function(CHARTS_DRAWN, timeout=PAGE_TIMEOUT_MS)

        return ready

    inc = str(world.incident["id"])
    return [
        Shot("overview", "overview", visible(f"service-node-{world.service}")),
        Shot("service", f"service/{world.service}", charts("health-score")),
        Shot("incidents", "incidents", visible(f"incident-row-{inc}")),
        Shot("incident", f"incident/{inc}", visible("incident-head")),
        Shot("scaling", "scaling", charts("scaling-")),
        Shot("audit", "audit", visible("audit-row")),
    ]


def take(browser: Any, demo: Demo, world: World, out: Path) -> list[str]:
    """Write every page's PNG into ``out``; returns what looked wrong on the pages (script errors, an
    error banner), to report."""
    problems: list[str] = []
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"script error on {page.url}: {exc}"))
    try:
        page.goto(f"{demo.url}/#/login")
        page.get_by_test_id("login-username").wait_for(timeout=PAGE_TIMEOUT_MS)
        _shoot(page, out / "login.png", problems)
        page.get_by_test_id("login-username").fill(OPERATOR)
        page.get_by_test_id("login-password").fill(demo.password)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("whoami").filter(has_text=OPERATOR).wait_for(timeout=PAGE_TIMEOUT_MS)
        for shot in shots(world):
            page.goto(f"{demo.url}/#/{shot.route}")
            try:
                shot.ready(page)
                page.get_by_test_id("live-status").filter(has_text="live").wait_for(timeout=PAGE_TIMEOUT_MS)
            except Exception as exc:  # still shoot it: the picture shows what went wrong
                problems.append(f"#/{shot.route} did not finish loading: {str(exc).splitlines()[0]}")
            page.wait_for_load_state("networkidle")
            _shoot(page, out / f"{shot.name}.png", problems)
    finally:
        context.close()
    return problems


def _shoot(page: Any, path: Path, problems: list[str]) -> None:
    page.wait_for_timeout(300)  # the charts' and the map's last animation frame
    banner = page.get_by_test_id("error-banner")
    if banner.is_visible():
        problems.append(f"{path.name}: error banner: {banner.inner_text().strip()}")
    page.screenshot(path=str(path), full_page=False)
    console.print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


@ui_app.command("screenshots")
def screenshots(
    out: Path = typer.Option(Path("docs/screenshots"), help="folder the PNGs are written to"),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="port of the demo started for them (default: a free one)"
    ),
    browser: Path = typer.Option(Path("/usr/bin/chromium"), help="the Chromium Playwright drives"),
    timeout: float = typer.Option(
        300.0,
        min=10,
        callback=finite,
        help="seconds to wait for an incident, a scaling decision, an audit entry and an SLO status",
    ),
) -> None:
    """Start the demo and write a PNG of every dashboard page (1440x900): login, overview, service,
    incidents, incident, scaling, audit."""
    from opsmind.bench.ui import UiBenchError, check_browser

    if out.exists() and not out.is_dir():
        console.print(f"[red]error:[/red] --out {out}: not a folder")
        raise typer.Exit(2)
    if port is not None and not _port_free(port):
        console.print(f"[red]error:[/red] --port {port}: already in use on 127.0.0.1; choose another")
        raise typer.Exit(2)
    try:
        executable = check_browser(browser)
    except UiBenchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="opsmind-screenshots-") as tmp:
        console.print("starting the demo ...")
        try:
            demo = start_demo(Path(tmp), port or _free_port(), fault_after_s=5.0)
        except (ScreenshotError, DemoError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        try:
            console.print("waiting for an incident, a scaling decision, an audit entry and an SLO status ...")
            world = wait_for_world(demo, timeout)
            with sync_playwright() as pw:
                b = pw.chromium.launch(executable_path=executable)
                try:
                    problems = take(b, demo, world, out)
                finally:
                    b.close()
        except ScreenshotError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        finally:
            demo.stop()
    for note in world.notes + problems:
        console.print(f"[yellow]note:[/yellow] {note}")
