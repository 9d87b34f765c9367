"""Scraping: parsing real expositions from prometheus_client, and a Scraper against real local servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from opsmind.clock import SimClock
from opsmind.config import ScrapeTarget
from opsmind.ingest.errors import IngestError
from opsmind.ingest.scrape import Scraper, parse_exposition
from opsmind.types import Series, SeriesSamples

T0 = 1_700_000_000.0


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    requests = Counter("http_requests", "Requests.", ["code"], registry=reg)
    requests.labels("200").inc(7)
    requests.labels("500").inc(2)
    Gauge("temperature_celsius", "Temperature.", registry=reg).set(21.5)
    Histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=reg).observe(0.3)
    return reg


def by_key(batch: list[SeriesSamples]) -> dict[str, SeriesSamples]:
    return {s.series.key: s for s in batch}


def test_parse_text_exposition_from_a_real_registry() -> None:
    text = generate_latest(registry()).decode()
    got = by_key(parse_exposition(text, T0, {"job": "api", "instance": "h:1"}))
    ok = got['http_requests_total{code="200",instance="h:1",job="api"}']
    assert ok.timestamps == (T0,) and ok.values == (7.0,)
    assert got['temperature_celsius{instance="h:1",job="api"}'].values == (21.5,)
    assert got['latency_seconds_bucket{instance="h:1",job="api",le="1.0"}'].values == (1.0,)
    assert got['latency_seconds_bucket{instance="h:1",job="api",le="+Inf"}'].values == (1.0,)
    assert got['latency_seconds_sum{instance="h:1",job="api"}'].values == (0.3,)


def test_parse_openmetrics_exposition() -> None:
    text = generate_openmetrics(registry()).decode()
    got = by_key(parse_exposition(text, T0, {}, content_type=OPENMETRICS_TYPE))
    assert got['http_requests_total{code="500"}'].values == (2.0,)
    assert got["latency_seconds_count"].values == (1.0,)
    # The OpenMetrics parser insists on "# EOF", the text parser does not: the content type picks one.
    with pytest.raises(IngestError) as info:
        parse_exposition("up 1\n", T0, {}, content_type=OPENMETRICS_TYPE)
    assert info.value.status == 400


def test_sample_timestamps_and_special_values() -> None:
    text = 'a 1 1600000000000\nb{x="y"} NaN\nc +Inf\n'
    got = by_key(parse_exposition(text, T0, {}))
    assert got["a"].timestamps == (1_600_000_000.0,)
    assert got['b{x="y"}'].timestamps == (T0,) and got['b{x="y"}'].values[0] != got['b{x="y"}'].values[0]
    om = "# TYPE a gauge\na 1 1600000000.25\n# EOF\n"
    assert parse_exposition(om, T0, {}, content_type="application/openmetrics-text; version=1.0.0")[
        0
    ].timestamps == (1_600_000_000.25,)


def test_target_labels_win_and_clashing_ones_are_exported() -> None:
    got = parse_exposition(
        'm{job="exporter",instance="x",exported_job="old"} 1\n', T0, {"job": "j", "instance": "i"}
    )
    assert got[0].series == Series.of(
        "m",
        {
            "job": "j",
            "instance": "i",
            "exported_instance": "x",
            "exported_job": "old",
            "exported_exported_job": "exporter",
        },
    )


@pytest.mark.parametrize(
    "text",
    [
        "m abc\n",
        'm{a="b"}\n',
        "1m 2\n",
        'm{1a="b"} 1\n',
        'm{a="b" 1\n',
        'm{a="1",a="2"} 1\n',
        "# TYPE m bad\nm 1\n",
    ],
)
def test_malformed_exposition_is_400(text: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_exposition(text, T0, {})
    assert info.value.status == 400, info.value.reason


def test_invalid_label_from_target_is_400() -> None:
    with pytest.raises(IngestError) as info:
        parse_exposition("m 1\n", T0, {"bad-label": "x"})
    assert info.value.status == 400 and "bad-label" in info.value.reason


# --- the Scraper against real servers -----------------------------------------------------------------


@pytest.fixture(scope="module")  # one server: shutting one down waits for its 0.5 s poll
def metrics_url() -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry())
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _Misbehaving(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if self.path == "/slow":
            time.sleep(1.0)
        status, body = {"/error": (500, b"boom"), "/garbage": (200, b"m{ 1 2 3\n")}.get(
            self.path, (200, b"m 1\n")
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keeps test output quiet
        pass


@pytest.fixture(scope="module")
def bad_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"  # nothing listens there any more


class Collect:
    def __init__(self) -> None:
        self.batches: list[list[SeriesSamples]] = []

    async def __call__(self, batch: list[SeriesSamples]) -> None:
        self.batches.append(batch)


def up_of(batch: list[SeriesSamples]) -> SeriesSamples:
    return next(s for s in batch if s.series.name == "up")


async def test_scrape_once_success_labels_and_up(metrics_url: str) -> None:
    sink, clock = Collect(), SimClock(T0)
    target = ScrapeTarget(url=metrics_url, labels={"service": "api"})
    scraper = Scraper([target], sink, clock)
    batch = await scraper.scrape_once(target)
    await scraper.aclose()
    assert sink.batches == [batch]
    port = metrics_url.split(":")[2].split("/")[0]
    want = {"instance": f"127.0.0.1:{port}", "job": "opsmind", "service": "api"}
    assert up_of(batch).series == Series.of("up", want) and up_of(batch).values == (1.0,)
    series = by_key(batch)
    assert series[Series.of("http_requests_total", {**want, "code": "200"}).key].values == (7.0,)
    assert all(s.timestamps == (T0,) for s in batch)


@pytest.mark.parametrize(
    ("path", "reason"), [("/error", "HTTP 500"), ("/garbage", "invalid exposition"), ("/slow", "timed out")]
)
async def test_scrape_failures_give_up_zero(bad_base: str, path: str, reason: str) -> None:
    sink = Collect()
    target = ScrapeTarget(url=bad_base + path, timeout_s=0.3, labels={"job": "svc"})
    scraper = Scraper([target], sink, SimClock(T0))
    batch = await scraper.scrape_once(target)
    await scraper.aclose()
    assert len(batch) == 1 and up_of(batch).values == (0.0,) and up_of(batch).series.label("job") == "svc"
    status = scraper.status[str(target.url)]
    assert not status.up and status.error is not None and reason in status.error


async def test_dead_target_gives_up_zero_and_others_keep_working(metrics_url: str) -> None:
    sink, clock = Collect(), SimClock(T0)
    dead = ScrapeTarget(url=dead_url(), interval_s=10, timeout_s=1)
    live = ScrapeTarget(url=metrics_url, interval_s=10)
    scraper = Scraper([dead, live], sink, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(scraper.run(stop))

    async def scrapes(n: int) -> None:
        for _ in range(500):
            if len(sink.batches) >= n and clock.pending_sleepers == 2:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {n} scrapes, got {len(sink.batches)}")

    await scrapes(2)
    await clock.advance(10)
    await scrapes(4)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    ups = sorted(
        (up_of(b).series.label("instance") or "", up_of(b).timestamps[0], up_of(b).values[0])
        for b in sink.batches
    )
    live_instance = metrics_url.split("/")[2]
    assert [(ts, v) for inst, ts, v in ups if inst == live_instance] == [(T0, 1.0), (T0 + 10, 1.0)]
    assert [(ts, v) for inst, ts, v in ups if inst != live_instance] == [(T0, 0.0), (T0 + 10, 0.0)]


async def test_sink_failure_does_not_stop_the_loop(metrics_url: str) -> None:
    calls = 0

    async def flaky(batch: list[SeriesSamples]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store is down")

    clock = SimClock(T0)
    target = ScrapeTarget(url=metrics_url, interval_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(Scraper([target], flaky, clock).run(stop))
    for _ in range(500):
        if calls == 1 and clock.pending_sleepers:
            break
        await asyncio.sleep(0.01)
    await clock.advance(5)
    for _ in range(500):
        if calls == 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert calls == 2


def test_invalid_target_labels_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="bad-label"):
        Scraper([ScrapeTarget(url="http://127.0.0.1:1/m", labels={"bad-label": "x"})], Collect(), SimClock())


async def test_without_targets_run_waits_for_stop() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(Scraper([], Collect(), SimClock()).run(stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, timeout=1)
