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


def write_spike(path: Path) -> float:
    """gw calls api: api's traffic follows gw's (and its own jobs) before the fault; at the fault a load
    spike at gw doubles api's traffic, which changes more in noise units than gw's own."""
    rng = np.random.default_rng(11)
    t0, n, fault = 1_692_569_000, 600, 1_692_569_450
    gw = 300.0 + np.cumsum(rng.normal(0.0, 2.0, n))
    api = 2.0 * gw + np.cumsum(rng.normal(0.0, 2.0, n))
    after = np.arange(n) >= fault - t0
    gw[after] += 60.0
    api[after] += 400.0
    lines = ["time,gw_request_rate,api_request_rate,gw_latency_seconds,api_latency_seconds"]
    for i in range(n):
        lat_api = 0.02 + rng.normal(0.0, 0.001)
        lines.append(f"{t0 + i},{gw[i]:.3f},{api[i]:.3f},{0.03 + lat_api:.5f},{lat_api:.5f}")
    path.write_text("\n".join(lines) + "\n")
    return float(fault)


def test_graph_option_learned_file_and_none(tmp_path: Path) -> None:
    p = tmp_path / "spike.csv"
    fault = write_spike(p)

    def first(*graph: str) -> str:
        args = ["rca", "rank", "--metrics", str(p), "--fault-time", str(fault), "--json", *graph]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        return str(json.loads(r.stdout)[0]["service"])

    assert first() == "api"  # by default no graph: the biggest change wins
    assert first("--graph", "none") == "api"
    assert first("--graph", "learned") == "gw"  # api's load is explained by its learned caller
    declared = tmp_path / "graph.json"
    declared.write_text(json.dumps({"gw": ["api"]}))
    assert first("--graph", str(declared)) == "gw"
    declared.write_text(json.dumps({"gw": "api"}))
    bad = CliRunner().invoke(
        app, ["rca", "rank", "--metrics", str(p), "--fault-time", str(fault), "--graph", str(declared)]
    )
    assert bad.exit_code == 2 and "expected" in bad.output


def test_an_infinite_cell_is_a_gap_and_a_repeated_column_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "data.csv"
    fault = write(p)
    lines = p.read_text().splitlines()
    cells = lines[100].split(",")
    cells[1] = "inf"  # one cell of cartservice_cpu, well before the fault
    lines[100] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(app, ["rca", "rank", "--metrics", str(p), "--fault-time", str(fault), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["service"] == "cartservice"
    dup = tmp_path / "dup.csv"
    dup.write_text("time,a_cpu,a_cpu\n" + "".join(f"{i},{i},{-i}\n" for i in range(20)))
    res = CliRunner().invoke(app, ["rca", "rank", "--metrics", str(dup), "--fault-time", "10"])
    assert res.exit_code == 2 and "'a_cpu' appears more than once" in " ".join(res.output.split())
