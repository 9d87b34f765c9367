"""Reading metrics in RCAEval's layout: time + <service>_<metric> columns; bad input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsmind.rca.frame import MetricFrame, RcaInputError, read_csv, split_column


def test_columns_split_at_the_first_underscore() -> None:
    assert split_column("ts-order-service_cpu") == ("ts-order-service", "cpu")
    assert split_column("cart_container_cpu_usage") == ("cart", "container_cpu_usage")
    assert split_column("front-end_latency-50") == ("front-end", "latency-50")
    assert split_column("nounderscore") is None
    assert split_column("_cpu") is None and split_column("cart_") is None


def test_read_csv_with_gaps_unsorted_rows_and_odd_columns(tmp_path: Path) -> None:
    p = tmp_path / "data.csv"
    p.write_text("time,carts-db_cpu,front-end_latency-50,weird\n3,0.3,,x\n1,0.1,10,y\n2,abc,12,z\n")
    f = read_csv(p)
    np.testing.assert_array_equal(f.times, [1, 2, 3])  # sorted by time
    assert f.services == ("carts-db", "front-end") and f.metrics == ("cpu", "latency-50")
    assert f.skipped == ("weird",)
    assert f.values[0, 0] == 0.1 and np.isnan(f.values[1, 0]) and np.isnan(f.values[2, 1])
    assert f.columns == ["carts-db_cpu", "front-end_latency-50"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("t,a_cpu\n1,2\n2,3\n", "needs a 'time' column"),
        ("time,a_cpu\n1,2\n", "at least two rows"),
        ("time,a_cpu\n1,2\n2\n", ":3: 1 cells for 2 columns"),
        ("time,a_cpu\n1,2\nnoon,3\n", "time 'noon' is not a number"),
        ("time,cpu\n1,2\n2,3\n", "no column named <service>_<metric>"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(RcaInputError, match=message):
        read_csv(p)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RcaInputError, match="cannot read"):
        read_csv(tmp_path / "nope.csv")


def test_from_columns_rejects_mismatched_shapes() -> None:
    with pytest.raises(RcaInputError):
        MetricFrame(np.arange(3.0), ("a",), ("cpu",), np.zeros((2, 1)))
