"""JSON push decoding: both body shapes, and a precise, located reason for every kind of bad input."""

from __future__ import annotations

import json

import pytest

from opsmind.config import IngestSettings
from opsmind.ingest.errors import IngestError
from opsmind.ingest.push import decode_push
from opsmind.types import Series, SeriesSamples

LIMITS = IngestSettings()


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


def one(**overrides: object) -> dict[str, object]:
    sample: dict[str, object] = {
        "metric": "cpu_usage",
        "labels": {"service": "gateway"},
        "timestamp": 1_700_000_000.5,
        "value": 0.42,
    }
    sample.update(overrides)
    return sample


def rejects(raw: bytes, status: int, reason: str, limits: IngestSettings = LIMITS) -> None:
    with pytest.raises(IngestError) as info:
        decode_push(raw, limits)
    assert info.value.status == status, info.value.reason
    assert reason in info.value.reason, info.value.reason


def test_samples_form_groups_points_by_series_in_order() -> None:
    doc = {
        "samples": [
            one(),
            one(metric="mem", labels={}, timestamp=5, value=1),
            one(timestamp=1_700_000_001, value=0.5),
        ]
    }
    got = decode_push(body(doc), LIMITS)
    cpu = Series.of("cpu_usage", {"service": "gateway"})
    assert got == [
        SeriesSamples(cpu, (1_700_000_000.5, 1_700_000_001.0), (0.42, 0.5)),
        SeriesSamples(Series.of("mem"), (5.0,), (1.0,)),
    ]
    assert all(isinstance(v, float) for s in got for v in (*s.timestamps, *s.values))


def test_series_form_and_both_forms_together() -> None:
    doc = {
        "samples": [one(timestamp=1, value=1.0)],
        "series": [
            {
                "metric": "cpu_usage",
                "labels": {"service": "gateway"},
                "timestamps": [2, 3],
                "values": [2.0, 3],
            },
            {"metric": "empty", "timestamps": [], "values": []},
        ],
    }
    got = decode_push(body(doc), LIMITS)
    assert got == [
        SeriesSamples(Series.of("cpu_usage", {"service": "gateway"}), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0))
    ]


def test_missing_labels_and_empty_label_values_are_allowed() -> None:
    got = decode_push(
        body({"samples": [{"metric": "up", "timestamp": 0, "value": 1}, one(labels={"a": ""})]}), LIMITS
    )
    assert [s.series for s in got] == [Series.of("up"), Series.of("cpu_usage")]


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"{not json", 400, "invalid JSON"),
        (b"\xff\xfe\x00", 400, "invalid JSON"),
        (b"[1, 2]", 400, "body: must be an object"),
        (b"{}", 400, "expected a 'samples' or a 'series' list"),
        (b'{"samples": [], "extra": 1}', 400, "body: unknown key 'extra'"),
        (b'{"samples": {}}', 400, "samples: must be a list"),
        (b'{"samples": [], "samples": []}', 400, "body: duplicate key 'samples'"),
        (b'{"samples": [1]}', 400, "samples[0]: must be an object, got 1"),
        (
            b'{"samples": [{"metric": "x", "timestamp": 1, "value": 1}, 3]}',
            400,
            "samples[1]: must be an object, got 3",
        ),
        (
            b'{"samples": [{"metric": "a", "timestamp": 1, "value": 1, "value": 2}]}',
            400,
            "samples[0]: duplicate key 'value'",
        ),
        (
            b'{"samples": [{"metric": "a", "timestamp": 1, "value": 1, "unit": "s"}]}',
            400,
            "samples[0]: unknown key 'unit'",
        ),
        (
            b'{"samples": [{"metric": "a", "timestamp": NaN, "value": 1}]}',
            400,
            "samples[0].timestamp: must be a finite number >= 0",
        ),
        (
            b'{"samples": [{"metric": "a", "timestamp": 1, "value": NaN}]}',
            400,
            "samples[0].value: must be a finite number, got NaN",
        ),
        (b'{"samples": [{"metric": "a", "timestamp": 1, "value": -Infinity}]}', 400, "samples[0].value"),
        (
            b'{"samples": [{"metric": "a", "timestamp": 1, "value": 1e999}]}',
            400,
            "samples[0].value: must be a finite number",
        ),
        (b'{"samples": [{"metric": "a", "timestamp": 1e999, "value": 1}]}', 400, "samples[0].timestamp"),
        (
            b'{"samples": [{"metric": "a", "timestamp": 1, "value": 1' + b"0" * 5000 + b"}]}",
            400,
            "invalid JSON",
        ),
    ],
)
def test_malformed_bodies(raw: bytes, status: int, reason: str) -> None:
    rejects(raw, status, reason)


