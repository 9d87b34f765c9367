"""kill -9 of a running OpsMind during sustained remote-write ingest loses no acknowledged sample.

A real server process (``python -m opsmind run``) receives batches over HTTP from this test; every batch
answered 204 is recorded. The server is killed with SIGKILL mid-stream, and the database it leaves
behind must contain every acknowledged sample."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from opsmind.ingest.remote_write import encode_remote_write
from opsmind.store.sqlite import SqliteStore
from opsmind.types import Series, SeriesSamples
from tests.conftest import free_port

pytestmark = pytest.mark.slow
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


def test_kill9_loses_no_acknowledged_sample(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "k.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({"storage": {"path": str(db)}, "api": {"port": port}, "notify": {"log": False}})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsmind", "run", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    series = [Series.of("kill_test", {"service": "s", "shard": str(i)}) for i in range(200)]
    acked: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=url, timeout=5) as c:
            batch = 0
            while not stop.is_set():
                body = encode_remote_write(
                    [SeriesSamples(s, (1_700_000_000.0 + batch,), (float(batch),)) for s in series]
                )
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
    store = SqliteStore(str(db))
    try:
        for s in series[::20]:
            got = set(store.query(s, 0, 2e9, "raw").values)
            missing = [b for b in acked if float(b) not in got]
            assert not missing, f"{s.key}: acknowledged batches lost: {missing[:10]}"
    finally:
        store.close()
