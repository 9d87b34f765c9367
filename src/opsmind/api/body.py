"""Reading a request body with a hard size cap, so an oversized request is refused, not buffered."""

from __future__ import annotations

from fastapi import Request

from opsmind.ingest.errors import IngestError


async def read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise IngestError(f"invalid Content-Length header {declared!r}", 400)
        if int(declared) > limit:
            raise IngestError(f"request body of {declared} bytes exceeds the limit of {limit} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(f"request body exceeds the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)
