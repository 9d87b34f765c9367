"""``opsmind bench ui``: the dashboard in a real browser - how fast a service page first draws its charts,
and how soon a live event reaches the page.

A real server (``opsmind run`` in a subprocess on a free loopback port, the default pipeline, access
control on with one operator, pinned to one core) is given one service whose four golden-signal series
(traffic, latency, errors, saturation) hold ``points`` points each (default 10,000, spread over the last
50 minutes so the page's default one-hour window shows them all at raw resolution), ingested through the
JSON push API before the page opens. Debian's Chromium, driven by Playwright (never a browser Playwright
downloads), then opens the service page.

``first_render_ms``: from navigation start (``performance.timeOrigin``) to the moment the last of the page's
charts has drawn all its points - the chart wrapper (``web/src/chart.js``) writes what it drew into
``data-drawn-points`` / ``data-drawn-last`` from uPlot's draw hook, and a ``MutationObserver`` installed
before the page's scripts notes when. Each load is a new browser context (a first visit, nothing cached);
the figure is the median of ``loads`` loads, every load is reported.

``push_latency_ms``: on the last page left open and subscribed (``live``), ``events`` samples are ingested
one every ``EVENT_INTERVAL_S``, turn by turn into the four followed series, each stamped with the wall-clock
time it is sent (its own timestamp). The page notes ``Date.now()`` at the first draw of that chart whose
last drawn timestamp reaches the sample's; the latency is the difference, both clocks being this machine's.
It covers the HTTP ingest (a durable write), the bus, the live hub, the WebSocket, the page's handler and
the chart's draw at the next animation frame. p95 (the figure), p50 and max are over the samples drawn;
those never drawn within ``GRACE_S`` of the last one sent are counted and listed, not dropped silently.

There is no external peer for these figures; the goals of issue 8 are the bar.
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml
from rich.console import Console
from rich.table import Table

from opsmind.bench.procs import Server, free_port, opsmind_argv

CHROMIUM = "/usr/bin/chromium"
SERVICE = "checkout"
OPERATOR = "bench-operator"
# The golden signals' series as the service page picks them (fallback metric names, one series each).
SERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("request_rate", {}),
    ("latency_seconds", {"quantile": "0.95"}),
    ("error_ratio", {}),
    ("cpu_utilisation", {}),
)
SPAN_S = 3000.0
"""History the points cover, ending now: inside the page's default one-hour window, at raw resolution."""
EVENT_INTERVAL_S = 0.1
GRACE_S = 10.0
"""How long after the last event is sent the page may still draw it."""
PAGE_TIMEOUT_MS = 60_000
GOAL_FIRST_RENDER_MS = 1000.0
GOAL_PUSH_P95_MS = 300.0
SESSION_KEY = "opsmind.session"  # web/src/api.js

# Installed before the page's own scripts: signs the tab in (the token the page keeps in sessionStorage)
# and notes every chart draw with its time, relative to navigation start and on the wall clock.
INIT_SCRIPT = """(() => {
  if (location.origin !== %(origin)s) return;
  if (!sessionStorage.getItem(%(key)s)) sessionStorage.setItem(%(key)s, %(session)s);
  const draws = (window.__opsmindDraws = []);
  new MutationObserver((records) => {
    const at = performance.now();
    const wall = Date.now();
    const seen = new Set();
    for (const r of records) {
      const el = r.target;
      if (seen.has(el)) continue;
      seen.add(el);
      draws.push({
        chart: el.dataset.testid || "",
        points: Number(el.dataset.drawnPoints || 0),
        last: el.dataset.drawnLast ? Number(el.dataset.drawnLast) : null,
        at,
        wall,
      });
    }
  }).observe(document, {
    subtree: true,
    attributes: true,
    attributeFilter: ["data-drawn-points", "data-drawn-last"],
  });
})();"""

