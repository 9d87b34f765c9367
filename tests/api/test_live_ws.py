"""GET /api/v1/ws through the app (Starlette's TestClient runs it in its own event loop): hello, subscribe
and events in sequence, filters, resume with since, errors that keep the connection, a client dropped
with 1013, the token check (4401 with the reason) and the pipeline's samples and incident arriving live.
The protocol's finer points are tested on the hub itself (tests/engine/test_live.py)."""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from opsmind.api.app import create_app
from opsmind.api.routers import live
from opsmind.engine import Engine
from opsmind.types import AuditEntry

with warnings.catch_warnings():  # Starlette would rather its TestClient ran on httpx2, not installed here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

SERIES = 'latency_seconds{service="checkout"}'


def entry(n: int, service: str | None = None) -> AuditEntry:
    return AuditEntry(
        at=time.time(), service=service, actor="test", verb="note", subject="x", detail={"n": n}
    )


@pytest.fixture
def app_engine(make_settings: Any) -> Iterator[tuple[TestClient, Engine]]:
    settings = make_settings(
        predict={"enabled": False},
        incidents={"group_window_s": 60, "resolve_after_s": 30, "check_interval_s": 0.05},
        live={"health_interval_s": 0},
    )
    engine = Engine(settings)
    with TestClient(create_app(engine)) as client:
        yield client, engine


def subscribe(ws: Any, **fields: Any) -> dict[str, Any]:
    ws.send_json({"type": "subscribe", **fields})
    reply: dict[str, Any] = ws.receive_json()
    assert reply["type"] == "subscribed", reply
    return reply


def test_hello_subscribe_and_events_in_sequence(app_engine: tuple[TestClient, Engine]) -> None:
    client, engine = app_engine
    with client.websocket_connect("/api/v1/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello"
        assert hello["principal"] == {"name": "anonymous", "role": "admin"}  # access control is off
        assert subscribe(ws, topics=["audit"], services=["cart"])["seq"] == hello["seq"]
        engine.store.put_many([entry(0, "checkout"), entry(1, "cart"), entry(2, "cart")])
        events = [ws.receive_json(), ws.receive_json()]
        assert [e["data"]["detail"]["n"] for e in events] == [1, 2]
        assert [e["seq"] for e in events] == [hello["seq"] + 2, hello["seq"] + 3]  # 1 went to nobody
        assert all(e["type"] == "event" and e["topic"] == "audit" for e in events)
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong", "seq": hello["seq"] + 3}


def test_resume_with_since_replays_what_was_missed(app_engine: tuple[TestClient, Engine]) -> None:
    client, engine = app_engine
    with client.websocket_connect("/api/v1/ws") as ws:
        ws.receive_json()
        subscribe(ws, topics=["audit"])
        engine.store.put(entry(0))
        last = ws.receive_json()["seq"]
    engine.store.put_many([entry(1), entry(2)])
    with client.websocket_connect("/api/v1/ws") as ws:
        ws.receive_json()
        subscribe(ws, topics=["audit"], since=last)
        replay = [ws.receive_json(), ws.receive_json()]
        assert [(e["seq"], e["data"]["detail"]["n"]) for e in replay] == [(last + 1, 1), (last + 2, 2)]
        ws.send_json({"type": "subscribe", "since": 1})  # far older than anything buffered
        assert ws.receive_json()["type"] == "subscribed"
        assert ws.receive_json() == {"type": "reset", "seq": last + 2}


def test_malformed_messages_get_an_error_and_the_connection_stays(
    app_engine: tuple[TestClient, Engine],
) -> None:
    client, _ = app_engine
    with client.websocket_connect("/api/v1/ws") as ws:
        ws.receive_json()
        for bad in ("{not json", '"a string"', '{"type": "subscribe", "topics": ["nope"]}'):
            ws.send_text(bad)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["reason"], reply
        ws.send_bytes(b'{"type": "ping"}')
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_a_client_that_falls_behind_is_closed_with_1013(make_settings: Any) -> None:
    engine = Engine(
        make_settings(live={"client_queue": 2, "health_interval_s": 0}, predict={"enabled": False})
    )
    with TestClient(create_app(engine)) as client, client.websocket_connect("/api/v1/ws") as ws:
        ws.receive_json()
        subscribe(ws, topics=["audit"])
        engine.store.put_many([entry(n) for n in range(50)])  # 50 events at once, before any is sent
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                assert ws.receive_json()["type"] == "event"
        assert closed.value.code == 1013 and "since=" in closed.value.reason
    assert engine.telemetry.value("opsmind_live_dropped_clients_total") == 1


def test_a_missing_or_bad_token_is_refused_with_4401(make_settings: Any) -> None:
    engine = Engine(make_settings(api={"auth": {"enabled": True}}, predict={"enabled": False}))
    with TestClient(create_app(engine)) as client:
        secret, _ = engine.credentials.create_token("alice", "viewer", time.time())
        for url, says in (("/api/v1/ws", "missing token"), ("/api/v1/ws?token=nope", "invalid")):
            with client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4401 and says in closed.value.reason
        with client.websocket_connect(f"/api/v1/ws?token={secret}") as ws:
            hello = ws.receive_json()
            assert hello["type"] == "hello" and hello["principal"] == {"name": "alice", "role": "viewer"}
            subscribe(ws, topics=["audit"])


def test_a_revoked_token_ends_the_stream(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "TOKEN_RECHECK_S", 0.05)
    engine = Engine(make_settings(api={"auth": {"enabled": True}}, predict={"enabled": False}))
    with TestClient(create_app(engine)) as client:
        secret, info = engine.credentials.create_token("alice", "viewer", time.time())
        with client.websocket_connect(f"/api/v1/ws?token={secret}") as ws:
            ws.receive_json()
            subscribe(ws, topics=["audit"])
            engine.credentials.revoke_token(info.id, time.time())
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    ws.receive_json()
            assert closed.value.code == 4401 and "revoked" in closed.value.reason


def test_ingested_samples_and_the_incident_they_open_arrive_live(
    app_engine: tuple[TestClient, Engine],
) -> None:
    client, _ = app_engine
    rng = random.Random(0)
    t0 = time.time() - 200
    labels = {"service": "checkout"}
    steady = [10 + rng.gauss(0, 0.2) for _ in range(100)]
    with client.websocket_connect("/api/v1/ws") as ws:
        ws.receive_json()
        subscribe(ws, topics=["samples", "incidents"], series=[SERIES])
        body = {"metric": "latency_seconds", "labels": labels, "timestamps": [t0 + i for i in range(100)]}
        r = client.post("/api/v1/ingest", json={"series": [{**body, "values": steady}]})
        assert r.status_code == 200, r.text
        ev = ws.receive_json()
        assert (
            ev["topic"] == "samples" and ev["data"]["series"] == SERIES and len(ev["data"]["points"]) == 100
        )
        spike = {"metric": "latency_seconds", "labels": labels, "timestamps": [t0 + 100, t0 + 101]}
        r = client.post("/api/v1/ingest", json={"series": [{**spike, "values": [55.0, 60.0]}]})
        assert r.status_code == 200, r.text
        assert ws.receive_json()["data"]["points"] == [[t0 + 100, 55.0], [t0 + 101, 60.0]]
        ev = ws.receive_json()  # the next thing on these topics: the incident the spike opened
        assert ev["topic"] == "incidents" and ev["data"]["event"] == "opened"
        assert ev["service"] == "checkout" and ev["data"]["incident"]["series"] == [SERIES]
