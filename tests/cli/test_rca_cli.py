"""``opsmind rca rank`` on a CSV in RCAEval's layout: JSON ranking, table, and named errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from opsmind.cli.main import app


def write(path: Path) -> float:
    rng = np.random.default_rng(3)
    t0, fault = 1_692_569_000, 1_692_569_300
    lines = ["time,cartservice_cpu,cartservice_latency-50,front-end_latency-50,ts-order-service_mem"]
    for i in range(600):
        t = t0 + i
        cpu = 0.3 + rng.normal(0, 0.01) + (0.5 if t >= fault else 0.0)
        lat = 20 + rng.normal(0, 1) + (15 if t >= fault + 10 else 0.0)
        fe = 40 + rng.normal(0, 1) + (10 if t >= fault + 20 else 0.0)
        mem = 500 + rng.normal(0, 5)
        lines.append(f"{t},{cpu:.4f},{lat:.2f},{fe:.2f},{mem:.1f}")
    path.write_text("\n".join(lines) + "\n")
    return float(fault)


def test_json_ranking_best_first(tmp_path: Path) -> None:
    p = tmp_path / "data.csv"
    fault = write(p)
    r = CliRunner().invoke(
        app, ["rca", "rank", "--metrics", str(p), "--fault-time", str(fault), "--json", "--top", "3"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [c["service"] for c in out][0] == "cartservice"
    assert len(out) == 3 and set(out[0]) == {"service", "score", "evidence"}
    assert out[0]["score"] >= out[1]["score"] >= out[2]["score"]
    assert "cpu rose" in out[0]["evidence"]


def test_table_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "data.csv"
    fault = write(p)
    table = CliRunner().invoke(app, ["rca", "rank", "--metrics", str(p), "--fault-time", str(fault)])
    assert table.exit_code == 0 and "cartservice" in table.stdout
    early = CliRunner().invoke(app, ["rca", "rank", "--metrics", str(p), "--fault-time", "5"])
    assert early.exit_code == 2 and "leaves 0 rows before it" in early.output
    missing = CliRunner().invoke(
        app, ["rca", "rank", "--metrics", str(tmp_path / "x.csv"), "--fault-time", "5"]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output
