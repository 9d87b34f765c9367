"""The noise benchmark's scorer on hand-made runs: raw alert episodes, compression, purity, missed,
false incidents; and one short simulated run end to end."""

from __future__ import annotations

import networkx as nx
import pytest

from opsmind.bench.noise import FEEDBACK_SEED, FIRST_SEED, Tally, fault_of, raw_alerts, scored_tasks
from opsmind.bench.noise_cases import FAULTS, FaultWindow, Observed, Run, run
from opsmind.types import Incident


def incident(iid: str) -> Incident:
    return Incident(id=iid, at=0.0, title=iid, opened_at=0.0, last_anomaly_at=0.0)


def hand_made() -> Run:
    faults = [FaultWindow("crash_loop", "a", 1000, 2000), FaultWindow("disk_full", "b", 5000, 6000)]
    anomalies = [
        ("s1", "a", 1000.0),
        ("s1", "a", 1100.0),  # same episode as the first (100 s apart)
        ("s1", "a", 1500.0),  # a new episode (400 s after the last)
        ("s2", "a", 1010.0),
        ("s3", "c", 3000.0),  # background, no fault
        ("s4", "b", 5100.0),
    ]
    obs = Observed()
    obs.incidents = {k: incident(k) for k in ("pure", "mixed", "false")}
    obs.members = {
        "pure": [("s1", 1000.0), ("s1", 1100.0), ("s2", 1010.0), ("s1", 1500.0)],
        "mixed": [("s3", 3000.0), ("s4", 5100.0)],
        "false": [("s3", 3000.0)],
    }
    return Run("hand", "default", 1, faults, anomalies, {"topology": obs}, nx.DiGraph(), 7000.0)


def test_raw_alerts_are_episodes_per_series() -> None:
    assert raw_alerts(hand_made()) == 5


def test_fault_windows_label_anomalies() -> None:
    r = hand_made()
    assert (fault_of(r, 1000), fault_of(r, 2000), fault_of(r, 3000), fault_of(r, 5500)) == (0, 0, None, 1)


def test_tally_scores_compression_purity_missed_and_false_incidents() -> None:
    t = Tally()
    t.add(hand_made(), "topology")
    got = t.as_json()
    assert got["raw_alerts"] == 5 and got["incidents"] == 3
    assert got["compression"] == round(1 - 3 / 5, 4)
    assert got["purity"] == 0.5  # "mixed" holds background noise and fault 1's anomaly
    assert (got["missed"], got["false_incidents"], got["faults"]) == (0, 1, 2)
    # Suppressing the incident that held fault 0 misses it.
    t = Tally()
    t.add(hand_made(), "topology", keep={"mixed", "false"})
    assert t.as_json()["missed"] == 1 and t.as_json()["incidents"] == 2


def test_scored_runs_start_at_the_reported_seeds_unless_told_otherwise() -> None:
    assert scored_tasks(2) == [
        (t, s) for t in ("default", "direct-db", "fanout") for s in (FIRST_SEED, FIRST_SEED + 1)
    ]
    other = scored_tasks(3, first_seed=2000)
    assert {s for _, s in other} == {2000, 2001, 2002} and len(other) == 9
    assert FEEDBACK_SEED not in {s for _, s in scored_tasks(4)}  # training runs are never scored


@pytest.mark.slow
def test_one_simulated_run_end_to_end() -> None:
    r = run("default", 1)
    assert len(r.faults) == FAULTS and all(f.start < f.end for f in r.faults)
    assert r.anomalies and set(r.observed) == {"topology", "service"}
    topo, svc = r.observed["topology"], r.observed["service"]
    assert topo.incidents and len(topo.incidents) <= len(svc.incidents)  # topology groups more together
    assert all(topo.members[i] for i in topo.incidents)  # every incident holds its anomalies
    assert set(topo.at_opening) <= set(topo.incidents)


def test_the_cli_reports_the_benchmarks_seeds_by_default() -> None:
    from opsmind.cli.main import NOISE_FIRST_SEED

    assert NOISE_FIRST_SEED == FIRST_SEED  # the CLI keeps its own copy so its start does not import bench
