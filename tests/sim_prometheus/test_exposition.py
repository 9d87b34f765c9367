"""The simulator's Prometheus exposition: the text format (checked with prometheus_client's own parser)
and the small HTTP server that serves the latest snapshot."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsmind.sim.exposition import CONTENT_TYPE, GENERIC_HELP, HELP, ExpositionServer, render
from opsmind.sim.runner import SimRun, default_scenario
from opsmind.types import Series

Samples = list[tuple[Series, float]]


def _parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def _key(series: Series) -> tuple[str, frozenset[tuple[str, str]]]:
    return series.name, frozenset(series.labels)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _sim_samples(steps: int = 3) -> Samples:
    run = SimRun(default_scenario())
    step = run.step()
    for _ in range(steps - 1):
        step = run.step()
    return step.samples


TRICKY: Samples = [
    (Series.of("error_ratio", {"service": "gateway"}), 0.0125),
    (Series.of("pod_restarts_total", {"service": "gateway", "pod": "gw-1"}), 3.0),
    (Series.of("weird_metric", {"service": 'quo"te', "path": "C:\\dir\\file", "msg": "two\nlines"}), 1e-300),
    (Series.of("error_ratio", {"service": "auth"}), math.nan),
    (Series.of("latency_seconds", {"service": "auth", "quantile": "0.99"}), math.inf),
    (Series.of("latency_seconds", {"service": "auth", "quantile": "0.5"}), -math.inf),
    (Series.of("weird_metric"), 1.7976931348623157e308),
    (Series.of("request_rate", {"service": "gateway"}), 0.1 + 0.2),
    (Series.of("replicas_ready", {"service": "gateway", "note": "ünïcode ✓"}), -42.0),
]


def test_render_round_trips_values_labels_escaping_and_special_floats() -> None:
    text = render(TRICKY)
    parsed = _parse(text)
    assert len(parsed) == len(TRICKY)
    for series, value in TRICKY:
        got = parsed[_key(series)]
        assert _same(got, value), (series, got, value)
    # The escapes are the format's, written literally.
    assert 'service="quo\\"te"' in text
    assert 'path="C:\\\\dir\\\\file"' in text
    assert 'msg="two\\nlines"' in text
    assert '\nerror_ratio{service="auth"} NaN\n' in text
    assert 'quantile="0.99",service="auth"} +Inf\n' in text
    assert 'quantile="0.5",service="auth"} -Inf\n' in text
    # No timestamps by default: every sample line is "series value".
    assert all(s.timestamp is None for family in text_string_to_metric_families(text) for s in family.samples)


def test_render_groups_by_name_with_one_help_and_type_each() -> None:
    text = render(TRICKY)
    lines = text.splitlines()
    help_lines = [line for line in lines if line.startswith("# HELP ")]
    type_lines = [line for line in lines if line.startswith("# TYPE ")]
    names = ["error_ratio", "pod_restarts_total", "weird_metric", "latency_seconds", "request_rate"]
    names.append("replicas_ready")
    assert [line.split()[2] for line in help_lines] == names
    assert [line.split()[2] for line in type_lines] == names
    types = {line.split()[2]: line.split()[3] for line in type_lines}
    assert types["pod_restarts_total"] == "counter"
    assert {t for n, t in types.items() if n != "pod_restarts_total"} == {"gauge"}
    # Each family's samples follow its TYPE line contiguously.
    current = None
    seen: set[str] = set()
    for line in lines:
        if line.startswith("# TYPE "):
            current = line.split()[2]
            assert current not in seen
            seen.add(current)
        elif not line.startswith("#"):
            assert line.split("{")[0].split(" ")[0] == current, line
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["pod_restarts"].type == "counter"  # the parser drops the _total suffix
    assert families["error_ratio"].type == "gauge"
    assert families["error_ratio"].documentation == HELP["error_ratio"]
    assert families["weird_metric"].documentation == GENERIC_HELP


def test_render_a_simulator_step_covers_every_series_and_has_help_for_every_name() -> None:
    samples = _sim_samples()
    parsed = _parse(render(samples))
    assert len(parsed) == len(samples)
    for series, value in samples:
        assert _same(parsed[_key(series)], value)
    # Every metric the observer exposes has its own help text, not the fallback.
    assert {s.name for s, _ in samples} <= set(HELP)


def test_render_with_timestamp_and_duplicates_and_empty() -> None:
    s = Series.of("error_ratio", {"service": "gateway"})
    text = render([(s, 0.5), (s, 0.25)], timestamp=1_767_225_600.123)
    assert text.count("error_ratio{") == 1
    assert 'error_ratio{service="gateway"} 0.25 1767225600123\n' in text
    (family,) = list(text_string_to_metric_families(text))
    assert family.samples[0].timestamp == pytest.approx(1_767_225_600.123)
    assert render([]) == ""


@pytest.fixture
def exposition() -> Iterator[ExpositionServer]:
    with ExpositionServer() as server:
        yield server


def test_server_serves_all_and_per_service_and_404(exposition: ExpositionServer) -> None:
    samples = _sim_samples()
    with httpx.Client(base_url=exposition.url, timeout=5) as c:
        r = c.get("/metrics")
        assert r.status_code == 200 and r.text == ""  # before the first update: empty but valid
        exposition.update(samples)
        r = c.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"] == CONTENT_TYPE
        assert r.text == render(samples)
        assert len(_parse(r.text)) == len(samples)

        r = c.get("/metrics/personalization")
        assert r.status_code == 200
        assert r.headers["content-type"] == CONTENT_TYPE
        expected = [(s, v) for s, v in samples if s.service == "personalization"]
        assert expected
        parsed = _parse(r.text)
        assert len(parsed) == len(expected)
        assert all(dict(labels)["service"] == "personalization" for _, labels in parsed)

        # Prometheus may add query parameters; they do not change the path.
        assert c.get("/metrics/personalization", params={"x": "1"}).text == r.text
        assert c.head("/metrics").status_code == 200
        for path in ("/", "/metric", "/metrics/", "/metrics/no-such-service", "/other/metrics"):
            assert c.get(path).status_code == 404, path


def test_per_service_can_be_turned_off() -> None:
    samples = _sim_samples(1)
    with ExpositionServer(per_service=False) as server:
        server.update(samples)
        assert httpx.get(server.url + "/metrics", timeout=5).status_code == 200
        assert httpx.get(server.url + "/metrics/gateway", timeout=5).status_code == 404


def test_port_start_and_stop() -> None:
    server = ExpositionServer()
    with pytest.raises(RuntimeError):
        _ = server.port
    server.start()
    try:
        assert server.port > 0
        with pytest.raises(RuntimeError):
            server.start()
        url = server.url
    finally:
        server.stop()
    server.stop()  # idempotent
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/metrics", timeout=1)


def test_concurrent_updates_and_scrapes_always_see_one_whole_snapshot(exposition: ExpositionServer) -> None:
    template = _sim_samples(1)
    min_updates, min_scrapes = 200, 100
    stop = threading.Event()
    errors: list[BaseException] = []
    scrapes = [0]
    updates = [0]
    lock = threading.Lock()

    def writer() -> None:
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and not stop.is_set():
                i = updates[0] + 1
                exposition.update([(s, float(i)) for s, _ in template])
                updates[0] = i
                with lock:
                    enough = scrapes[0] >= min_scrapes
                if i >= min_updates and enough:
                    break
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            stop.set()

    def reader(service: str | None) -> None:
        path = "/metrics" if service is None else f"/metrics/{service}"
        try:
            with httpx.Client(base_url=exposition.url, timeout=5) as c:
                while not stop.is_set():
                    r = c.get(path)
                    if r.status_code == 404 and service is not None or not r.text:
                        continue  # before the first update
                    assert r.status_code == 200, r.status_code
                    values = set(_parse(r.text).values())
                    # Every sample of a response comes from the same update.
                    assert len(values) == 1, f"a scrape mixed updates: {sorted(values)[:5]}"
                    with lock:
                        scrapes[0] += 1
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader, args=(svc,)) for svc in (None, None, "gateway", "auth")]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert updates[0] >= min_updates and scrapes[0] >= min_scrapes, (updates[0], scrapes[0])
    final = _parse(httpx.get(exposition.url + "/metrics", timeout=5).text)
    assert set(final.values()) == {float(updates[0])}