# Where the time of a visit went: the page's modules run (DOMContentLoaded), its first REST call, and the
# span of its range queries, in ms from navigation start.
BREAKDOWN = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const api = performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/v1/"));
  const q = api.filter((e) => e.name.includes("/api/v1/series/query"));
  return {
    modules_run_ms: nav ? nav.domContentLoadedEventEnd : null,
    first_rest_call_ms: api.length ? Math.min(...api.map((e) => e.startTime)) : null,
    range_queries_from_ms: q.length ? Math.min(...q.map((e) => e.startTime)) : null,
    range_queries_to_ms: q.length ? Math.max(...q.map((e) => e.responseEnd)) : null,
  };
}"""

ALL_DRAWN = """([n, k]) => {
  const figs = [...document.querySelectorAll("figure[data-testid^='chart-']")];
  return figs.length >= k && figs.every((f) => Number(f.dataset.drawnPoints || 0) >= n);
}"""


class UiBenchError(Exception):
    """The benchmark cannot run here (no browser, no playwright, the dashboard not built, ...)."""


@dataclass
class UiResult:
    points_per_chart: int
    charts: int
    first_render_runs_ms: list[float]
    events: int
    latencies_ms: list[float]
    missing: list[int] = field(default_factory=list)
    rejected: int = 0
    browser: str = ""
    last_visit: dict[str, float | None] = field(default_factory=dict)
    settle_s: float | None = None
    load_avg: float | None = None
    """The machine's one-minute load average when the first visit began (other work shares the CPUs)."""

    @property
    def first_render_ms(self) -> float:
        return float(statistics.median(self.first_render_runs_ms))

    def latency(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    def as_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {
            "first_render_ms": r(self.first_render_ms),
            "push_latency_ms": r(self.latency(95)),
            "push_latency_p50_ms": r(self.latency(50)),
            "push_latency_max_ms": r(max(self.latencies_ms) if self.latencies_ms else None),
            "push_events": self.events,
            "push_events_drawn": len(self.latencies_ms),
            "push_events_missing": len(self.missing),
            "push_events_rejected": self.rejected,
            "first_render_runs_ms": [round(v, 1) for v in self.first_render_runs_ms],
            "first_render_max_ms": r(max(self.first_render_runs_ms)),
            "points_per_chart": self.points_per_chart,
            "charts": self.charts,
            "browser": self.browser,
            "last_visit_ms": {k: r(v) for k, v in self.last_visit.items()},
            "server_settle_s": r(self.settle_s),
            "load_avg_1m": r(self.load_avg),
            "goals": {"first_render_ms": GOAL_FIRST_RENDER_MS, "push_latency_ms": GOAL_PUSH_P95_MS},
        }


def check_browser(path: str | Path = CHROMIUM) -> str:
    """The browser's path, or :class:`UiBenchError` saying what to install."""
    p = Path(path)
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise UiBenchError(
            f"no browser at {p}: install Debian's Chromium (apt-get install chromium) or give --browser "
            "(Playwright drives an installed Chromium; it never downloads one)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise UiBenchError(
            "the Python package playwright is missing: pip install -e '.[test]' "
            "(it drives the installed Chromium; no `playwright install` needed)"
        ) from exc
    return str(p)


def machine() -> str:
    """One line about this machine: CPU model and cores, memory, OS, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{model}, {os.cpu_count()} logical CPUs, {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {sys.version.split()[0]}"
    )


def history(points: int, end: float, seed: int = 1) -> list[dict[str, Any]]:
    """The service's four series, ``points`` each, evenly spread over ``SPAN_S`` seconds up to ``end``:
    a daily-ish wave with noise, in the JSON push API's compact form."""
    rng = np.random.default_rng(seed)
    step = SPAN_S / max(1, points - 1)
    ts = end - step * np.arange(points - 1, -1, -1)
    wave = np.sin(np.linspace(0, 3 * math.pi, points))
    shapes = {
        "request_rate": 120 + 30 * wave + rng.normal(0, 4, points),
        "latency_seconds": 0.12 + 0.02 * wave + np.abs(rng.normal(0, 0.01, points)),
        "error_ratio": np.abs(0.004 + rng.normal(0, 0.001, points)),
        "cpu_utilisation": np.clip(0.45 + 0.1 * wave + rng.normal(0, 0.02, points), 0, 1),
    }
    return [
        {
            "metric": metric,
            "labels": {"service": SERVICE, **labels},
            "timestamps": [round(float(t), 3) for t in ts],
            "values": [round(float(v), 6) for v in shapes[metric]],
        }
        for metric, labels in SERIES
    ]


def _config(directory: Path, port: int, password: str) -> Path:
    users = directory / "users.yaml"
    users.write_text(yaml.safe_dump({OPERATOR: {"password": password, "role": "operator"}}))
    cfg = {
        "storage": {"path": str(directory / "bench.db")},
        "api": {"port": port, "auth": {"enabled": True, "users_file": str(users)}},
        "notify": {"log": False},
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _wait_idle(
    srv: Server, timeout_s: float = 300.0, window_s: float = 1.0, busy_s: float = 0.1
) -> float | None:
    """Until the server used less than ``busy_s`` of CPU in ``window_s`` (detection has worked through the
    history): the seconds it took, or None when it was still busy after ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() < start + timeout_s:
        before = srv.cpu_seconds()
        time.sleep(window_s)
        if srv.cpu_seconds() - before < busy_s:
            return time.monotonic() - start
    return None


def _first_render(
    browser: Any, url: str, init: str, points: int, charts: int
) -> tuple[float, dict[str, float | None], Any]:
    """One first visit of the service page: (ms from navigation start to every chart drawn, where the
    time went, the page)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(init)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/#/service/{SERVICE}")
    try:
        page.wait_for_function(ALL_DRAWN, arg=[points, charts], timeout=PAGE_TIMEOUT_MS)
    except Exception as exc:
        drawn = page.evaluate(
            "[...document.querySelectorAll(\"figure[data-testid^='chart-']\")]"
            ".map((f) => [f.dataset.testid, f.dataset.drawnPoints])"
        )
        banner = page.evaluate("document.querySelector(\"[data-testid='error-banner']\")?.innerText || ''")
        context.close()
        raise UiBenchError(
            f"the service page did not draw {charts} charts of {points} points within "
            f"{PAGE_TIMEOUT_MS / 1000:.0f} s (drawn: {drawn}; banner: {banner!r}; errors: {errors})"
        ) from exc
    first: dict[str, float] = page.evaluate(
        """(n) => {
          const first = {};
          for (const d of window.__opsmindDraws) {
            if (d.points >= n && !(d.chart in first)) first[d.chart] = d.at;
          }
          return first;
        }""",
        points,
    )
    if errors:
        context.close()
        raise UiBenchError(f"the page threw: {errors}")
    return max(first.values()), page.evaluate(BREAKDOWN), page


def _push(
    page: Any, url: str, token: str, events: int, console: Console
) -> tuple[list[float], list[int], int]:
    """Send ``events`` samples and time each to its draw: (latencies ms, indices never drawn, rejected)."""
    page.get_by_test_id("live-status").filter(has_text="live").wait_for(timeout=30_000)
    sent: list[tuple[str, float]] = []  # (chart test id, sample timestamp = send time, s)
    rejected: list[int] = []
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for i in range(events):
            wait = start + i * EVENT_INTERVAL_S - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            metric, labels = SERIES[i % len(SERIES)]
            ts = math.floor(time.time() * 1000) / 1000  # never after the moment it is sent
            body = {
                "series": [
                    {
                        "metric": metric,
                        "labels": {"service": SERVICE, **labels},
                        "timestamps": [ts],
                        "values": [float(rng.uniform(0.1, 0.9))],
                    }
                ]
            }
            r = client.post("/api/v1/ingest", json=body)
            if r.status_code != 200:
                rejected.append(i)
            sent.append((f"chart-{metric}", ts))
    last_ts = dict(sent)  # the last sample of each chart
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        drawn = page.evaluate(
            """(want) => Object.entries(want).every(([chart, ts]) =>
                 window.__opsmindDraws.some((d) => d.chart === chart && d.last !== null && d.last >= ts))""",
            last_ts,
        )
        if drawn:
            break
        time.sleep(0.2)
    draws: list[dict[str, Any]] = page.evaluate("window.__opsmindDraws")
    by_chart: dict[str, list[tuple[float, float, float]]] = {}  # chart -> [(at, last drawn ts, wall ms)]
    for d in draws:
        if d["last"] is not None:
            by_chart.setdefault(d["chart"], []).append((d["at"], d["last"], d["wall"]))
    latencies: list[float] = []
    missing: list[int] = []
    for i, (chart, ts) in enumerate(sent):
        hit = next((d for d in sorted(by_chart.get(chart, [])) if d[1] >= ts - 1e-6), None)
        if hit is None or i in rejected:
            missing.append(i)
        else:
            latencies.append(hit[2] - ts * 1000.0)
    if missing:
        console.print(f"[yellow]{len(missing)} of {events} events never drawn: {missing[:20]}[/yellow]")
    return latencies, missing, len(rejected)


def measure(browser_path: str, points: int, events: int, loads: int, console: Console) -> UiResult:
    """Start the server, feed it, and time the page in the browser; see the module docstring."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="opsmind-bench-ui-") as tmp:
        directory = Path(tmp)
        port = free_port()
        password = secrets.token_urlsafe(12)
        url = f"http://127.0.0.1:{port}"
        server = Server(
            opsmind_argv(_config(directory, port, password)),
            url,
            "/api/v1/health",
            core=0,
            log_path=directory / "server.log",
        )
        try:
            srv = server.__enter__()
        except RuntimeError as exc:
            log = (directory / "server.log").read_text(errors="replace")[-2000:]
            raise UiBenchError(f"the server did not start: {exc}\n{log}") from exc
        try:
            page_ok = httpx.get(f"{url}/", timeout=10)
            if page_ok.status_code != 200:
                detail = f"{page_ok.status_code}: {page_ok.text[:200]}"
                raise UiBenchError(f"the dashboard is not served ({detail}); run `make web`")
            login = httpx.post(
                f"{url}/api/v1/auth/login", json={"username": OPERATOR, "password": password}, timeout=10
            )
            if login.status_code != 200:
                raise UiBenchError(f"cannot sign in as {OPERATOR}: {login.status_code} {login.text[:200]}")
            session = login.json()
            token = session["token"]
            console.print(f"ingesting {len(SERIES)} series x {points:,} points for service {SERVICE} ...")
            r = httpx.post(
                f"{url}/api/v1/ingest",
                json={"series": history(points, time.time() - 1.0)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
            if r.status_code != 200 or r.json().get("samples") != points * len(SERIES):
                raise UiBenchError(f"ingest refused: {r.status_code} {r.text[:300]}")
            console.print("waiting for the server to work through the history (detection) ...")
            settle_s = _wait_idle(srv)
            if settle_s is None:
                console.print("[yellow]the server is still busy after 300 s; measuring anyway[/yellow]")
            stored = {**session, "auth": True}
            init = INIT_SCRIPT % {
                "origin": json.dumps(url),
                "key": json.dumps(SESSION_KEY),
                "session": json.dumps(json.dumps(stored)),
            }
            load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            with sync_playwright() as pw:
                try:
                    browser = pw.chromium.launch(executable_path=browser_path)
                except Exception as exc:
                    raise UiBenchError(f"cannot start the browser {browser_path}: {exc}") from exc
                try:
                    runs: list[float] = []
                    page = None
                    for k in range(loads):
                        if page is not None:
                            page.context.close()
                        ms, breakdown, page = _first_render(browser, url, init, points, len(SERIES))
                        runs.append(ms)
                        console.print(f"load {k + 1}/{loads}: every chart drawn after {ms:,.0f} ms")
                    assert page is not None
                    console.print(
                        f"pushing {events} live samples, one every {EVENT_INTERVAL_S * 1000:.0f} ms ..."
                    )
                    latencies, missing, rejected = _push(page, url, token, events, console)
                    version = str(browser.version)
                finally:
                    browser.close()
        finally:
            server.__exit__(None, None, None)
    return UiResult(
        points_per_chart=points,
        charts=len(SERIES),
        first_render_runs_ms=runs,
        events=events,
        latencies_ms=latencies,
        missing=missing,
        rejected=rejected,
        browser=f"Chromium {version}",
        last_visit=breakdown,
        settle_s=settle_s,
        load_avg=load_avg,
    )


def _fmt2(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def rows(res: UiResult) -> list[tuple[str, str, str]]:
    """(measure, value, goal) rows of the table."""
    runs = ", ".join(f"{v:,.0f}" for v in res.first_render_runs_ms)
    drawn = len(res.latencies_ms)
    return [
        (
            f"first_render_ms (median of {len(res.first_render_runs_ms)} first visits)",
            _fmt(res.first_render_ms),
            f"<= {GOAL_FIRST_RENDER_MS:,.0f} ({res.charts} charts x {res.points_per_chart:,} points)",
        ),
        ("first render of each visit, ms", runs, ""),
        ("push_latency_ms (p95)", _fmt(res.latency(95)), f"<= {GOAL_PUSH_P95_MS:,.0f}"),
        ("push latency p50 / max, ms", f"{_fmt(res.latency(50))} / {_fmt(res.latency(100))}", ""),
        (
            "live samples sent / drawn / never drawn",
            f"{res.events} / {drawn} / {len(res.missing)}",
            "none missing",
        ),
    ]


def verdict(ok: bool, full_size: bool) -> str:
    if not full_size:
        return "not measured at the goal's size in this run"
    return "met here" if ok else "not met here"


def render_markdown(res: UiResult, command: str) -> str:
    first_ok = res.first_render_ms <= GOAL_FIRST_RENDER_MS
    p95 = res.latency(95)
    push_ok = p95 is not None and p95 <= GOAL_PUSH_P95_MS and not res.missing
    visit = res.last_visit
    settle = (
        "still busy after 300 s" if res.settle_s is None else f"its CPU went quiet after {res.settle_s:.0f} s"
    )
    lines = [
        "# Dashboard benchmark",
        "",
        f"`{command}` - the dashboard's service page in a real browser ({res.browser}, headless, driven by "
        "Playwright) against a real server (`opsmind run`, default pipeline, access control on, one "
        "operator signed in; pinned to one core, the browser unpinned). The service has four golden-signal "
        f"series (traffic, latency, errors, saturation) of {res.points_per_chart:,} points each over the "
        "last 50 minutes, ingested through `POST /api/v1/ingest` before the page opens; the page draws "
        "them as four uPlot charts at raw resolution.",
        "",
        f"Machine: {machine()}; one-minute load average {_fmt2(res.load_avg)} when the first visit began "
        "(the CPUs are shared with whatever else runs).",
        "",
        "| measure | value | goal |",
        "|---|---:|---|",
    ]
    lines += [f"| {m} | {v} | {g} |" for m, v, g in rows(res)]
    lines += [
        "",
        f"Goals (issue 8): first_render_ms <= {GOAL_FIRST_RENDER_MS:,.0f} with 10,000 points per chart "
        f"({verdict(first_ok, res.points_per_chart >= 10_000)}); push_latency_ms p95 <= "
        f"{GOAL_PUSH_P95_MS:,.0f} over at least 100 events, none lost "
        f"({verdict(push_ok, res.events >= 100)}).",
        "",
        "What is timed:",
        "",
        "- *first render*: from navigation start (`performance.timeOrigin`) to the moment the last chart "
        "has drawn all its points. The chart wrapper (`web/src/chart.js`) writes what it drew into "
        "`data-drawn-points` and `data-drawn-last` from uPlot's draw hook; a `MutationObserver` installed "
        "before the page's scripts notes the time. Every visit is a new browser context (nothing cached), "
        "the token already in the tab's session; it includes loading the page's modules, the health, "
        f"audit and series REST calls and the four {res.points_per_chart:,}-point range queries. In the "
        f"last visit the page's modules had run at {_fmt(visit.get('modules_run_ms'))} ms, its first REST "
        f"call went out at {_fmt(visit.get('first_rest_call_ms'))} ms and its range queries ran from "
        f"{_fmt(visit.get('range_queries_from_ms'))} to {_fmt(visit.get('range_queries_to_ms'))} ms "
        "(one after the other). The first visit starts once the server has worked through the ingested "
        f"history ({settle}; the multivariate detector scores it step by step), so it times the page, "
        "not a busy server.",
        "- *push latency*: with the page left open and live, one sample every "
        f"{EVENT_INTERVAL_S * 1000:.0f} ms is ingested into the four followed series in turn, stamped "
        "with the wall-clock time it is sent; the page notes `Date.now()` at the first draw of that chart "
        "that reaches the sample. Both clocks are this machine's. It covers the HTTP ingest (a durable "
        "write), the bus, the live hub, the WebSocket, the page's handler and the draw at the next "
        f"animation frame. Samples not drawn within {GRACE_S:.0f} s of the last one sent count as never "
        "drawn and are left out of the percentiles (they are reported above).",
        "",
        "No peer: no other AIOps dashboard publishes comparable figures that could be run here, so the "
        "goals are the bar.",
        "",
    ]
    return "\n".join(lines)


def run_ui_benchmark(
    points: int,
    events: int,
    loads: int,
    out: Path,
    json_out: bool,
    console: Console,
    browser: str | Path = CHROMIUM,
) -> UiResult:
    """Check the browser first (a clear error, before any server starts), then measure and report."""
    path = check_browser(browser)
    res = measure(path, points, events, loads, console)
    command = "opsmind bench ui"
    if points != 10_000:
        command += f" --points {points}"
    if events != 200:
        command += f" --events {events}"
    if loads != 5:
        command += f" --loads {loads}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(res, command))
    if json_out:
        print(json.dumps(res.as_json()))
        return res
    t = Table(title="opsmind bench ui")
    for col in ("measure", "value", "goal"):
        t.add_column(col)
    for row in rows(res):
        t.add_row(*row)
    Console().print(t)
    console.print(f"written to {out}")
    return res
