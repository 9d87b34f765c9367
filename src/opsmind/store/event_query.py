"""The one query of ``EventStore.find`` over the ``events`` table, which both backends lay out alike
(``kind, id, at, service, status, body``); only the placeholder differs (``?`` for SQLite, ``%s`` for
psycopg), and what a negative limit is written as, which each backend adds itself."""

from __future__ import annotations

from typing import Any


def find_query(
    kind: str,
    *,
    service: str | None,
    status: str | None,
    since: float | None,
    until: float | None,
    newest_first: bool,
    mark: str,
) -> tuple[str, list[Any]]:
    """The SELECT (ending ``LIMIT <mark>``) and its parameters but the limit: records of ``kind`` with
    ``since <= at <= until``, newest first unless ``newest_first`` is false, ties on ``at`` broken by id."""
    where: list[str] = [f"kind = {mark}"]
    params: list[Any] = [kind]
    for column, value in (("service", service), ("status", status)):
        if value is not None:
            where.append(f"{column} = {mark}")
            params.append(str(value))
    for op, bound in ((">=", since), ("<=", until)):
        if bound is not None:
            where.append(f"at {op} {mark}")
            params.append(bound)
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT body FROM events WHERE {' AND '.join(where)} ORDER BY at {order}, id {order} LIMIT {mark}"
    return sql, params
