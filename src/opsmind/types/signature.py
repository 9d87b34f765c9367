"""The HMAC-SHA256 signature OpsMind puts on the webhooks it sends (notifications and webhook actions).

Receivers check ``X-OpsMind-Signature: sha256=<hex>`` over ``<timestamp>.<body>`` with the shared
secret, and refuse a timestamp older than a few minutes (a replay). One scheme for every sender, so a
receiver verifies them all the same way.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-OpsMind-Signature"
TIMESTAMP_HEADER = "X-OpsMind-Timestamp"


def _digest(secret: str, body: bytes, timestamp: str) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: float) -> dict[str, str]:
    """The two headers that sign ``body`` at ``now``."""
    ts = str(int(now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"sha256={_digest(secret, body, ts)}"}


def verify(secret: str, body: bytes, headers: dict[str, str], now: float, max_age_s: float = 300.0) -> bool:
    """Whether ``headers`` sign ``body`` under ``secret`` within ``max_age_s`` of ``now`` (for receivers)."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    sig = headers.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or abs(now - int(ts)) > max_age_s or not sig.startswith("sha256="):
        return False
    return hmac.compare_digest(sig.removeprefix("sha256="), _digest(secret, body, ts))
