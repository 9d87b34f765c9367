"""Scenario files: a bad one is refused naming the key, ``fleet:`` merging, traces and synthetic load."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from opsmind.sim.load import DAY, Load, TraceError, read_trace
from opsmind.sim.runner import ScenarioError, SimRun, default_scenario, load_scenario, scenario_from_data
from opsmind.sim.spec import FaultSpec, LoadSpec

SMALL: dict[str, Any] = {
    "services": {
        "web": {"calls": {"db": 1}},
        "db": {"kind": "database", "disk_gb": 10},
    },
    "load": {"entry": "web", "peak_rps": 50},
}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario_from_data(data, "test.yaml")
    return str(info.value)


def _with(**changes: Any) -> dict[str, Any]:
    return {**SMALL, **changes}


def _fault(kind: str, **fields: Any) -> dict[str, Any]:
    return _with(faults=[{"kind": kind, "at_s": 1, **fields}])


def _services(entry: str = "web", **services: Any) -> dict[str, Any]:
    return _with(services=services, load={"entry": entry})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_with(duraton_s=60), "duraton_s: unknown key"),
        (_services(web={"replicaz": 2}), "services.web.replicaz: unknown key"),
        (_with(load={"entry": "web", "peak": 9}), "load.peak: unknown key"),
        (_fault("crash_loop", service="web", sevrity=1), "faults.0.sevrity: unknown key"),
        (_services(web={"calls": {"nope": 1}}), "services.web.calls: unknown service 'nope'"),
        (_services("a", a={"calls": {"b": 1}}, b={"calls": {"a": 1}}), "cycle through ['a', 'b']"),
        (_with(load={"entry": "api"}), "load.entry 'api' is not a service"),
        (_fault("crash_loop", service="nope"), "faults[0].service: unknown service 'nope'"),
        (_fault("crash_loop"), "crash_loop needs a service"),
        (_fault("explode", service="web"), "faults.0.kind"),
        (_fault("disk_full", service="web"), "faults[0].service: disk_full needs a service with a disk"),
        (_fault("model_drift", service="web"), "needs an ML service"),
        (_fault("cache_failure", service="db"), "needs a cache service"),
        (_fault("dependency_outage", service="web"), "needs a database or cache"),
        (_fault("node_failure", zone="x"), "faults[0].zone: unknown zone 'x'"),
        (_fault("node_failure", node="node-x-0"), "faults[0].node: unknown node 'node-x-0'"),
        (
            _fault("memory_leak", service="web", params={"mb": 5}),
            "params.mb: unknown parameter of memory_leak (known: mb_per_min)",
        ),
        (_fault("cpu_saturation", params={"steal": 2}), "params.steal: must be a number from 0.01 to 0.95"),
        (_fault("model_drift", service="web", params={"cause": "x"}), "must be one of model, data"),
        (_fault("crash_loop", service="web", zone="a"), "only node_failure takes a zone"),
        (_services(web={"memory_mb": 2000}), "memory_mb must be below memory_limit_mb"),
        (_with(resolution_s=120), "resolution_s"),
    ],
)
def test_validation_errors_name_the_key(data: dict[str, Any], expected: str) -> None:
    message = _error(data)
    assert message.startswith("test.yaml: invalid scenario")
    assert expected in message, message


def test_scenario_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("services: [unclosed\n")
    with pytest.raises(ScenarioError, match="bad.yaml: not valid YAML"):
        load_scenario(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ScenarioError, match="the top level must be a mapping"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    bad.write_text("fleet: nowhere\n")
    with pytest.raises(ScenarioError, match="fleet 'nowhere': neither a built-in fleet"):
        load_scenario(bad)


def test_injecting_a_fault_the_fleet_cannot_take_is_a_clear_error() -> None:
    run = SimRun(default_scenario(duration_s=600))
    with pytest.raises(ValueError, match="disk_full: service: disk_full needs a service with a disk"):
        run.inject(FaultSpec(kind="disk_full", at_s=0, service="gateway"))
    with pytest.raises(ValueError, match="unknown service 'nope'"):
        run.inject(FaultSpec(kind="crash_loop", at_s=0, service="nope"))
    with pytest.raises(ValueError, match="needs a service"):
        FaultSpec(kind="memory_leak", at_s=0)
    assert run.truth.records == [] and run.fleet.events == []


def test_fleet_default_is_merged_under_the_scenario(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "fleet": "default",
                "name": "merged",
                "duration_s": 900,
                "load": {"peak_rps": 900, "noise": 0},
                "nodes": {"zones": ["a", "b"], "nodes_per_zone": 2},
            }
        )
    )
    sc = load_scenario(path)
    assert sc.name == "merged" and sc.duration_s == 900
    assert sc.load.entry == "gateway" and sc.load.peak_rps == 900 and sc.load.noise == 0  # key by key
    assert len(sc.services) == 11 and sc.services["postgres"].disk_gb == 200
    assert sc.nodes.zones == ["a", "b"]  # other keys replace the fleet's
    # A fleet can also be a file, relative to the scenario.
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(SMALL))
    path.write_text(
        yaml.safe_dump(
            {"fleet": "mine.yaml", "faults": [{"kind": "crash_loop", "at_s": 5, "service": "web"}]}
        )
    )
    sc = load_scenario(path)
    assert set(sc.services) == {"web", "db"} and sc.faults[0].service == "web"
    assert SimRun(sc, tmp_path).step().samples


def _trace_rows() -> list[str]:
    # A quiet night and a busy day at minute resolution, with a gap.
    rows = ["time,host,requests"]
    for minute in range(0, 120):
        stamp = f"2024-03-01T{minute // 60:02d}:{minute % 60:02d}:00+00:00"
        value = "" if minute == 50 else str(10 + minute)
        rows.append(f"{stamp},web-1,{value}")
    return rows


def test_trace_csv_and_gzipped_csv_with_iso_times(tmp_path: Path) -> None:
    text = "\n".join(_trace_rows()) + "\n"
    plain = tmp_path / "trace.csv"
    plain.write_text(text)
    zipped = tmp_path / "trace.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    t1, v1 = read_trace(plain)
    t2, v2 = read_trace(zipped, value_column="requests")
    assert np.array_equal(t1, t2) and np.array_equal(v1, v2)
    assert len(t1) == 119  # the empty value is a gap
    assert t1[0] == 0 and t1[1] == 60 and v1[0] == 10 and v1[-1] == 129
    # Replayed from the scenario start, scaled so the maximum is peak_rps, interpolated between rows.
    load = Load(LoadSpec(entry="web", trace="trace.csv.gz", peak_rps=258), np.random.default_rng(0), tmp_path)
    assert load.rps(0, 0, 5) == pytest.approx(20)
    assert load.rps(30, 0, 5) == pytest.approx(21)
    assert load.rps(119 * 60, 0, 5) == pytest.approx(258)  # the last row
    assert load.rps(50 * 60, 0, 5) == pytest.approx(120)  # across the gap
    # A scenario names the trace relative to its own folder.
    scenario = tmp_path / "traced.yaml"
    scenario.write_text(
        yaml.safe_dump({**SMALL, "load": {"entry": "web", "trace": "trace.csv", "peak_rps": 258}})
    )
    run = SimRun(load_scenario(scenario), scenario.parent)
    run.step()
    assert run.fleet.entry_rps == pytest.approx(20 + 5 / 60 * 2)


def test_trace_value_column_and_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("ts,a,b\n0,1,100\n60,2,200\n")
    assert list(read_trace(p, "a")[1]) == [1, 2]
    assert list(read_trace(p)[1]) == [100, 200]  # no column named like a value: the last one
    with pytest.raises(TraceError, match="no column 'c'"):
        read_trace(p, "c")
    cases = {
        "ts,v\n0,1\n60,lots\n": ":3: could not convert",
        "ts,v\n0,1\nyesterday,2\n": ":3: 'yesterday' is neither Unix seconds nor ISO 8601",
        "ts,v\n0,1\n60,-4\n": ":3: the time must be finite and the value finite and non-negative",
        "ts,v\n0,1\n60\n": ":3: 1 columns, no 'v'",
        "ts,v\n0,1\n": "needs at least two rows",
        "ts\n0\n": "needs a header row",
    }
    for text, expected in cases.items():
        p.write_text(text)
        with pytest.raises(TraceError) as info:
            read_trace(p)
        assert str(info.value).startswith(str(p)) and expected in str(info.value)
    p.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(TraceError, match="not a UTF-8 CSV"):
        read_trace(p)
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "absent.csv")


def test_synthetic_load_has_a_daily_shape() -> None:
    spec = LoadSpec(peak_rps=600, daily_amplitude=0.5, noise=0, bursts_per_day=0)
    load = Load(spec, np.random.default_rng(0))
    start = 1_767_225_600.0  # 2026-01-01 00:00 UTC, a Thursday
    by_hour = [load.rps(h * 3600, start, 5) for h in range(24)]
    assert max(by_hour) == pytest.approx(600) and by_hour.index(max(by_hour)) == 15  # mid-afternoon
    assert min(by_hour) == pytest.approx(300) and by_hour.index(min(by_hour)) == 3  # before dawn
    # Weekends dip, and noise and bursts are seeded.
    at_peak = [load.rps(d * DAY + 15 * 3600, start, 5) for d in range(1, 5)]  # Friday to Monday
    dip = 600 * (1 - spec.weekly_amplitude)
    assert at_peak == pytest.approx([600, dip, dip, 600])  # Saturday and Sunday (it was Friday and Saturday)
    noisy = LoadSpec(peak_rps=600, bursts_per_day=50)
    a = [Load(noisy, np.random.default_rng(3)).rps(t, start, 5) for t in range(0, 3600, 5)]
    b = [Load(noisy, np.random.default_rng(3)).rps(t, start, 5) for t in range(0, 3600, 5)]
    assert a == b and len(set(a)) > 100


def test_a_run_follows_the_daily_cycle() -> None:
    run = SimRun(default_scenario(duration_s=DAY, resolution_s=60, load={"noise": 0, "bursts_per_day": 0}))
    rates = []
    while not run.done:
        run.step()
        rates.append(run.fleet.entry_rps)
    hourly = [float(np.mean(rates[h * 60 : (h + 1) * 60])) for h in range(24)]
    assert max(hourly) / min(hourly) > 1.8
    assert hourly.index(max(hourly)) in (14, 15) and hourly.index(min(hourly)) in (2, 3)
