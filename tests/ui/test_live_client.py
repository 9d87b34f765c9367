"""The dashboard's WebSocket client (web/src/live.js) under Node's test runner against a scripted socket:
subscription after hello, resume by seq after a reconnect, reset, refusal (4401), backoff, stale views."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ui]
ROOT = Path(__file__).resolve().parents[2]


def test_the_live_client_resumes_by_seq_and_backs_off() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("OPSMIND_REQUIRE_BROWSER"):
            pytest.fail("node is required here (apt-get install npm brings it)")
        pytest.skip("node not installed")
    out = subprocess.run(
        [node, "--test", str(ROOT / "web" / "test" / "live.test.js")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "# fail 0" in out.stdout, out.stdout
