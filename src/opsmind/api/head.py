"""``HEAD`` on every ``GET`` route (RFC 9110, section 9.3.2): the GET's status and headers, no body.

FastAPI registers only the methods a route names, so ``HEAD /api/v1/health`` answered 405 although
liveness probes and ``curl -I`` send it, and access control already treats HEAD as a read
(``opsmind.api.auth``). This middleware runs such a request as a GET and drops the body it produces;
``Content-Length`` stays the GET's, as the RFC allows.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Pure ASGI middleware (no response buffering): HEAD becomes GET, response bodies are dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # streamed parts: only the final, empty one is sent
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
