"""Opening the store that ``storage.backend`` names.

``sqlite`` (the embedded default) needs nothing but a file; ``postgres`` imports psycopg only when chosen,
so a laptop install never loads it. Both implement :class:`~opsmind.store.protocols.Store` and pass the
same contract suite (tests/store/test_store_contract.py). The API's users and tokens go where the store
goes (:func:`open_credentials`).
"""

from __future__ import annotations

from opsmind.config import StorageSettings
from opsmind.store.credentials import CredentialStore
from opsmind.store.protocols import Store
from opsmind.store.sqlite import SqliteStore


def open_store(settings: StorageSettings, max_series: int = 1_000_000) -> Store:
    """The store of ``settings.backend``. Raises ConnectionError (naming the server) when PostgreSQL
    cannot be reached."""
    if settings.backend == "postgres":
        from opsmind.store.postgres import PostgresStore

        assert settings.dsn is not None  # StorageSettings refuses postgres without a dsn
        return PostgresStore(settings.dsn, settings, max_series=max_series, schema=settings.pg_schema)
    return SqliteStore(settings.path, settings, max_series=max_series)


def open_credentials(settings: StorageSettings) -> CredentialStore:
    """The users and tokens of ``settings.backend``: with ``postgres`` in the schema ``settings.pg_schema``
    of ``settings.dsn`` (beside the store's tables, so they survive the engine's host), else in the SQLite
    database of ``settings.path``. Raises ConnectionError (naming the server) when PostgreSQL cannot be
    reached."""
    if settings.backend == "postgres":
        from opsmind.store.postgres_credentials import PostgresCredentialDb

        assert settings.dsn is not None  # StorageSettings refuses postgres without a dsn
        return CredentialStore(PostgresCredentialDb(settings.dsn, settings.pg_schema))
    return CredentialStore(settings.path)


def check_reachable(settings: StorageSettings, timeout_s: float = 5.0) -> None:
    """Connect to the PostgreSQL server of ``settings.dsn`` and leave at once, changing nothing.
    ConnectionError naming the problem when it cannot be reached or refuses the login."""
    import psycopg

    assert settings.dsn is not None
    try:
        with psycopg.connect(settings.dsn, connect_timeout=max(1, round(timeout_s))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ConnectionError(f"storage.dsn: cannot reach PostgreSQL: {exc}".strip()) from exc
