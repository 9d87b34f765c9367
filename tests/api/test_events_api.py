"""Platform events over HTTP: stored all-or-none, listed newest first, bad input refused with a reason."""

from __future__ import annotations

import time

from tests.conftest import RunningServer


def test_push_and_list_events(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post(
            "/api/v1/events",
            json={
                "events": [
                    {
                        "ts": 1_700_000_000,
                        "service": "checkout",
                        "reason": "Deployment",
                        "message": "updated to v2",
                    },
                    {"ts": 1_700_000_060, "service": "checkout", "reason": "OOMKilled", "pod": "checkout-1"},
                ]
            },
        )
        assert r.status_code == 200 and r.json() == {"events": 2}
        listed = c.get("/api/v1/events", params={"service": "checkout"}).json()
    assert [e["reason"] for e in listed] == ["OOMKilled", "Deployment"]
    assert listed[0]["pod"] == "checkout-1"
    assert server.engine.telemetry.value("opsmind_ingest_events_total", {"source": "push"}) == 2


def test_bad_events_are_refused_and_nothing_is_stored(server: RunningServer) -> None:
    bad = [
        {"events": [{"reason": "has spaces"}]},
        {"events": [{"reason": "Ok"}, {"reason": "Ok", "ts": -1}]},
        {"events": [{"reason": "Ok", "colour": "red"}]},
        {"events": "not a list"},
        # A year-1e300 event became the newest of every listing; milliseconds sent as seconds look alike.
        {"events": [{"reason": "Ok"}, {"reason": "Deploy", "ts": 1e300}]},
        {"events": [{"reason": "Deploy", "ts": time.time() * 1000}]},
    ]
    with server.client() as c:
        for body in bad:
            r = c.post("/api/v1/events", json=body)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "events" in r.json()["detail"]
        r = c.post(
            "/api/v1/events",
            content=b'{"events": [{"reason": "Ok", "ts": NaN}]}',
            headers={"content-type": "application/json"},
        )
        assert 400 <= r.status_code < 500
        assert c.get("/api/v1/events").json() == []


def test_a_body_that_is_no_json_object_and_a_wrong_method_are_named(server: RunningServer) -> None:
    # They answered "body.0: JSON decode error", "Input should be a valid dictionary" and a bare
    # "Method Not Allowed" without the Allow header RFC 9110 requires.
    cases = [
        (b'{"events": [', "application/json", "body: not valid JSON ("),
        (b"[1, 2]", "application/json", "body: expected a JSON object, not an array"),
        (
            b"events=1",
            "text/plain",
            "body: expected a JSON object (send it with Content-Type: application/json)",
        ),
    ]
    with server.client() as c:
        for content, kind, said in cases:
            r = c.post("/api/v1/events", content=content, headers={"content-type": kind})
            assert r.status_code == 422 and r.json()["detail"].startswith(said), r.text
        r = c.delete("/api/v1/events")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST", r.headers
        assert r.json()["detail"] == "DELETE is not allowed on /api/v1/events; allowed: GET, POST"
        assert c.get("/api/v1/events").json() == []
