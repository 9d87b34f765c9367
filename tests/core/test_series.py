from __future__ import annotations

import pytest

from opsmind.types import InvalidSeriesError, Series


def test_labels_are_sorted_and_key_is_canonical() -> None:
    s = Series.of("http_requests_total", {"service": "gateway", "code": "200"})
    assert s.labels == (("code", "200"), ("service", "gateway"))
    assert s.key == 'http_requests_total{code="200",service="gateway"}'
    assert s.service == "gateway"
    assert Series.parse(s.key) == s


def test_parse_round_trips_escapes() -> None:
    s = Series.of("m", {"path": 'a"b\\c\nd'})
    assert Series.parse(s.key) == s


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "é"])
def test_invalid_metric_names(name: str) -> None:
    with pytest.raises(InvalidSeriesError, match="invalid metric name"):
        Series.of(name)


@pytest.mark.parametrize("label", ["__reserved", "a-b", "1x", ""])
def test_invalid_label_names(label: str) -> None:
    with pytest.raises(InvalidSeriesError, match="invalid label name"):
        Series.of("m", {label: "v"})


def test_from_pairs_rejects_duplicates_and_missing_name() -> None:
    with pytest.raises(InvalidSeriesError, match="duplicate label name 'a'"):
        Series.from_pairs([("__name__", "m"), ("a", "1"), ("a", "2")])
    with pytest.raises(InvalidSeriesError, match="no __name__"):
        Series.from_pairs([("a", "1")])


def test_empty_label_values_are_dropped_like_prometheus() -> None:
    assert Series.of("m", {"a": ""}) == Series.of("m")


def test_colons_are_allowed_in_metric_names_only() -> None:
    assert Series.of("job:rate5m").name == "job:rate5m"
    with pytest.raises(InvalidSeriesError):
        Series.of("m", {"a:b": "1"})
