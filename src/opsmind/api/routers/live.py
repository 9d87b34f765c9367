"""``GET /api/v1/ws``: the dashboard's live updates over a WebSocket (docs/DASHBOARD.md, "Live updates").

This route is only the transport: the protocol (hello, subscribe, replay with ``since``, reset, ping,
errors, dropping a client that falls behind) is :class:`opsmind.engine.live.LiveClient`'s. A browser
cannot set headers on a WebSocket, so the token comes as ``?token=``; without a valid one (while access
control is on) the socket is accepted and closed at once with code 4401 and the reason. The token is
checked again every :data:`TOKEN_RECHECK_S` seconds, so a revoked or expired one ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from opsmind.api.auth import principal_from_token
from opsmind.engine import Engine
from opsmind.engine.live import Close, LiveClient

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNAVAILABLE = 1011
SEND_TIMEOUT_S = 10.0
"""A client that does not take a message within this long is cut off (it resumes with ``since``)."""
TOKEN_RECHECK_S = 60.0


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A close frame's reason is at most 123 bytes; a peer that stopped reading must not hold us.
    raw = reason.encode()[:123].decode(errors="ignore")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, raw), SEND_TIMEOUT_S)


async def _read(websocket: WebSocket, client: LiveClient) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        client.receive(text if text is not None else message.get("bytes") or b"")


async def _write(websocket: WebSocket, client: LiveClient) -> None:
    while True:
        item = await client.next()
        if isinstance(item, Close):
            await _close(websocket, item.code, item.reason)
            return
        try:
            await asyncio.wait_for(websocket.send_text(item), SEND_TIMEOUT_S)
        except TimeoutError:
            log.info("live: client %s stopped reading; cut off", client.principal.get("name"))
            return


async def _recheck(websocket: WebSocket, client: LiveClient, token: str | None) -> None:
    while True:
        await asyncio.sleep(TOKEN_RECHECK_S)
        if await principal_from_token(websocket.app, token) is None:
            client.close(Close(CLOSE_UNAUTHORIZED, "token expired or revoked: sign in again"))
            return


@router.websocket("/api/v1/ws")
async def live_updates(websocket: WebSocket, token: str | None = None) -> None:
    """Events as they happen: send ``subscribe`` after ``hello``; see docs/DASHBOARD.md."""
    engine: Engine = websocket.app.state.engine
    await websocket.accept()
    principal = await principal_from_token(websocket.app, token)
    if principal is None:
        reason = "missing token (?token=...)" if not token else "invalid, expired or revoked token"
        await _close(websocket, CLOSE_UNAUTHORIZED, reason)
        return
    if engine.live is None:
        await _close(websocket, CLOSE_UNAVAILABLE, "live updates are off (live.enabled is false)")
        return
    client = engine.live.connect(principal.as_json())
    tasks = [
        asyncio.create_task(_read(websocket, client)),
        asyncio.create_task(_write(websocket, client)),
        asyncio.create_task(_recheck(websocket, client, token)),
    ]
    for task in tasks:
        task.add_done_callback(_report)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.disconnect()
        for task in tasks:
            task.cancel()
        # asyncio.wait, not gather: the tasks' own cancellations must not pass for this task's (the
        # server's cancel scope swallows only the cancellation it sent).
        await asyncio.wait(tasks)


def _report(task: asyncio.Task[None]) -> None:
    """Retrieve a finished task's exception; a disconnect is the normal end of a connection."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
        log.warning("live: a connection task failed", exc_info=exc)