@pytest.mark.parametrize(
    ("index", "bad", "status", "reason"),
    [
        (3, one(timestamp=-1), 400, "samples[3].timestamp: must be a finite number >= 0"),
        (3, one(timestamp="2023-01-01"), 400, "samples[3].timestamp: must be a finite number >= 0"),
        (3, one(timestamp=True), 400, "samples[3].timestamp"),
        (3, one(timestamp=1_700_000_000_000), 400, "samples[3].timestamp: 1700000000000 is not Unix seconds"),
        (1, {k: v for k, v in one().items() if k != "timestamp"}, 400, "samples[1].timestamp: missing"),
        (1, {k: v for k, v in one().items() if k != "value"}, 400, "samples[1].value: missing"),
        (1, {k: v for k, v in one().items() if k != "metric"}, 400, "samples[1].metric: missing"),
        (2, one(value=None), 400, "samples[2].value: must be a finite number, got null"),
        (2, one(value="0.5"), 400, 'samples[2].value: must be a finite number, got "0.5"'),
        (2, one(value=False), 400, "samples[2].value: must be a finite number, got false"),
        (2, one(value=[1]), 400, "samples[2].value"),
        (0, one(metric=5), 400, "samples[0].metric: must be a string"),
        (0, one(metric="cpu-usage"), 400, "samples[0]: invalid metric name 'cpu-usage'"),
        (0, one(labels=[]), 400, "samples[0].labels: must be an object"),
        (0, one(labels={"bad-name": "x"}), 400, "samples[0]: invalid label name 'bad-name'"),
        (0, one(labels={"__name__": "x"}), 400, "reserved"),
        (0, one(labels={"a": 1}), 400, "samples[0].labels.a: must be a string, got 1"),
    ],
)
def test_bad_sample_is_located(index: int, bad: dict[str, object], status: int, reason: str) -> None:
    samples = [one() for _ in range(4)]
    samples[index] = bad
    rejects(body({"samples": samples}), status, reason)


def test_duplicate_label_names_are_400() -> None:
    raw = b'{"samples": [{"metric": "a", "labels": {"x": "1", "x": "2"}, "timestamp": 1, "value": 1}]}'
    rejects(raw, 400, "samples[0].labels: duplicate label name 'x'")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (
            {"metric": "a", "timestamps": [1, 2], "values": [1]},
            "series[1]: timestamps has 2 items but values has 1",
        ),
        (
            {"metric": "a", "timestamps": [1, -2], "values": [1, 2]},
            "series[1].timestamps[1]: must be a finite number >= 0",
        ),
        (
            {"metric": "a", "timestamps": [1, 2], "values": [1, None]},
            "series[1].values[1]: must be a finite number, got null",
        ),
        ({"metric": "a", "timestamps": 1, "values": [1]}, "series[1].timestamps: must be a list"),
        ({"metric": "a", "values": [1]}, "series[1].timestamps: missing"),
        ({"metric": "a", "timestamps": [], "values": [], "value": 1}, "series[1]: unknown key 'value'"),
    ],
)
def test_bad_series_item_is_located(item: dict[str, object], reason: str) -> None:
    good = {"metric": "ok", "timestamps": [1], "values": [1]}
    rejects(body({"series": [good, item]}), 400, reason)


def test_size_limits_are_413() -> None:
    rejects(b" " * 1025, 413, "max_body_bytes", IngestSettings(max_body_bytes=1024))
    limits = IngestSettings(max_samples_per_request=3, max_series_per_request=2)
    rejects(body({"samples": [one(timestamp=t) for t in range(4)]}), 413, "4 samples", limits)
    rejects(
        body({"series": [{"metric": "a", "timestamps": [1, 2, 3, 4], "values": [1] * 4}]}),
        413,
        "4 samples",
        limits,
    )
    many = [one(labels={"i": str(i)}) for i in range(3)]
    rejects(body({"samples": many}), 413, "3 series", limits)
    rejects(body({"series": [{"metric": "a", "timestamps": [], "values": []}] * 3}), 413, "3 series", limits)
