"""WebhookAction against a real HTTP receiver on loopback (``http.server`` in a thread, as the notifier
tests do)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsmind.act.webhook_action import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookAction
from opsmind.incidents import grouping
from opsmind.notify.webhook import verify
from opsmind.types import Anomaly
from tests.conftest import free_port

Reply = tuple[int, dict[str, str], bytes]


class Receiver:
    """Answers each POST with the next scripted ``(status, headers, body)`` (then 200, empty)."""

    def __init__(self, replies: list[Reply] | None = None, delay_s: float = 0.0) -> None:
        self.replies = list(replies or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.methods: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.methods.append(self.command)
                time.sleep(delay_s)
                status, headers, payload = receiver.replies.pop(0) if receiver.replies else (200, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PUT = do_PATCH = do_DELETE = do_GET = do_POST  # noqa: N815 - every verb answers the same

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/remediate"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(replies: list[Reply] | None = None, delay_s: float = 0.0) -> Receiver:
        made.append(Receiver(replies, delay_s))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()
        r.server.server_close()


def _incident() -> Any:
    a = Anomaly(at=1, service="gateway", series="m", ts=1, value=9, score=9, probability=0.8, detector="t")
    return grouping.open_incident(a, now=1)


def test_posts_the_action_incident_and_params_signed(receiver_factory: Any) -> None:
    receiver = receiver_factory()
    hook = WebhookAction(receiver.url, secret="s3cret", timeout_s=2)
    result = hook.run("flush_cache", _incident(), {"service": "gateway"}, False, idempotency_key="rem-1/0")
    hook.close()
    assert result.ok and not result.retryable and not result.dry_run and result.revert_token is None
    assert (
        result.detail == f"flush_cache via {receiver.url}: HTTP 200; no revert token (the receiver gave none)"
    )
    ((headers, body),) = receiver.requests
    sent = json.loads(body)
    assert sent["action"] == "flush_cache" and sent["params"] == {"service": "gateway"}
    assert sent["incident"]["services"] == ["gateway"] and sent["idempotency_key"] == "rem-1/0"
    assert headers[IDEMPOTENCY_HEADER] == "rem-1/0" and headers["content-type"] == "application/json"
    # The notifier's receiver-side check accepts it: one scheme for both.
    signed = {SIGNATURE_HEADER: headers[SIGNATURE_HEADER], TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]}
    assert verify("s3cret", body, signed, time.time())
    assert not verify("other", body, signed, time.time())


def test_unsigned_without_a_secret(receiver_factory: Any) -> None:
    receiver = receiver_factory()
    assert WebhookAction(receiver.url).run("noop", {"id": "inc-1"}, None, False).ok
    ((headers, body),) = receiver.requests
    assert SIGNATURE_HEADER not in headers and json.loads(body)["incident"] == {"id": "inc-1"}


def test_dry_run_is_the_default_and_sends_nothing(receiver_factory: Any) -> None:
    receiver = receiver_factory()
    result = WebhookAction(receiver.url).run("flush_cache", {"id": "inc-1"}, {"service": "gateway"})
    assert (
        result.ok
        and result.dry_run
        and result.detail.startswith(f"dry run: would POST flush_cache to {receiver.url}")
    )
    assert receiver.requests == []


def test_a_body_that_is_not_json_is_refused_even_in_a_dry_run(receiver_factory: Any) -> None:
    receiver = receiver_factory()
    result = WebhookAction(receiver.url).run("x", None, {"when": object()})
    assert not result.ok and not result.retryable and "cannot be sent as JSON" in result.detail
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("reply", "retryable", "said"),
    [
        ((503, {}, b"maintenance"), True, "HTTP 503: maintenance"),
        ((500, {}, b""), True, "HTTP 500"),
        ((429, {"Retry-After": "7"}, b"slow down"), True, "HTTP 429: slow down (Retry-After 7 s)"),
        ((408, {}, b""), True, "HTTP 408"),
        ((400, {}, b"unknown action"), False, "HTTP 400: unknown action"),
        ((404, {}, b""), False, "HTTP 404"),
        (
            (302, {"Location": "http://elsewhere/"}, b""),
            False,
            "HTTP 302 (redirect to http://elsewhere/ not followed)",
        ),
    ],
)
def test_failures_follow_http_semantics(
    receiver_factory: Any, reply: Reply, retryable: bool, said: str
) -> None:
    receiver = receiver_factory([reply])
    result = WebhookAction(receiver.url).run("restart", None, None, False)
    assert not result.ok and result.retryable is retryable
    assert result.detail == f"restart via {receiver.url} failed: {said}"
    assert len(receiver.requests) == 1


def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/remediate"
    result = WebhookAction(url, timeout_s=2).run("restart", None, None, False)
    assert not result.ok and result.retryable and "ConnectError" in result.detail


def test_timeout_is_retryable(receiver_factory: Any) -> None:
    receiver = receiver_factory(delay_s=1.0)
    started = time.monotonic()
    result = WebhookAction(receiver.url, timeout_s=0.2).run("restart", None, None, False)
    assert not result.ok and result.retryable and "Timeout" in result.detail
    assert time.monotonic() - started < 0.9


def test_receiver_revert_token_round_trips(receiver_factory: Any) -> None:
    receiver = receiver_factory([(200, {"Content-Type": "application/json"}, b'{"revert_token": "undo-42"}')])
    hook = WebhookAction(receiver.url)
    result = hook.run("failover", None, {"to": "replica"}, False)
    assert result.ok and result.revert_token is not None
    dry = hook.revert(result.revert_token)
    assert dry.ok and dry.dry_run and len(receiver.requests) == 1
    reverted = hook.revert(result.revert_token, False)
    assert reverted.ok
    assert receiver.bodies()[1]["action"] == "revert"
    assert receiver.bodies()[1]["params"] == {"revert_token": "undo-42"}
    other = WebhookAction("http://127.0.0.1:1/other").revert(result.revert_token, False)
    assert not other.ok and not other.retryable and "the token is for" in other.detail
    assert not hook.revert("garbage", False).ok


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookAction("file:///etc/passwd")
    with pytest.raises(ValueError, match="timeout"):
        WebhookAction("http://127.0.0.1/x", timeout_s=0)


def test_another_method_sends_the_same_json(receiver_factory: Any) -> None:
    receiver = receiver_factory()
    hook = WebhookAction(receiver.url, timeout_s=2, method="PUT")
    result = hook.run("purge", None, {"path": "/a"}, False, remediation={"id": "rem-1", "step": "purge"})
    hook.close()
    assert result.ok and receiver.methods == ["PUT"]
    assert receiver.bodies()[0]["remediation"] == {"id": "rem-1", "step": "purge"}
    assert receiver.bodies()[0]["params"] == {"path": "/a"}
    with pytest.raises(ValueError, match="method must be one of"):
        WebhookAction(receiver.url, method="TRACE")
