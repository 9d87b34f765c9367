"""An acknowledged append survives ``kill -9`` of the writing process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opsmind.store import SqliteStore
from opsmind.types import Series

T0 = 1_700_000_000.0
SERIES = 20
POINTS = 5  # per series and batch; batch ``seq`` covers T0 + seq*POINTS .. T0 + seq*POINTS + POINTS - 1

WRITER = textwrap.dedent(
    f"""
    import sys
    from opsmind.store import SqliteStore
    from opsmind.types import Series, SeriesSamples

    store = SqliteStore(sys.argv[1])
    series = [Series.of("kill9_total", {{"n": str(i)}}) for i in range({SERIES})]
    seq = 0
    while True:
        base = {T0} + seq * {POINTS}
        ts = tuple(base + k for k in range({POINTS}))
        store.append([SeriesSamples(s, ts, (float(seq),) * {POINTS}) for s in series])
        print(seq, flush=True)  # only after append returned: this batch is acknowledged
        if seq % 40 == 39:
            store.maintain(base)  # also get killed inside rollups and compaction
        seq += 1
    """
)


@pytest.mark.slow
def test_acknowledged_batches_survive_kill9(tmp_path: Path) -> None:
    db = tmp_path / "kill9.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    acked = -1
    deadline = time.monotonic() + 3.0
    try:
        while time.monotonic() < deadline or acked < 100:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"writer exited early: {proc.stderr.read()}")
            if line.endswith("\n"):
                acked = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    with SqliteStore(str(db)) as store:
        end = T0 + (acked + 1) * POINTS - 1
        for i in range(SERIES):
            r = store.query(Series.of("kill9_total", {"n": str(i)}), T0, end, "raw")
            assert len(r.timestamps) == (acked + 1) * POINTS, f"series {i} lost acknowledged points"
            assert r.values == [float(seq) for seq in range(acked + 1) for _ in range(POINTS)]
