"""Ingestion over real HTTP: good requests are stored; every kind of bad request gets a 4xx problem
document with a clear reason and stores nothing; nothing is ever a 500."""

from __future__ import annotations

import struct
import time

import cramjam
import pytest

from opsmind.ingest.prompb import encode_varint
from opsmind.ingest.remote_write import encode_remote_write
from opsmind.types import Series, SeriesSamples
from tests.conftest import RunningServer

RW_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
T0 = 1_700_000_000.0


def good_body(n_series: int = 3, metric: str = "rw_metric") -> bytes:
    return encode_remote_write(
        [
            SeriesSamples(Series.of(metric, {"service": f"s{i}"}), (T0, T0 + 15), (1.0, 2.0))
            for i in range(n_series)
        ]
    )


def raw_write_request(labels: list[tuple[str, str]], ts_ms: int = 1_700_000_000_000) -> bytes:
    """Encode a WriteRequest by hand, so invalid label sets (which our encoder refuses) can be sent."""

    def field(num: int, payload: bytes) -> bytes:
        return encode_varint(num << 3 | 2) + encode_varint(len(payload)) + payload

    ts = b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels)
    sample = b"\x09" + struct.pack("<d", 1.5) + b"\x10" + encode_varint(ts_ms)
    return bytes(cramjam.snappy.compress_raw(field(1, ts + field(2, sample))))


def stored_series(server: RunningServer) -> int:
    with server.client() as c:
        return len(c.get("/api/v1/series").json())


