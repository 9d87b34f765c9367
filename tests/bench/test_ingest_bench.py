"""``opsmind bench ingest``'s client: a failed request is counted and what it got back is reported, so a
peer's (or our own) failures in the table can be read, not guessed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from opsmind.bench.ingest import Row, post_all, render_markdown


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if body == b"late":
            payload = b"out of order sample\n"
            self.send_response(400)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_request_is_counted_with_what_it_got_back(receiver: str) -> None:
    ok, failed, elapsed, first = post_all(receiver, [b"a", b"late", b"b", b"c"], None)
    assert (ok, failed, first) == (3, 1, "HTTP 400: out of order sample") and elapsed > 0
    assert post_all(receiver, [b"a", b"b"], None)[1:4:2] == (0, None)
    row = Row("peer", 1.0, ok, failed, 0.0, None, 1.0, 1.0, first)
    text = render_markdown([row, Row("opsmind", 2.0, 4, 0, 0.0, 0, 1.0, 1.0)], 100, 1.0)
    assert "- peer: the first failed request got HTTP 400: out of order sample" in text
    assert "- opsmind:" not in text
