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
import math
import os
import random
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cramjam
import httpx
import yaml
from rich.console import Console
from rich.table import Table

from opsmind.bench.procs import Server, free_port, opsmind_argv, pin
from opsmind.ingest.prompb import encode_varint, encode_write_request
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
    shed_batches: int | None
    bytes_per_series: float
    rss_mb: float
    first_failure: str | None = None  # what the first failed request got back, for the report


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


def _unframe(request: bytes) -> bytes:
    """The TimeSeries bytes inside a one-series WriteRequest: skip the field tag and length varint."""
    i = 1
    while request[i] & 0x80:
        i += 1
    return request[i + 1 :]


def encode_requests(series: list[Series], rounds: int, t0_ms: int) -> list[bytes]:
    """Remote-write bodies: ``rounds`` scrapes 1 s apart of every series, SERIES_PER_REQUEST a body.

    Protobuf messages concatenate, so each series' labels are encoded once (with the library encoder)
    and every body is those bytes plus a freshly framed sample per series; this makes thousands of
    distinct bodies cheap, so no body is ever sent twice (a repeat would be a duplicate or an
    out-of-order sample for the receiver)."""
    label_parts = [_unframe(encode_write_request([SeriesSamples(s, (), ())])) for s in series]
    bodies = []
    for r in range(rounds):
        ts = encode_varint(t0_ms + r * 1_000)
        for i in range(0, len(series), SERIES_PER_REQUEST):
            chunk = []
            for j, labels in enumerate(label_parts[i : i + SERIES_PER_REQUEST]):
                sample = b"\x09" + struct.pack("<d", float(r + j)) + b"\x10" + ts
                ts_msg = labels + b"\x12" + encode_varint(len(sample)) + sample
                chunk.append(b"\x0a" + encode_varint(len(ts_msg)) + ts_msg)
            bodies.append(bytes(cramjam.snappy.compress_raw(b"".join(chunk))))
    return bodies