def test_remote_write_stores_samples(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/write", content=good_body(), headers=RW_HEADERS)
        assert r.status_code == 204, r.text
        q = c.get(
            "/api/v1/series/query",
            params={
                "series": 'rw_metric{service="s1"}',
                "start": T0 - 1,
                "end": T0 + 100,
                "resolution": "raw",
            },
        ).json()
    assert q["timestamps"] == [T0, T0 + 15] and q["values"] == [1.0, 2.0]


BAD_REMOTE_WRITE = {
    "truncated protobuf": (
        lambda: bytes(cramjam.snappy.compress_raw(bytes(cramjam.snappy.decompress_raw(good_body()))[:-7])),
        RW_HEADERS,
        400,
        "protobuf",
    ),
    "wrong compression": (
        lambda: bytes(cramjam.gzip.compress(b"hello")),
        {**RW_HEADERS, "Content-Encoding": "gzip"},
        415,
        "snappy",
    ),
    "missing compression": (lambda: good_body(), {"Content-Type": "application/x-protobuf"}, 415, "snappy"),
    "not snappy": (lambda: b"\xff\xff\xff\xff\x0fgarbage", RW_HEADERS, 400, "snappy"),
    "negative timestamp": (
        lambda: raw_write_request([("__name__", "m")], ts_ms=-5),
        RW_HEADERS,
        400,
        "timestamp",
    ),
    "invalid metric name": (
        lambda: raw_write_request([("__name__", "bad-name")]),
        RW_HEADERS,
        400,
        "metric name",
    ),
    "invalid label name": (
        lambda: raw_write_request([("__name__", "m"), ("bad-label", "x")]),
        RW_HEADERS,
        400,
        "label name",
    ),
    "duplicate labels": (
        lambda: raw_write_request([("__name__", "m"), ("a", "1"), ("a", "2")]),
        RW_HEADERS,
        400,
        "duplicate",
    ),
    "remote-write 2.0": (
        lambda: good_body(),
        {**RW_HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
        415,
        "v2",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REMOTE_WRITE))
def test_bad_remote_write_is_refused_and_stores_nothing(server: RunningServer, case: str) -> None:
    make, headers, status, word = BAD_REMOTE_WRITE[case]
    with server.client() as c:
        r = c.post("/api/v1/write", content=make(), headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert word.lower() in r.json()["detail"].lower()
    assert stored_series(server) == 0


def test_oversized_and_too_many_series(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import start_server

    running, srv, thread = start_server(
        make_settings(ingest={"max_body_bytes": 4096, "max_series_per_request": 5, "max_series": 8})
    )
    try:
        with running.client() as c:
            big = c.post("/api/v1/write", content=b"x" * 5000, headers=RW_HEADERS)
            assert big.status_code == 413 and "limit" in big.json()["detail"]
            many = c.post("/api/v1/write", content=good_body(6), headers=RW_HEADERS)
            assert many.status_code == 413 and "series" in many.json()["detail"]
            assert c.post("/api/v1/write", content=good_body(5), headers=RW_HEADERS).status_code == 204
            # 5 stored; 5 more new series would pass the per-request limit but exceed max_series=8.
            over = c.post("/api/v1/write", content=good_body(5, "other_metric"), headers=RW_HEADERS)
            assert over.status_code == 422 and "series" in over.json()["detail"]
            assert len(c.get("/api/v1/series").json()) == 5
    finally:
        srv.should_exit = True
        thread.join(10)


def test_json_push_and_its_errors(server: RunningServer) -> None:
    with server.client() as c:
        ok = c.post(
            "/api/v1/ingest",
            json={
                "samples": [
                    {"metric": "queue_depth", "labels": {"service": "billing"}, "timestamp": T0, "value": 3},
                    {
                        "metric": "queue_depth",
                        "labels": {"service": "billing"},
                        "timestamp": T0 + 1,
                        "value": 4,
                    },
                ]
            },
        )
        assert ok.status_code == 200 and ok.json() == {"samples": 2, "series": 1}
        bad_cases = [
            (b'{"samples": [{"metric": "m", "timestamp": NaN, "value": 1}]}', "timestamp"),
            (b'{"samples": [{"metric": "m", "timestamp": -1, "value": 1}]}', "timestamp"),
            (
                b'{"samples": [{"metric": "m", "labels": {"a": "1", "a": "2"}, "timestamp": 1, "value": 1}]}',
                "duplicate",
            ),
            (b'{"samples": [{"metric": "bad name", "timestamp": 1, "value": 1}]}', "metric name"),
            (b'{"samples": [', "json"),
        ]
        for body, word in bad_cases:
            r = c.post("/api/v1/ingest", content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body, r.text)
            assert word.lower() in r.json()["detail"].lower(), (body, r.text)
        # A batch with one bad sample stores none of its good samples.
        mixed = c.post(
            "/api/v1/ingest",
            json={
                "samples": [
                    {"metric": "fresh_metric", "timestamp": T0, "value": 1},
                    {"metric": "fresh_metric", "timestamp": -3, "value": 1},
                ]
            },
        )
        assert mixed.status_code == 400
        names = {s["name"] for s in c.get("/api/v1/series").json()}
        assert names == {"queue_depth"}


def test_read_api_errors_are_problem_documents(server: RunningServer) -> None:
    with server.client() as c:
        for path, params, status in [
            ("/api/v1/incidents/nope", {}, 404),
            ("/api/v1/services/nope", {}, 404),
            ("/api/v1/series/query", {"series": "bad name{"}, 400),
            ("/api/v1/series/query", {"series": "m", "start": 10, "end": 5}, 400),
            ("/api/v1/incidents", {"limit": 0}, 422),
            ("/api/v1/series", {"match": "novalue"}, 400),
            ("/api/v1/incidents", {"limit": "NaN"}, 422),
        ]:
            r = c.get(path, params=params)
            assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["detail"]


def test_since_must_be_a_finite_time(server: RunningServer) -> None:
    # NaN matched no time: the answer was an empty list, as if nothing had been detected or reported.
    with server.client() as c:
        for path in ("/api/v1/anomalies", "/api/v1/events"):
            for since in ("nan", "inf", "-inf", "1e999"):
                r = c.get(path, params={"since": since})
                assert r.status_code == 422, (path, since, r.text)
                assert "since" in r.json()["detail"] and "finite" in r.json()["detail"]
            assert c.get(path, params={"since": T0}).status_code == 200


def test_openapi_and_metrics(server: RunningServer) -> None:
    with server.client() as c:
        spec = c.get("/openapi.json").json()
        assert "/api/v1/write" in spec["paths"] and "/api/v1/incidents" in spec["paths"]
        c.post("/api/v1/write", content=good_body(), headers=RW_HEADERS)
        text = c.get("/metrics").text
    assert 'opsmind_ingest_samples_total{source="remote_write"} 6.0' in text
    assert "opsmind_stage_up" in text


def test_a_label_value_that_is_not_unicode_is_refused_and_nothing_is_stored(server: RunningServer) -> None:
    # JSON may escape half a surrogate pair; such a label value cannot be stored, and was a 500.
    push = (
        b'{"series": [{"metric": "good_metric", "timestamps": [1], "values": [1]},'
        b' {"metric": "m", "labels": {"service": "\\ud800"}, "timestamps": [1], "values": [1]}]}'
    )
    hook = b'{"alerts": [{"status": "firing", "labels": {"alertname": "Down", "service": "\\ud800"}}]}'
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=push, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert "series[1]" in r.json()["detail"] and "not valid Unicode" in r.json()["detail"]
        r = c.post("/api/v1/alerts/alertmanager", content=hook)
        assert r.status_code == 422, r.text
        assert "alerts.0.labels" in r.json()["detail"] and "not valid Unicode" in r.json()["detail"]
        assert c.get("/api/v1/anomalies").json() == []
    assert stored_series(server) == 0  # nor the good series before it


def test_an_alertmanager_body_nested_too_deeply_is_a_400(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", content=b"[" * 100_000)  # was a RecursionError: 500
    assert r.status_code == 400, r.text
    assert "nested too deeply" in r.json()["detail"]


def test_scoring_a_backfill_does_not_hold_the_api(server: RunningServer) -> None:
    # Each point of a one-series backfill is a round of its own (about a millisecond): scored in one go,
    # 10,000 points held the event loop, and every request, for seconds.
    n = 10_000
    start = time.time() - n
    body = {
        "series": [
            {
                "metric": "backfill",
                "labels": {"service": "b"},
                "timestamps": [start + i for i in range(n)],
                "values": [float(i % 7) for i in range(n)],
            }
        ]
    }
    with server.client() as c:
        assert c.post("/api/v1/ingest", json=body).status_code == 200
        time.sleep(0.2)  # the detect stage is scoring it now
        asked = time.monotonic()
        assert c.get("/api/v1/health").status_code == 200
    assert time.monotonic() - asked < 2.0


def test_a_sample_from_the_far_future_is_refused_and_charts_keep_their_resolution(
    server: RunningServer,
) -> None:
    # One sample at ts 9.2e15 (milliseconds x 1000) made the store's "now" the year 290,000, and every
    # chart's resolution=auto query answered hourly rollups from then on.
    now = time.time()
    with server.client() as c:
        ok = c.post(
            "/api/v1/ingest",
            json={"samples": [{"metric": "m", "labels": {"service": "x"}, "timestamp": now, "value": 1}]},
        )
        assert ok.status_code == 200, ok.text
        for ts in (now + 3600, 9e10):
            r = c.post(
                "/api/v1/ingest",
                json={"samples": [{"metric": "m", "labels": {"service": "x"}, "timestamp": ts, "value": 2}]},
            )
            assert r.status_code == 400 and "ahead of the engine's clock" in r.text, r.text
        late = SeriesSamples(Series.of("m", {"service": "x"}), (9.2e12,), (3.0,))
        r = c.post("/api/v1/write", content=encode_remote_write([late]), headers=RW_HEADERS)
        assert r.status_code == 400 and "ingest.future_grace_s" in r.text, r.text
        q = c.get("/api/v1/series/query", params={"series": 'm{service="x"}', "start": now - 60})
    assert q.json()["resolution"] == "raw" and q.json()["values"] == [1.0]


def test_a_query_window_beyond_any_stored_time_is_answered(server: RunningServer) -> None:
    # start=-1e17 or end=1e17 overflowed the store's 64-bit milliseconds: a 500.
    with server.client() as c:
        c.post("/api/v1/write", content=good_body(1), headers=RW_HEADERS)
        for start, end in ((-1e17, T0 + 100), (T0 - 1, 1e17), (-1e308, 1e308)):
            r = c.get(
                "/api/v1/series/query",
                params={"series": 'rw_metric{service="s0"}', "start": start, "end": end, "resolution": "raw"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["values"] == [1.0, 2.0]


def test_a_service_known_only_from_an_alert_is_listed(server: RunningServer) -> None:
    # An Alertmanager alert about a service OpsMind has no series of opened an incident that no service
    # listing showed: the services' open incidents did not add up to the incident list.
    with server.client() as c:
        labels = {"alertname": "DiskFull", "service": "billing-db"}
        alert = {"labels": labels, "startsAt": "2026-01-01T00:00:00Z"}  # one firing alert is enough
        assert c.post("/api/v1/alerts/alertmanager", json={"alerts": [alert]}).status_code == 200
        deadline = time.time() + 10
        while time.time() < deadline and not c.get("/api/v1/incidents", params={"status": "open"}).json():
            time.sleep(0.1)
        listed = {s["name"]: s for s in c.get("/api/v1/services").json()}
        one = c.get("/api/v1/services/billing-db")
        mapped = c.get("/api/v1/topology").json()["services"]
    assert listed["billing-db"]["open_incidents"] == 1 and listed["billing-db"]["status"] == "incident"
    assert one.status_code == 200 and "billing-db" in mapped


def test_head_answers_like_get_without_a_body(server: RunningServer) -> None:
    with server.client() as c:
        head = c.head("/api/v1/health")
        get = c.get("/api/v1/health")
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
