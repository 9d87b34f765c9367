"""load_trace on generated files: the known layouts, a generic timestamp,value CSV, resampling to
the minute grid, gaps and invalid rows, and clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from opsmind.bench.traces import default_traces, load_trace


def write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_nasa_layout_marks_invalid_rows(tmp_path: Path) -> None:
    text = (
        "timestamp,unix_s,requests,valid\n"
        "1995-07-01T00:00:00-04:00,804571200,42,1\n"
        "1995-07-01T00:01:00-04:00,804571260,,0\n"
        "1995-07-01T00:02:00-04:00,804571320,0,0\n"
        "1995-07-01T00:03:00-04:00,804571380,57,1\n"
    )
    tr = load_trace(write(tmp_path / "nasa_1995_per_minute.csv.gz", text))
    assert tr.name == "nasa_http_1995"
    assert tr.t.tolist() == [804571200 + 60 * i for i in range(4)]
    assert np.array_equal(tr.y, [42, np.nan, np.nan, 57], equal_nan=True)
    assert (tr.invalid, tr.missing, tr.rows) == (2, 2, 4)


def test_worldcup_layout_with_absent_minutes(tmp_path: Path) -> None:
    text = "period,count\n1998-04-30 21:30:00,2\n1998-04-30 21:31:00,11\n1998-04-30 21:34:00,5\n"
    tr = load_trace(write(tmp_path / "wc.csv", text))
    assert tr.name == "worldcup98"
    assert tr.t[0] == 893971800  # UTC
    assert np.array_equal(tr.y, [2, 11, np.nan, np.nan, 5], equal_nan=True)
    assert tr.missing == 2 and tr.invalid == 0


def test_generic_sub_minute_series_is_averaged_per_minute(tmp_path: Path) -> None:
    rows = "\n".join(f"{1655316000 + 15 * i},{float(i)}" for i in range(8))
    crane = tmp_path / "crane_dsp_production_cpu"
    crane.mkdir()
    tr = load_trace(write(crane / "input15.csv.gz", "ts,value\n" + rows + "\n"))
    assert tr.name == "crane_input15"
    assert tr.y.tolist() == [1.5, 5.5]
    assert tr.step_s == 60


def test_generic_timestamp_value_with_iso_dates_and_unsorted_rows(tmp_path: Path) -> None:
    text = "Timestamp,Value\n2024-01-01T00:02:00Z,3\n2024-01-01T00:00:30,1\n2024-01-01T01:00:00+01:00,7\n"
    tr = load_trace(write(tmp_path / "load.csv", text))
    assert tr.name == "load"
    assert np.array_equal(tr.y, [4, np.nan, 3], equal_nan=True)  # 01:00+01:00 is 00:00 UTC, with 00:00:30
    assert tr.t[0] == 1704067200


def test_millisecond_stamps(tmp_path: Path) -> None:
    tr = load_trace(write(tmp_path / "ms.csv", "timestamp,value\n1700000000000,1\n1700000060000,2\n"))
    assert tr.t.tolist() == [1699999980, 1700000040] and tr.y.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,value\n1,2\n", "no a timestamp column"),
        ("timestamp,reading\n1,2\n", "no a value column"),
        ("timestamp,value\n60,1\nyesterday,2\n", "line 3: unparseable timestamp"),
        ("timestamp,value\n60,1\n120,lots\n", "line 3: value is not a number"),
        ("timestamp,value\n60\n", "line 2: 1 fields"),
        ("timestamp,value\n", "no data rows"),
        ("", "empty file"),
        ("timestamp,value\n60,\n120,nan\n", "no valid value"),
        ("timestamp,value\n0,1\n1700000000,2\n", "span 19,676 days"),  # a stray row: 28 million minutes
    ],
)
def test_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=message) as info:
        load_trace(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_trace(tmp_path / "nope.csv")


def test_default_traces_lists_what_exists(tmp_path: Path) -> None:
    (tmp_path / "nasa_http_1995").mkdir()
    nasa = write(tmp_path / "nasa_http_1995" / "nasa_1995_per_minute.csv.gz", "x\n")
    (tmp_path / "crane_dsp_production_cpu").mkdir()
    crane = write(tmp_path / "crane_dsp_production_cpu" / "input9.csv.gz", "x\n")
    assert default_traces(tmp_path) == [nasa, crane]
    assert default_traces(tmp_path / "missing") == []
