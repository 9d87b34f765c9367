"""``opsmind detect FILE.csv`` on a file a user might have: a spike is flagged, bad input is named."""

from __future__ import annotations

import csv
import io
import math
import random
from pathlib import Path

from typer.testing import CliRunner

from opsmind.cli.main import app


def write_series(path: Path, n: int = 600, spike_at: int = 450) -> None:
    rng = random.Random(5)
    lines = ["timestamp,value"]
    for i in range(n):
        v = 100 + 10 * math.sin(2 * math.pi * i / 96) + rng.gauss(0, 1)
        if i == spike_at:
            v += 80
        ts = f"2024-03-01 {i // 60 % 24:02d}:{i % 60:02d}:00" if i < 1440 else str(1_709_251_200 + 60 * i)
        lines.append(f"{ts},{v:.3f}")
    lines.insert(300, "2024-03-01 04:59:30,not-a-number")
    path.write_text("\n".join(lines) + "\n")


def test_detect_scores_every_row_and_flags_the_spike(tmp_path: Path) -> None:
    f = tmp_path / "mine.csv"
    write_series(f)
    out = tmp_path / "scored.csv"
    res = CliRunner().invoke(app, ["detect", str(f), "--out", str(out)])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    # The typo is scored as a gap, but not silently: the summary names its line.
    assert "1 without a finite value, left unscored (line 301 has 'not-a-number', not a number)" in said
    assert "1 timestamp not after the row before" in said  # 04:59:30 is written before 04:59:00
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 601
    assert rows[299]["anomaly_probability"] == ""  # the non-numeric value
    assert rows[299]["context_novelty"] == "" and rows[299]["anomaly"] == ""
    probs = [float(r["anomaly_probability"]) for r in rows if r["anomaly_probability"]]
    assert all(0.0 <= p <= 1.0 for p in probs)
    novelty = [float(r["context_novelty"]) for r in rows if r["value"]]
    assert len(novelty) == 600 and all(0.0 <= c <= 1.0 for c in novelty)
    spike = next(r for r in rows if r["value"] and float(r["value"]) > 170)
    assert spike["anomaly"] == "1"
    assert sum(r["anomaly"] == "1" for r in rows) <= 12  # few false alarms on clean seasonal data


def test_detect_names_the_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("timestamp,value\n1700000000,1\nyesterday,2\n")
    res = CliRunner().invoke(app, ["detect", str(f)])
    assert res.exit_code == 2 and "bad.csv:3" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["detect", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "cannot read" in " ".join(res.output.split())


def test_detect_finds_named_columns_and_reads_a_file_without_a_header(tmp_path: Path) -> None:
    swapped = tmp_path / "swapped.csv"
    swapped.write_text(
        "value,timestamp\n" + "".join(f"{i % 7},{1_700_000_000 + 60 * i}\n" for i in range(50))
    )
    out = tmp_path / "scored.csv"
    res = CliRunner().invoke(app, ["detect", str(swapped), "-o", str(out)])
    assert res.exit_code == 0, res.output
    first = next(csv.DictReader(io.StringIO(out.read_text())))
    assert first["timestamp"] == "1700000000" and first["value"] == "0.0"  # not the other way round
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(f"{1_700_000_000 + 60 * i},{i}\n" for i in range(50)))
    res = CliRunner().invoke(app, ["detect", str(bare), "-o", str(out)])
    assert res.exit_code == 0 and "50 rows scored" in res.output, res.output  # the first row is not lost
    first = next(csv.DictReader(io.StringIO(out.read_text())))
    assert first["timestamp"] == "1700000000" and first["value"] == "0.0"


def test_detect_out_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    f = tmp_path / "mine.csv"
    write_series(f, n=50)
    res = CliRunner().invoke(app, ["detect", str(f), "-o", str(tmp_path)])
    # Refused before scoring, which takes minutes for a large file, not after it.
    assert res.exit_code == 2 and "cannot write (Is a directory" in " ".join(res.output.split())
    assert "rows scored" not in res.output


def test_detect_survives_values_at_the_ends_of_the_float_range(tmp_path: Path) -> None:
    # +-1e308 made the context detector's value range infinite: (x - lo) / inf was NaN, and int(NaN) a crash.
    f = tmp_path / "huge.csv"
    f.write_text(
        "timestamp,value\n" + "".join(f"{1_700_000_000 + 60 * i},{(-1) ** i * 1e308}\n" for i in range(300))
    )
    res = CliRunner().invoke(app, ["detect", str(f), "-o", str(tmp_path / "out.csv")])
    assert res.exit_code == 0 and "300 rows scored" in res.output, res.output


def test_detect_counts_timestamps_out_of_order_or_repeated(tmp_path: Path) -> None:
    f = tmp_path / "shuffled.csv"
    times = [0, 60, 120, 60, 180, 180, 240]
    f.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + t},1\n" for t in times))
    res = CliRunner().invoke(app, ["detect", str(f)])
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "7 rows scored" in said, said
    assert "2 timestamps not after the row before (out of order or repeated)" in said
    assert "without a finite value" not in said
