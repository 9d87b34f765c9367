"""``opsmind bench ui`` in the real browser on a small world (1,000 points per chart, 20 live samples), a
missing browser refused with what to install, and ``opsmind ui screenshots`` refusing bad arguments before
it starts anything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsmind.bench.ui import CHROMIUM
from opsmind.cli.main import app

FIGURES = ("first_render_ms", "push_latency_ms", "push_latency_p50_ms", "push_latency_max_ms")


def need_chromium() -> None:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("OPSMIND_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is required here (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


@pytest.mark.slow
@pytest.mark.ui
def test_a_small_run_prints_one_json_object_of_positive_figures(tmp_path: Path) -> None:
    need_chromium()
    out = tmp_path / "ui.md"
    argv = ["bench", "ui", "--json", "--points", "1000", "--events", "20", "--loads", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "opsmind", *argv], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout
    res = json.loads(lines[0])
    for key in FIGURES:
        assert isinstance(res[key], int | float) and res[key] > 0, (key, res)
    assert res["push_latency_p50_ms"] <= res["push_latency_ms"] <= res["push_latency_max_ms"], res
    assert res["push_events"] == 20 and res["push_events_drawn"] + res["push_events_missing"] == 20, res
    assert res["points_per_chart"] == 1000 and res["charts"] == 4, res
    assert len(res["first_render_runs_ms"]) == 1, res
    text = out.read_text()
    assert "`opsmind bench ui --points 1000 --events 20 --loads 1`" in text
    assert "not measured at the goal's size" in text and "No peer" in text


def test_a_missing_browser_is_refused_with_what_to_install(tmp_path: Path) -> None:
    out = tmp_path / "ui.md"
    missing = tmp_path / "no-chromium"
    r = CliRunner().invoke(app, ["bench", "ui", "--browser", str(missing), "--out", str(out)])
    text = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert f"no browser at {missing}" in text and "apt-get install chromium" in text, text
    assert not out.exists()


def test_screenshots_refuse_bad_arguments_before_starting_anything(tmp_path: Path) -> None:
    def run(argv: list[str]) -> tuple[int, str]:
        r = CliRunner().invoke(app, ["ui", "screenshots", *argv])
        return r.exit_code, " ".join(r.output.split())

    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"")
    code, text = run(["--out", str(a_file)])
    assert code == 2 and "not a folder" in text, text
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, text = run(["--out", str(tmp_path / "shots"), "--port", str(port)])
    assert code == 2 and f"--port {port}: already in use" in text, text
    code, text = run(["--port", "0"])
    assert code == 2, text
    code, text = run(["--out", str(tmp_path / "shots"), "--browser", str(tmp_path / "no-chromium")])
    assert code == 2 and "no browser at" in text, text
    assert not (tmp_path / "shots").exists()
