"""Errors every ingestion path raises for bad input; the API maps them to 4xx problem responses."""

from __future__ import annotations


class IngestError(ValueError):
    """Input rejected as a whole; nothing from it was stored.

    ``status`` is the HTTP status the API answers with (400 malformed, 413 too large, 415 wrong
    encoding or content type, 422 semantically invalid, 429 over a series limit)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def over_limit(what: str, count: int, limit: int, setting: str) -> IngestError:
    """The 413 error for a request with ``count`` of ``what`` (bytes, series, samples) over ``limit``.

    ``setting`` names the ``ingest.*`` configuration key, so the sender's operator knows what to raise.
    """
    return IngestError(f"request has {count} {what}, over the limit of {limit} (ingest.{setting})", 413)
