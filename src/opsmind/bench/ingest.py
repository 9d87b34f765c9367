"""``opsmind bench ingest``: remote-write throughput and memory per active series, beside Prometheus.

Throughput: a client process on one core posts pre-encoded remote-write requests (2,000 series x 1
sample each, the shape Prometheus sends) over real HTTP on loopback, with a few requests in flight, to a
server pinned to the other core. A 204 answer means the samples are durably stored (SQLite WAL
committed), so ``samples_per_s`` = samples in requests answered 204 / elapsed seconds.

Memory: a fresh server receives 100,000 distinct series (three rounds of one sample each, so the steady
state is reached) and ``bytes_per_series`` = (RSS after - RSS before) / series.

The peer is Prometheus' own remote-write receiver (``--web.enable-remote-write-receiver``), pinned to
one core the same way, measured by the same client in the same run when the binary is installed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from opsmind.bench.procs import Server, free_port, opsmind_argv, pin
from opsmind.ingest.remote_write import encode_remote_write
from opsmind.types import Series, SeriesSamples

SERIES_PER_REQUEST = 2000
IN_FLIGHT = 4
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


@dataclass
class Row:
    system: str
    samples_per_s: float
    requests_ok: int
    requests_failed: int
    server_cpu_s: float
    bytes_per_series: float
    rss_mb: float


def fleet_series(n: int, seed: int = 1) -> list[Series]:
    """``n`` realistic series: six labels, a few metric names, many pods (like a Kubernetes fleet)."""
    rng = random.Random(seed)
    names = [
        "http_requests_total",
        "http_request_duration_seconds_sum",
        "process_cpu_seconds_total",
        "container_memory_working_set_bytes",
        "model_prediction_latency_seconds",
    ]
    out = []
    for i in range(n):
        out.append(
            Series.of(
                names[i % len(names)],
                {
                    "service": f"svc-{i % 97}",
                    "namespace": f"ns-{i % 7}",
                    "pod": f"pod-{i // len(names)}",
                    "instance": f"10.0.{(i >> 8) & 255}.{i & 255}:9100",
                    "job": "kubernetes-pods",
                    "zone": rng.choice(["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
                },
            )
        )
    return out


def encode_requests(series: list[Series], rounds: int, t0_ms: int) -> list[bytes]:
    bodies = []
    for r in range(rounds):
        ts = (t0_ms + r * 15_000) / 1000.0
        for i in range(0, len(series), SERIES_PER_REQUEST):
            chunk = series[i : i + SERIES_PER_REQUEST]
            bodies.append(
                encode_remote_write([SeriesSamples(s, (ts,), (float(r + j),)) for j, s in enumerate(chunk)])
            )
    return bodies


def post_all(url: str, bodies: list[bytes], deadline: float | None) -> tuple[int, int, float]:
    """Post bodies with IN_FLIGHT threads (cycling through them until ``deadline`` if given).
    Returns (ok requests, failed requests, elapsed seconds)."""
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0}

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if deadline is None and i >= len(bodies):
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                try:
                    ok = client.post(url, content=bodies[i % len(bodies)], headers=HEADERS).status_code in (
                        200,
                        204,
                    )
                except httpx.HTTPError:
                    ok = False
                with lock:
                    state["ok" if ok else "failed"] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(IN_FLIGHT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["ok"], state["failed"], time.perf_counter() - start


def opsmind_config(directory: Path, port: int, pipeline: bool) -> Path:
    cfg = {
        "storage": {"path": str(directory / "bench.db")},
        "api": {"port": port},
        "detect": {"enabled": pipeline},
        "notify": {"log": False},
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def measure(
    system: str,
    start_server: Callable[[], Server],
    write_path: str,
    tput_bodies: list[bytes],
    mem_bodies: list[bytes],
    n_series: int,
    seconds: float,
    console: Console,
) -> Row:
    with start_server() as srv:  # throughput
        url = srv.base_url + write_path
        post_all(url, tput_bodies[: max(1, len(tput_bodies) // 10)], None)  # warm-up: series created
        cpu0 = srv.cpu_seconds()
        ok, failed, elapsed = post_all(url, tput_bodies, time.perf_counter() + seconds)
        cpu = srv.cpu_seconds() - cpu0
    rate = ok * SERIES_PER_REQUEST / elapsed
    console.print(f"{system}: {rate:,.0f} samples/s ({ok} requests ok, {failed} failed)")
    with start_server() as srv:  # memory
        url = srv.base_url + write_path
        time.sleep(1.0)
        before = srv.rss()
        post_all(url, mem_bodies, None)
        time.sleep(1.0)
        after = srv.rss()
    per_series = (after - before) / n_series
    console.print(f"{system}: {per_series:,.0f} bytes per series at {n_series:,} series")
    return Row(system, rate, ok, failed, cpu, per_series, after / 2**20)


def run_ingest_benchmark(series: int, seconds: float, out: Path, json_out: bool, console: Console) -> None:
    pin(os.getpid(), 1)  # the client gets the core the servers do not use
    t0_ms = int(time.time() * 1000) - 3_600_000
    tput_series = fleet_series(20_000, seed=1)
    tput_bodies = encode_requests(tput_series, rounds=30, t0_ms=t0_ms)
    mem_bodies = encode_requests(fleet_series(series, seed=2), rounds=3, t0_ms=t0_ms)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="opsmind-bench-") as tmp:
        workdir = Path(tmp)

        def opsmind_server(pipeline: bool) -> Callable[[], Server]:
            def start() -> Server:
                port = free_port()
                d = Path(tempfile.mkdtemp(dir=workdir))
                return Server(
                    opsmind_argv(opsmind_config(d, port, pipeline)),
                    f"http://127.0.0.1:{port}",
                    "/api/v1/health",
                    core=0,
                    log_path=d / "server.log",
                )

            return start

        rows.append(
            measure(
                "opsmind (ingest only)",
                opsmind_server(False),
                "/api/v1/write",
                tput_bodies,
                mem_bodies,
                series,
                seconds,
                console,
            )
        )
        rows.append(
            measure(
                "opsmind (default pipeline)",
                opsmind_server(True),
                "/api/v1/write",
                tput_bodies,
                mem_bodies,
                series,
                seconds,
                console,
            )
        )
        prom = shutil.which("prometheus")
        if prom:

            def prometheus_server() -> Server:
                port = free_port()
                d = Path(tempfile.mkdtemp(dir=workdir))
                (d / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
                return Server(
                    [
                        prom,
                        f"--config.file={d / 'prometheus.yml'}",
                        f"--storage.tsdb.path={d / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--web.enable-remote-write-receiver",
                    ],
                    f"http://127.0.0.1:{port}",
                    "/-/ready",
                    core=0,
                    log_path=d / "prometheus.log",
                )

            rows.append(
                measure(
                    "prometheus 2.x receiver (peer)",
                    prometheus_server,
                    "/api/v1/write",
                    tput_bodies,
                    mem_bodies,
                    series,
                    seconds,
                    console,
                )
            )
        else:
            console.print("[yellow]prometheus not installed: the peer row is missing[/yellow]")
    main = rows[0]
    result = {
        "samples_per_s": round(main.samples_per_s),
        "bytes_per_series": round(main.bytes_per_series),
        "series": series,
        "seconds": seconds,
        "rows": [asdict(r) for r in rows],
    }
    table = render_markdown(rows, series, seconds)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    if json_out:
        print(json.dumps(result))
    else:
        t = Table(title="opsmind bench ingest")
        for col in ("system", "samples/s", "ok", "failed", "server CPU s", "bytes/series", "RSS MiB"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                r.system,
                f"{r.samples_per_s:,.0f}",
                str(r.requests_ok),
                str(r.requests_failed),
                f"{r.server_cpu_s:.1f}",
                f"{r.bytes_per_series:,.0f}",
                f"{r.rss_mb:,.0f}",
            )
        Console().print(t)
        console.print(f"written to {out}")


def render_markdown(rows: list[Row], series: int, seconds: float) -> str:
    lines = [
        "# Ingest benchmark",
        "",
        "`opsmind bench ingest` - remote-write 1.0 over real HTTP on loopback; server pinned to one core,",
        f"client on the other; {SERIES_PER_REQUEST} series x 1 sample per request, {IN_FLIGHT} in flight, "
        f"{seconds:.0f} s run. Memory: RSS growth for {series:,} new series / series.",
        "OpsMind answers 204 only after the SQLite WAL commit (durable against kill -9).",
        "",
        "| system | samples/s | requests ok | failed | server CPU s | bytes/series | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.system} | {r.samples_per_s:,.0f} | {r.requests_ok} | {r.requests_failed} | "
            f"{r.server_cpu_s:.1f} | {r.bytes_per_series:,.0f} | {r.rss_mb:,.0f} |"
        )
    lines += ["", "Goals: samples/s >= 200,000 and bytes/series <= 2,048 (the first row).", ""]
    return "\n".join(lines)
