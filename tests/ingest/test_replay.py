"""File replay: CSV and NDJSON reading, located errors, and pacing on a simulated clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from opsmind.clock import SimClock
from opsmind.ingest.errors import IngestError
from opsmind.ingest.replay import parse_labels, parse_timestamp, read_replay, replay
from opsmind.types import Series, SeriesSamples

T0 = 1_396_310_400.0  # 2014-04-01 00:00:00 UTC, the start of many NAB files


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def points(
    path: Path, metric: str | None = "cpu", labels: dict[str, str] | None = None
) -> list[tuple[str, float, float]]:
    return [(p.series.key, p.ts, p.value) for batch in read_replay(path, metric, labels) for p in batch]


class Collect:
    def __init__(self) -> None:
        self.batches: list[list[SeriesSamples]] = []

    async def __call__(self, batch: list[SeriesSamples]) -> None:
        self.batches.append(batch)

    def flat(self) -> list[tuple[str, float, float]]:
        return [
            (s.series.key, t, v)
            for b in self.batches
            for s in b
            for t, v in zip(s.timestamps, s.values, strict=True)
        ]


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("1396310400") == T0
    assert parse_timestamp(" 1396310400.5 ") == T0 + 0.5
    assert parse_timestamp("2014-04-01 00:00:00") == T0  # NAB: no offset means UTC
    assert parse_timestamp("2014-04-01T02:00:00+02:00") == T0
    assert parse_timestamp("2014-04-01T00:00:05Z") == T0 + 5
    for bad in ("yesterday", "nan", "inf", "-1", "1969-12-31 23:59:59", "1700000000000"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_parse_labels_forms() -> None:
    assert parse_labels("") == {}
    assert parse_labels("host=a; dc = eu ;") == {"host": "a", "dc": "eu"}
    assert parse_labels('{"host": "a"}') == {"host": "a"}
    for bad in ("host", "a=1;a=2", '{"a": 1}', '{"a": "1", "a": "2"}', "{broken"):
        with pytest.raises(ValueError):
            parse_labels(bad)


def test_csv_nab_format(tmp_path: Path) -> None:
    path = write(tmp_path, "nab.csv", "timestamp,value\n2014-04-01 00:00:00,20.5\n2014-04-01 00:05:00,21\n\n")
    assert points(path, "machine_temperature", {"service": "plant"}) == [
        ('machine_temperature{service="plant"}', T0, 20.5),
        ('machine_temperature{service="plant"}', T0 + 300, 21.0),
    ]


def test_csv_labels_column_any_order_and_override(tmp_path: Path) -> None:
    text = (
        "Value,labels,Timestamp\n"
        "1,host=a,1396310400\n"
        '2,"{""host"": ""b"", ""dc"": ""eu""}",1396310460\n'  # a JSON cell, quotes doubled as CSV wants
        "3,,1396310520\n"
    )
    got = points(write(tmp_path, "l.csv", text), "cpu", {"host": "base", "job": "j"})
    assert got == [
        ('cpu{host="a",job="j"}', T0, 1.0),
        ('cpu{dc="eu",host="b",job="j"}', T0 + 60, 2.0),
        ('cpu{host="base",job="j"}', T0 + 120, 3.0),
    ]


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("1396310400,1\n", ":1", "unknown column '1396310400'"),
        ("timestamp,value,extra\n", ":1", "unknown column 'extra'"),
        ("timestamp\n1,2\n", ":1", "the header row must name"),
        ("timestamp,value\n1,2\nsoon,3\n", ":3", "timestamp: 'soon' is neither Unix seconds nor an ISO 8601"),
        ("timestamp,value\n-5,3\n", ":2", "timestamp"),
        ("timestamp,value\n1,abc\n", ":2", "value: 'abc' is not a number"),
        ("timestamp,value\n1,nan\n", ":2", "value: must be a finite number"),
        ("timestamp,value\n1,\n", ":2", "value"),
        ("timestamp,value\n1,2,3\n", ":2", "expected 2 columns, got 3"),
        ("timestamp,value,labels\n1,2,bad-name=x\n", ":2", "labels: invalid label name 'bad-name'"),
        ("timestamp,value,labels\n1,2,a=1;a=2\n", ":2", "labels: duplicate label name 'a'"),
    ],
)
def test_csv_bad_rows_name_file_and_line(tmp_path: Path, text: str, where: str, reason: str) -> None:
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(IngestError) as info:
        points(path)
    assert f"{path}{where}: " in info.value.reason and reason in info.value.reason, info.value.reason
    assert info.value.status == 400


def test_csv_needs_metric_and_valid_base_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "timestamp,value\n1,2\n")
    with pytest.raises(IngestError, match="needs the metric name"):
        points(path, None)
    with pytest.raises(IngestError, match="invalid metric name"):
        points(path, "bad metric")
    with pytest.raises(IngestError, match="cannot read"):
        points(tmp_path / "missing.csv")
    with pytest.raises(IngestError, match="malformed CSV"):
        points(write(tmp_path, "huge.csv", "timestamp,value\n1," + "9" * 200_000 + "\n"))
    with pytest.raises(IngestError, match="not UTF-8"):
        (tmp_path / "latin.csv").write_bytes(b"timestamp,value,labels\n1,2,a=\xe9\n")
        points(tmp_path / "latin.csv")
    with pytest.raises(IngestError, match="unknown replay format"):
        points(write(tmp_path, "a.txt", ""))


def test_ndjson(tmp_path: Path) -> None:
    lines = [
        {"metric": "lat", "labels": {"service": "api"}, "timestamp": T0, "value": 0.1},
        {"timestamp": T0 + 1, "value": 2},
    ]
    path = write(tmp_path, "x.ndjson", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert points(path, "default_metric", {"env": "prod"}) == [
        ('lat{env="prod",service="api"}', T0, 0.1),
        ('default_metric{env="prod"}', T0 + 1, 2.0),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '{"metric": "m", "timestamp": NaN, "value": 1}',
            ":2: sample.timestamp: must be a finite number >= 0",
        ),
        (
            '{"metric": "m", "timestamp": 1, "value": null}',
            ":2: sample.value: must be a finite number, got null",
        ),
        ('{"metric": "m", "timestamp": 1', ":2: invalid JSON"),
        ('{"timestamp": 1, "value": 1}', ":2: sample.metric: missing"),
    ],
)
def test_ndjson_bad_line_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, "x.jsonl", '{"metric": "m", "timestamp": 1, "value": 1}\n' + line + "\n")
    with pytest.raises(IngestError) as info:
        points(path, None)
    assert f"{path}{reason}" in info.value.reason, info.value.reason


def test_read_replay_batches(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "timestamp,value\n" + "".join(f"{i},{i}\n" for i in range(1, 8)))
    assert [len(b) for b in read_replay(path, "m", batch_size=3)] == [3, 3, 1]


async def test_replay_as_fast_as_possible_sorted_with_progress(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", "timestamp,value\n30,3\n10,1\n20,2\n10,1.5\n")
    sink, seen = Collect(), []
    n = await replay(
        path, sink, SimClock(), metric="m", batch_size=3, progress=lambda d, t: seen.append((d, t))
    )
    assert n == 4 and seen == [(0, 4), (3, 4), (4, 4)]
    assert sink.flat() == [("m", 10.0, 1.0), ("m", 10.0, 1.5), ("m", 20.0, 2.0), ("m", 30.0, 3.0)]
    assert len(sink.batches[0]) == 1  # one series: its three points grouped into one SeriesSamples


async def test_replay_paced_by_data_gaps_and_aligned_to_now(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "timestamp,value,labels\n0,1,\n0,2,k=v\n10,3,\n30,4,\n")
    clock = SimClock(1_000.0)
    sink = Collect()
    task = asyncio.create_task(replay(path, sink, clock, metric="m", speed=2.0, align_to_now=True))
    for _ in range(5):
        await asyncio.sleep(0)
    # Both points at data time 0 go out at once, stamped with the clock's start.
    assert sink.flat() == [("m", 1_000.0, 1.0), ('m{k="v"}', 1_000.0, 2.0)] and len(sink.batches) == 1
    await clock.advance(4.9)
    assert len(sink.batches) == 1
    await clock.advance(0.1)  # data gap 10 s at speed 2: 5 s of clock time
    assert sink.flat()[-1] == ("m", 1_010.0, 3.0)
    await clock.advance(10)  # 20 s more of data: 10 s
    assert sink.flat()[-1] == ("m", 1_030.0, 4.0)
    assert await asyncio.wait_for(task, 1) == 4


async def test_replay_bad_file_sends_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "timestamp,value\n1,1\n2,2\n3,oops\n")
    sink = Collect()
    with pytest.raises(IngestError, match=":4: value"):
        await replay(path, sink, SimClock(), metric="m")
    assert sink.batches == []


async def test_replay_rejects_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", "timestamp,value\n")
    assert await replay(path, Collect(), SimClock(), metric="m") == 0
    with pytest.raises(ValueError):
        await replay(path, Collect(), SimClock(), metric="m", speed=-1)
    with pytest.raises(ValueError):
        await replay(path, Collect(), SimClock(), metric="m", batch_size=0)


def test_series_identity(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "timestamp,value\n1,1\n")
    batch = next(read_replay(path, "m", {"a": "b"}))
    assert batch[0].series == Series.of("m", {"a": "b"})
