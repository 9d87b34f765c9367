"""Silences over real HTTP: create, list by state, expire; bad silences refused with a reason."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsmind.types import AuditEntry
from tests.conftest import RunningServer


def body(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "matchers": [{"name": "service", "value": "checkout", "isRegex": False, "isEqual": True}],
        "endsAt": time.time() + 3600,
        "createdBy": "ana",
        "comment": "deploying",
    }
    return {**base, **extra}


def test_create_list_expire(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/silences", json=body())
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert r.json()["state"] == "active"
        later = c.post("/api/v1/silences", json=body(startsAt=time.time() + 600)).json()
        assert later["state"] == "pending"
        assert [s["id"] for s in c.get("/api/v1/silences", params={"state": "active"}).json()] == [sid]
        gone = c.delete(f"/api/v1/silences/{sid}", params={"by": "bob"})
        assert gone.status_code == 200 and gone.json()["state"] == "expired"
        assert c.get("/api/v1/silences", params={"state": "active"}).json() == []
        assert c.delete("/api/v1/silences/nope").status_code == 404
    verbs = {(e.verb, e.actor) for e in server.engine.store.find(AuditEntry)}
    assert ("silence", "user:ana") in verbs and ("expire_silence", "user:bob") in verbs


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (body(matchers=[]), 422, "matchers"),
        (body(matchers=[{"name": "bad-name", "value": "x"}]), 422, "invalid label name"),
        (body(matchers=[{"name": "service", "value": "(", "isRegex": True}]), 422, "regular expression"),
        (body(endsAt=time.time() - 10), 422, "in the past"),
        (body(startsAt=time.time() + 7200), 422, "must be after startsAt"),
        (body(unknown=1), 422, "unknown"),
        ({"matchers": [{"name": "a", "value": "b"}]}, 422, "endsAt"),
        # A misspelt key was ignored: the pattern was then matched literally.
        (body(matchers=[{"name": "service", "value": "check.*", "isregex": True}]), 422, "unknown key"),
        # Milliseconds sent as seconds: a one-hour silence that would last for ever.
        (body(endsAt=(time.time() + 3600) * 1000), 422, "not milliseconds"),
        (body(endsAt=1e300), 422, "days ahead"),
    ],
)
def test_bad_silences_are_refused_with_the_reason(
    server: RunningServer, payload: dict[str, Any], status: int, reason: str
) -> None:
    with server.client() as c:
        r = c.post("/api/v1/silences", json=payload)
        assert r.status_code == status, r.text
        assert reason.lower() in r.text.lower()
        assert c.get("/api/v1/silences").json() == []  # nothing stored


def test_a_matcher_value_that_is_not_unicode_is_refused(server: RunningServer) -> None:
    # JSON may escape half a surrogate pair; such a value cannot be stored, and was a 500.
    raw = b'{"matchers": [{"name": "service", "value": "\\ud800"}], "endsAt": %d, "createdBy": "ana"}' % (
        time.time() + 3600
    )
    with server.client() as c:
        r = c.post("/api/v1/silences", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert "matchers.0.value" in r.json()["detail"] and "not valid Unicode" in r.json()["detail"]
        assert c.get("/api/v1/silences").json() == []
