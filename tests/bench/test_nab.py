"""``opsmind bench nab`` end to end on a tiny synthetic corpus in NAB's layout, and its layout errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from opsmind.bench.nab import NabLayoutError, detect_corpus, run_nab_benchmark
from opsmind.bench.nab_data import DEFAULT_PROFILES, load_corpus
from opsmind.cli.main import app

T0 = datetime(2020, 1, 1)
STEP = timedelta(minutes=5)


def stamp(i: int, micro: bool = False) -> str:
    return (T0 + i * STEP).strftime("%Y-%m-%d %H:%M:%S" + (".000000" if micro else ""))


def write_file(root: Path, name: str, values: np.ndarray) -> None:
    path = root / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value"] + [f"{stamp(i)},{v:.6f}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def make_corpus(root: Path, profiles: bool = True) -> Path:
    """Three files in two categories; the anomalies (spikes, a level shift) sit inside their windows."""
    rng = np.random.default_rng(7)
    n = 400
    windows: dict[str, list[list[str]]] = {}
    for k, (name, spikes) in enumerate(
        [("catA/spiky.csv", [150, 300]), ("catA/flat.csv", []), ("catB/shift.csv", [250])]
    ):
        values = 50 + 5 * np.sin(np.arange(n) / 20) + rng.normal(0, 1, n)
        for at in spikes:
            values[at] += 40 if k == 0 else 0
        if k == 2:
            values[250:] += 30
        write_file(root, name, values)
        windows[name] = [[stamp(at - 10, True), stamp(at + 10, True)] for at in spikes]
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows, indent=2))
    if profiles:
        (root / "config").mkdir(parents=True, exist_ok=True)
        spec = {p.name: {"CostMatrix": {"tpWeight": p.tp_weight, "fpWeight": p.fp_weight,
                                        "fnWeight": p.fn_weight, "tnWeight": 1.0}}
                for p in DEFAULT_PROFILES}  # fmt: skip
        (root / "config" / "profiles.json").write_text(json.dumps(spec))
    return root


def test_loader_maps_windows_to_rows(tmp_path: Path) -> None:
    corpus = load_corpus(make_corpus(tmp_path))
    by_name = {f.name: f for f in corpus.files}
    assert by_name["catA/spiky.csv"].windows == ((140, 160), (290, 310))
    assert by_name["catA/flat.csv"].windows == ()
    assert by_name["catB/shift.csv"].category == "catB"
    assert corpus.windows == 3 and corpus.rows == 1200
    assert corpus.profiles == DEFAULT_PROFILES


@pytest.mark.parametrize("workers", [1, 2])
def test_run_prints_one_json_object_and_writes_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    data = make_corpus(tmp_path / "nab", profiles=False)
    out = tmp_path / "docs" / "nab.md"
    run_nab_benchmark(data, out, json_out=True, console=Console(stderr=True), workers=workers)
    result = json.loads(capsys.readouterr().out)
    assert result["detector"] == "opsmind"  # the ensemble is the headline (first in DETECTORS)
    for key in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert isinstance(result[key], float)
        for base in ("windowed_gaussian", "river_hst"):
            assert isinstance(result["baselines"][base][key], float)
    assert result["baselines"]["windowed_gaussian"]["standard"] > 50  # the anomalies are obvious
    assert result["categories"]["standard"]["catB"] is not None
    assert result["files"] == 3 and result["windows"] == 3
    text = out.read_text()
    assert f"opsmind bench nab --data {data}" in text
    assert "Published scoreboard" in text and "Windowed Gaussian | 39.6" in text


def test_run_prints_tables(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "nab")
    console = Console(stderr=True, record=True)
    result = run_nab_benchmark(
        data, tmp_path / "nab.md", json_out=False, console=console, detectors=["windowed_gaussian"], workers=1
    )
    assert result["detector"] == "windowed_gaussian" and result["baselines"] == {}
    assert "written to" in console.export_text()


def test_cli(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "nab")
    out = tmp_path / "nab.md"
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(data), "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "standard" in json.loads(res.stdout.strip().splitlines()[-1])
    bad = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2
    assert "nowhere" in bad.output


def test_layout_errors_name_the_path(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "nab")
    labels = root / "labels" / "combined_windows.json"
    with pytest.raises(NabLayoutError, match="nowhere"):
        load_corpus(tmp_path / "nowhere")
    (root / "labels").rename(tmp_path / "labels.bak")
    with pytest.raises(NabLayoutError, match="combined_windows.json"):
        load_corpus(root)
    (tmp_path / "labels.bak").rename(root / "labels")
    good = json.loads(labels.read_text())

    def broken(change: dict[str, object], match: str) -> None:
        labels.write_text(json.dumps({**good, **change}))
        with pytest.raises(NabLayoutError, match=match):
            load_corpus(root)
        labels.write_text(json.dumps(good))

    broken({"catC/missing.csv": []}, "catC/missing.csv")
    broken({"catA/flat.csv": [["2030-01-01 00:00:00", "2030-01-02 00:00:00"]]}, "covers no row")
    broken({"catA/flat.csv": [["not a time", "2020-01-01 01:00:00"]]}, "bad window timestamp")
    write_file(root, "catC/unlabelled.csv", np.ones(10))
    with pytest.raises(NabLayoutError, match="unlabelled.csv"):
        load_corpus(root)
    (root / "data" / "catC" / "unlabelled.csv").unlink()
    (root / "data" / "catA" / "flat.csv").write_text("time,val\n2020-01-01 00:00:00,1\n")
    with pytest.raises(NabLayoutError, match="flat.csv: expected the header"):
        load_corpus(root)
    (root / "config" / "profiles.json").write_text('{"standard": {}}')
    (root / "data" / "catA" / "flat.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n")
    with pytest.raises(NabLayoutError, match="profiles.json"):
        load_corpus(root)


def test_a_composite_scored_with_its_parts_equals_it_scored_alone(tmp_path: Path) -> None:
    corpus = load_corpus(make_corpus(tmp_path))
    alone = detect_corpus(corpus, ["opsmind"], workers=1)["opsmind"]
    together = detect_corpus(corpus, ["opsmind", "opsmind_ensemble", "opsmind_cad"], workers=1)
    for a, b in zip(alone[0], together["opsmind"][0], strict=True):
        np.testing.assert_array_equal(a, b)
    parts = together["opsmind_ensemble"][1] + together["opsmind_cad"][1]
    assert together["opsmind"][1] == pytest.approx(parts)


def test_values_text_offsets_and_weights_are_checked(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "nab")
    flat = root / "data" / "catA" / "flat.csv"
    good = flat.read_text()
    lines = good.splitlines()
    lines[5] = lines[5].split(",")[0] + ",inf"  # one non-finite value would wreck the file's scores
    flat.write_text("\n".join(lines) + "\n")
    with pytest.raises(NabLayoutError, match="flat.csv: the value at .* is 'inf'"):
        load_corpus(root)
    flat.write_bytes(b"timestamp,value\n\xff\xfe\n")
    with pytest.raises(NabLayoutError, match="flat.csv: not a text CSV"):
        load_corpus(root)
    flat.write_text(good)
    profiles = root / "config" / "profiles.json"
    profiles.write_text('{"standard": {"CostMatrix": {"tpWeight": 1, "fpWeight": NaN, "fnWeight": 1}}}')
    with pytest.raises(NabLayoutError, match="not a finite number"):
        load_corpus(root)
    profiles.unlink()
    # A window given with an offset is the same instant as its UTC spelling.
    labels = root / "labels" / "combined_windows.json"
    windows = json.loads(labels.read_text())
    utc = load_corpus(root).files[1].windows  # catA/spiky.csv
    start, end = windows["catA/spiky.csv"][0]
    shifted = (datetime.fromisoformat(start) + timedelta(hours=2)).isoformat() + "+02:00"
    windows["catA/spiky.csv"][0] = [shifted, end]
    labels.write_text(json.dumps(windows))
    assert load_corpus(root).files[1].windows == utc


def test_cli_prints_bracketed_names_and_refuses_an_unwritable_out(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "nab")
    labels = root / "labels" / "combined_windows.json"
    labels.write_text(json.dumps({**json.loads(labels.read_text()), "catA/flat.csv": [["2020-01-01"]]}))
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(root), "--out", str(tmp_path / "n.md")])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "[catA/flat.csv]: a window must be [start, end]" in text
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(root), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "cannot write (Is a directory" in " ".join(res.output.split())