def post_all(url: str, bodies: list[bytes], deadline: float | None) -> tuple[int, int, float, str | None]:
    """Post each body once, in order, with IN_FLIGHT threads, until all are sent or ``deadline``.
    Returns (ok requests, failed requests, elapsed seconds, what the first failed one got back)."""
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0}
    first: list[str] = []

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(bodies) or (deadline is not None and time.perf_counter() >= deadline):
                    return
                why = None
                try:
                    r = client.post(url, content=bodies[i], headers=HEADERS)
                    if r.status_code not in (200, 204):
                        why = f"HTTP {r.status_code}: {' '.join(r.text.split())[:200]}"
                except httpx.HTTPError as exc:
                    why = f"{type(exc).__name__}: {exc}"
                with lock:
                    state["ok" if why is None else "failed"] += 1
                    if why is not None and not first:
                        first.append(why)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(IN_FLIGHT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["ok"], state["failed"], time.perf_counter() - start, (first[0] if first else None)


@dataclass(frozen=True)
class SharedBackends:
    """PostgreSQL (and optionally Redis) servers to run OpsMind on, beside the embedded rows."""

    dsn: str
    redis_url: str | None = None

    def settings(self, directory: Path, tag: str) -> dict[str, Any]:
        """Storage and bus settings of one server start; its schema and prefix are ``tag``."""
        cfg: dict[str, Any] = {
            "storage": {
                "backend": "postgres",
                "dsn": self.dsn,
                "pg_schema": tag,
                "path": str(directory / "a.db"),
            }
        }
        if self.redis_url:
            cfg["bus"] = {"backend": "redis", "redis_url": self.redis_url, "redis_prefix": tag}
        return cfg

    def drop(self, tag: str) -> None:
        """Remove what a server start left on the servers (its schema, its streams)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tag)))
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
            try:
                keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()


def opsmind_config(
    directory: Path, port: int, pipeline: bool, backends: dict[str, Any] | None = None
) -> Path:
    cfg: dict[str, Any] = {
        "storage": {"path": str(directory / "bench.db")},
        "api": {"port": port},
        "detect": {"enabled": pipeline},
        "notify": {"log": False},
        **(backends or {}),
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
    warm = len(tput_bodies) // 40  # the first round(s): every series is created before timing starts
    with start_server() as srv:  # throughput
        url = srv.base_url + write_path
        post_all(url, tput_bodies[:warm], None)
        cpu0 = srv.cpu_seconds()
        ok, failed, elapsed, first_failure = post_all(url, tput_bodies[warm:], time.perf_counter() + seconds)
        cpu = srv.cpu_seconds() - cpu0
        shed = samples_shed(srv.base_url)
    rate = ok * SERIES_PER_REQUEST / elapsed
    console.print(f"{system}: {rate:,.0f} samples/s ({ok} requests ok, {failed} failed)")
    if first_failure is not None:
        console.print(f"{system}: the first failed request got {first_failure}")
    with start_server() as srv:  # memory
        url = srv.base_url + write_path
        time.sleep(1.0)
        before = srv.rss()
        post_all(url, mem_bodies, None)
        time.sleep(1.0)
        after = srv.rss()
    per_series = (after - before) / n_series
    console.print(f"{system}: {per_series:,.0f} bytes per series at {n_series:,} series")
    return Row(system, rate, ok, failed, cpu, shed, per_series, after / 2**20, first_failure)


def samples_shed(base_url: str) -> int | None:
    """Sample batches OpsMind's bus dropped because detection fell behind (None for other systems)."""
    try:
        text = httpx.get(base_url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith('opsmind_bus_shed_messages_total{topic="samples"}'):
            return int(float(line.split()[-1]))
    return 0 if "opsmind_" in text else None


def run_ingest_benchmark(
    series: int,
    seconds: float,
    out: Path,
    json_out: bool,
    console: Console,
    shared: SharedBackends | None = None,
) -> None:
    """With ``shared``, OpsMind also runs on PostgreSQL (and Redis) in the same run, as two more rows."""
    pin(os.getpid(), 1)  # the client gets the core the servers do not use
    t0_ms = int(time.time() * 1000) - 7_200_000
    tput_series = fleet_series(20_000, seed=1)
    # Enough distinct bodies for `seconds` at 600k samples/s plus the warm-up round; none is sent twice.
    rounds = 1 + math.ceil(seconds * 600_000 / len(tput_series))
    console.print(f"encoding {rounds * len(tput_series) // SERIES_PER_REQUEST:,} remote-write requests ...")
    tput_bodies = encode_requests(tput_series, rounds=rounds, t0_ms=t0_ms)
    mem_bodies = encode_requests(fleet_series(series, seed=2), rounds=3, t0_ms=t0_ms)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="opsmind-bench-") as tmp:
        workdir = Path(tmp)

        def opsmind_server(pipeline: bool, shared_tag: str | None = None) -> Callable[[], Server]:
            def start() -> Server:
                port = free_port()
                d = Path(tempfile.mkdtemp(dir=workdir))
                backends = None
                if shared is not None and shared_tag is not None:
                    tag = f"{shared_tag}_{port}"
                    tags.append(tag)
                    backends = shared.settings(d, tag)
                return Server(
                    opsmind_argv(opsmind_config(d, port, pipeline, backends)),
                    f"http://127.0.0.1:{port}",
                    "/api/v1/health",
                    core=0,
                    log_path=d / "server.log",
                )

            return start

        systems: list[tuple[str, Callable[[], Server]]] = [
            ("opsmind (ingest only)", opsmind_server(False)),
            ("opsmind (default pipeline)", opsmind_server(True)),
        ]
        tags: list[str] = []
        if shared is not None:
            on = "PostgreSQL + Redis" if shared.redis_url else "PostgreSQL"
            systems += [
                (f"opsmind on {on} (ingest only)", opsmind_server(False, "bench_ingest")),
                (f"opsmind on {on} (default pipeline)", opsmind_server(True, "bench_pipeline")),
            ]
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

            systems.append(("prometheus 2.x receiver (peer)", prometheus_server))
        else:
            console.print("[yellow]prometheus not installed: the peer row is missing[/yellow]")
        try:
            for name, start_server in systems:
                rows.append(
                    measure(
                        name, start_server, "/api/v1/write", tput_bodies, mem_bodies, series, seconds, console
                    )
                )
        finally:
            if shared is not None:
                for tag in tags:
                    shared.drop(tag)
    main = rows[0]
    result = {
        "samples_per_s": round(main.samples_per_s),
        "bytes_per_series": round(main.bytes_per_series),
        "series": series,
        "seconds": seconds,
        "rows": [asdict(r) for r in rows],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(rows, series, seconds, shared is not None))
    if json_out:
        print(json.dumps(result))
        return
    t = Table(title="opsmind bench ingest")
    for col in COLUMNS:
        t.add_column(col)
    for r in rows:
        t.add_row(*cells(r))
    Console().print(t)
    console.print(f"written to {out}")


COLUMNS = (
    "system",
    "samples/s",
    "requests ok",
    "failed",
    "server CPU s",
    "batches shed by detection",
    "bytes/series",
    "RSS MiB",
)


def cells(r: Row) -> list[str]:
    shed = "-" if r.shed_batches is None else str(r.shed_batches)
    return [
        r.system,
        f"{r.samples_per_s:,.0f}",
        str(r.requests_ok),
        str(r.requests_failed),
        f"{r.server_cpu_s:.1f}",
        shed,
        f"{r.bytes_per_series:,.0f}",
        f"{r.rss_mb:,.0f}",
    ]


def render_markdown(rows: list[Row], series: int, seconds: float, shared: bool = False) -> str:
    lines = [
        "# Ingest benchmark",
        "",
        "`opsmind bench ingest` - remote-write 1.0 over real HTTP on loopback; each server pinned to one",
        f"core, the client on the other; {SERIES_PER_REQUEST} series x 1 sample per request, {IN_FLIGHT} in "
        "flight, "
        f"{seconds:.0f} s run over 20,000 series, every request distinct (no duplicate or out-of-order "
        f"samples). Memory: RSS growth while {series:,} new series arrive (3 samples each), per series.",
        "OpsMind answers 204 only after the SQLite WAL commit (durable against kill -9). "
        "'ingest only' runs with detection off; 'default pipeline' runs the default configuration, "
        "where detection shares the one core and sheds sample batches it cannot keep up with.",
        *(
            [
                "The PostgreSQL rows store in a PostgreSQL server on this machine (204 after its commit, "
                "synchronous_commit on): its processes are not pinned and share the client's core, and "
                "their memory is not in the RSS column, which is OpsMind's process alone."
            ]
            if shared
            else []
        ),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    failures = [
        f"- {r.system}: the first failed request got {r.first_failure}" for r in rows if r.first_failure
    ]
    if failures:
        lines += [
            "",
            "Failed requests are counted as they are (a failed request adds no samples):",
            *failures,
        ]
    lines += ["", "Goals: samples/s >= 200,000 and bytes/series <= 2,048 (the first row).", ""]
    return "\n".join(lines)
