"""The webhook notifier against a real HTTP server on loopback, and the notify stage's retry policy."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsmind.bus.memory import MemoryBus
from opsmind.clock import RealClock
from opsmind.config import NotifySettings, WebhookSettings
from opsmind.incidents import grouping
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.stage import NotifyStage, RetryPolicy
from opsmind.notify.webhook import WebhookNotifier
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry
from tests.conftest import free_port


class Receiver:
    """A webhook receiver that answers with a scripted list of statuses (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                n = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(n)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        r = Receiver(statuses)
        made.append(r)
        return r

    yield make
    for r in made:
        r.server.shutdown()


def incident() -> Any:
    a = Anomaly(at=1, service="gateway", series="m", ts=1, value=9, score=9, probability=0.8, detector="t")
    return grouping.open_incident(a, now=1)


async def run_stage(url: str, retries: int) -> tuple[SqliteStore, Telemetry]:
    store = SqliteStore(":memory:")
    tel = Telemetry()
    bus = MemoryBus(telemetry=tel)
    notifier = WebhookNotifier(WebhookSettings(url=url, timeout_s=2, max_retries=retries, backoff_s=0.01))
    send_now = NotifySettings(group_wait_s=0)  # the retries are under test, not the group timers
    stage = NotifyStage(bus, RealClock(), tel, store, [(notifier, RetryPolicy(retries, 0.01))], send_now)
    await stage.start()
    await bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", incident()))

    for _ in range(200):
        if store.find(AuditEntry):
            break
        await asyncio.sleep(0.02)
    await stage.stop()
    await notifier.aclose()
    return store, tel


async def test_retries_5xx_then_succeeds(receiver_factory: Any) -> None:
    r = receiver_factory([500, 503])
    store, tel = await run_stage(r.url, retries=3)
    assert len(r.bodies) == 3
    assert r.bodies[-1]["event"] == "opened" and r.bodies[-1]["incident"]["service"] == "gateway"
    audit = store.find(AuditEntry)
    assert audit[0].detail["ok"] is True and audit[0].detail["attempts"] == 3


async def test_client_error_is_not_retried(receiver_factory: Any) -> None:
    r = receiver_factory([400])
    store, _ = await run_stage(r.url, retries=3)
    assert len(r.bodies) == 1
    audit = store.find(AuditEntry)
    assert audit[0].detail["ok"] is False and audit[0].detail["detail"] == "HTTP 400"


async def test_unreachable_receiver_exhausts_retries() -> None:
    store, tel = await run_stage(f"http://127.0.0.1:{free_port()}/hook", retries=2)
    audit = store.find(AuditEntry)
    assert audit[0].detail["ok"] is False and audit[0].detail["attempts"] == 3
    failed = [m for m in tel.registry.collect() if m.name == "opsmind_notifications"]
    assert (
        sum(
            s.value
            for s in failed[0].samples
            if s.name.endswith("_total") and s.labels.get("outcome") == "failed"
        )
        == 3
    )
