"""The connections of one SQLite database: one writer behind a lock and a pool of readers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opsmind.store.sqlite_schema import connect, open_writer


class SqliteConnections:
    """Safe to share between threads: writes go through one connection behind :attr:`lock`; reads of a
    file database use a pool of separate connections, which WAL lets run while a write is in progress.
    ``":memory:"`` keeps everything in one connection (other connections would see another database).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.memory = path == ":memory:"
        #: Held for every write transaction, and for every read of a ``":memory:"`` database.
        self.lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self.closed = False
        self.writer = open_writer(path)

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading, returned to the pool afterwards."""
        if self.closed:
            raise RuntimeError("store is closed")
        if self.memory:
            with self.lock:
                yield self.writer
            return
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        conn = conn or connect(self.path)
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self.closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, rolled back entirely on any error. The caller holds :attr:`lock`."""
        if self.closed:
            raise RuntimeError("store is closed")
        self.writer.execute("BEGIN IMMEDIATE")
        try:
            yield self.writer
        except BaseException:
            self.writer.execute("ROLLBACK")
            raise
        self.writer.execute("COMMIT")

    def close(self) -> None:
        """Close every connection; a reader still in use is closed when it is given back."""
        with self.lock, self._pool_lock:
            if self.closed:
                return
            self.closed = True
            for conn in self._pool:
                conn.close()
            self._pool.clear()
            self.writer.close()
