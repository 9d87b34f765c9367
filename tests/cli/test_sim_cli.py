"""``opsmind sim run`` and ``opsmind bench sim`` as a user calls them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from opsmind.cli.main import app

SCENARIO = """
name: shop
seed: 3
duration_s: 1800
services:
  web: {replicas: 3, calls: {db: 2}}
  db: {kind: database, replicas: 1, concurrency: 32, disk_gb: 50}
load: {entry: web, peak_rps: 200}
faults:
  - {kind: bad_deployment, service: web, at_s: 600, params: {error_rate: 0.25}}
  - {kind: disk_full, service: db, at_s: 900, duration_s: 300, params: {gb_per_hour: 100}}
"""


def test_sim_run_writes_metrics_events_and_ground_truth(tmp_path: Path) -> None:
    f = tmp_path / "shop.yaml"
    f.write_text(SCENARIO)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sim", "run", str(f), "--out", str(out)])
    assert res.exit_code == 0, res.output
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [(x["kind"], x["root_service"]) for x in truth["faults"]] == [
        ("bad_deployment", "web"),
        ("disk_full", "db"),
    ]
    assert truth["faults"][0]["start"] == 1_767_225_600.0 + 600
    with gzip.open(out / "metrics.csv.gz", "rt") as fh:
        header = fh.readline().strip()
        rows = [fh.readline() for _ in range(5)]
    assert header == "timestamp,series,value" and all(rows)
    reasons = {json.loads(line)["reason"] for line in (out / "events.ndjson").read_text().splitlines()}
    assert "Deployment" in reasons and "ConfigChanged" in reasons
    # Nothing in the engine-facing outputs names the fault.
    assert "bad_deployment" not in (out / "events.ndjson").read_text()


def test_sim_run_refuses_a_bad_scenario_naming_the_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(SCENARIO.replace("calls: {db: 2}", "calls: {dbb: 2}"))
    res = CliRunner().invoke(app, ["sim", "run", str(f), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "unknown service 'dbb'" in " ".join(res.output.split())
    for speed in ("fast", "nan", "inf", "0"):  # nan ran at full speed without a word
        res = CliRunner().invoke(app, ["sim", "run", str(f), "--speed", speed])
        assert res.exit_code == 2 and "invalid --speed" in res.output, (speed, res.output)


def test_bench_sim_prints_the_json_key(tmp_path: Path) -> None:
    out = tmp_path / "sim.md"
    res = CliRunner().invoke(app, ["bench", "sim", "--json", "--hours", "0.2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["sim_seconds_per_wall_second"] > 0 and result["services"] >= 2
    assert "simulated s per wall s" in out.read_text()
