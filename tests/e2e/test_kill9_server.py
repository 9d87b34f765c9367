"""kill -9 of a running OpsMind during sustained remote-write ingest loses no acknowledged sample.

A real server process (``python -m opsmind run``) receives batches over HTTP from this test; every batch
answered 204 is recorded. The server is killed with SIGKILL mid-stream, and the database it leaves
behind must contain every acknowledged sample: on the embedded backends (a SQLite file), and on the
server-grade ones (PostgreSQL, with the bus on Redis Streams)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opsmind.ingest.remote_write import encode_remote_write
from opsmind.store.postgres import PostgresStore
from opsmind.store.sqlite import SqliteStore
from opsmind.types import Series, SeriesSamples
from tests.bus.conftest import delete_prefix, need_redis, new_prefix
from tests.conftest import free_port
from tests.store.conftest import drop_schema, need_postgres, new_schema

pytestmark = pytest.mark.slow
Opener = Callable[[], Any]
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, Any], Opener]]:
    """The settings of one set of backends, and how to open the store the server leaves behind."""
    db = tmp_path / "k.db"
    if request.param == "sqlite":
        yield {"storage": {"path": str(db)}}, lambda: SqliteStore(str(db))
        return
    dsn, url = need_postgres(), need_redis()
    schema, prefix = new_schema(), new_prefix()
    storage = {"backend": "postgres", "dsn": dsn, "pg_schema": schema, "path": str(db)}
    bus = {"backend": "redis", "redis_url": url, "redis_prefix": prefix}
    try:
        yield {"storage": storage, "bus": bus}, lambda: PostgresStore(dsn, schema=schema)
    finally:
        drop_schema(dsn, schema)
        delete_prefix(url, prefix)


def test_kill9_loses_no_acknowledged_sample(tmp_path: Path, backends: tuple[dict[str, Any], Opener]) -> None:
    port = free_port()
    settings, open_store = backends
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**settings, "api": {"port": port}, "notify": {"log": False}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsmind", "run", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = float(int(time.time()) - 3600)  # recent, so the server's maintenance keeps it
    series = [Series.of("kill_test", {"service": "s", "shard": str(i)}) for i in range(200)]
    acked: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=url, timeout=5) as c:
            batch = 0
            while not stop.is_set():
                body = encode_remote_write([SeriesSamples(s, (t0 + batch,), (float(batch),)) for s in series])
                try:
                    if c.post("/api/v1/write", content=body, headers=HEADERS).status_code == 204:
                        acked.append(batch)
                except httpx.HTTPError:
                    return  # the server is gone
                batch += 1

    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        threads = [threading.Thread(target=writer)]
        threads[0].start()
        while len(acked) < 50 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        threads[0].join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 50, "the server did not acknowledge enough batches before the kill"
    store = open_store()
    try:
        for s in series[::20]:
            got = set(store.query(s, 0, 4e9, "raw").values)
            missing = [b for b in acked if float(b) not in got]
            assert not missing, f"{s.key}: acknowledged batches lost: {missing[:10]}"
    finally:
        store.close()
