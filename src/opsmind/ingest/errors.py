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


def ahead_of_clock(where: str, ts: float, now: float, grace_s: float) -> IngestError | None:
    """The 400 error for a timestamp more than ``grace_s`` ahead of the engine's clock ``now``, else None.

    Why refuse them: the store takes "now" from its newest point (so that simulated and replayed time
    work), and one sample from the far future would make every chart ask for hourly rollups; a timestamp
    that far ahead is almost always milliseconds sent as seconds or a sender with a wrong clock. Grafana
    Mimir refuses such samples the same way (its ``creation_grace_period``, 10 minutes by default)."""
    if ts <= now + grace_s:
        return None
    return IngestError(
        f"{where}: timestamp {ts:.15g} is {ts - now:.15g} s ahead of the engine's clock ({now:.3f}); "
        f"at most {grace_s:g} s ahead is accepted (ingest.future_grace_s). Milliseconds sent as seconds, "
        "or a sender's clock that is off?",
        400,
    )
