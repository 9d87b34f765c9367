"""The bus codec: every payload the engine publishes comes back as it went in, without pickle.

What the engine publishes (grep ``.publish(`` in src/opsmind): lists of ``SeriesSamples`` on
``samples``, ``Event`` on ``events``, ``Anomaly`` on ``anomalies`` (detect, predict and ingested alerts),
``IncidentEvent`` on ``incidents`` and ``LoadPrediction`` on ``predictions``.

Payloads are compared by ``repr`` as well as ``==``: NaN is unequal to itself, and ``repr`` also tells a
tuple from a list and ``1`` from ``1.0``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest

from opsmind.bus import codec
from opsmind.bus.codec import CodecError, decode, encode, register_dataclass
from opsmind.incidents.stage import IncidentEvent
from opsmind.predict.capacity import CapacityModel
from opsmind.predict.stage import LoadPrediction
from opsmind.types import (
    Action,
    Anomaly,
    AuditEntry,
    Decision,
    Event,
    Incident,
    IncidentStatus,
    Record,
    Series,
    SeriesSamples,
)

NAN, INF = float("nan"), float("inf")


def roundtrip(payload: Any) -> Any:
    data = encode(payload)
    assert isinstance(data, bytes)
    back = decode(data)
    assert type(back) is type(payload)
    assert repr(back) == repr(payload)
    return back


def samples() -> list[SeriesSamples]:
    return [
        SeriesSamples(
            Series.of("latency_seconds", {"service": "gateway", "quantile": "0.95"}),
            (1_700_000_000.0, 1_700_000_015.0, 1_700_000_030.5),
            (0.12, NAN, INF),
        ),
        SeriesSamples(Series.of("up"), (1_700_000_000.0,), (-INF,)),
        SeriesSamples(Series.of("empty", {"service": 'we"ird\\\nname'}), (), ()),
    ]


def anomaly(**overrides: Any) -> Anomaly:
    fields: dict[str, Any] = {
        "at": 1_700_000_060.0,
        "service": "gateway",
        "series": 'latency_seconds{service="gateway"}',
        "ts": 1_700_000_030.5,
        "value": NAN,
        "expected": INF,
        "score": -INF,
        "probability": 0.97,
        "detector": "cad",
        "labels": {"warning": "latency_slo_risk", "lead_s": "300"},
        "evidence": "p95 rose 4x",
    }
    return Anomaly(**{**fields, **overrides})


def incident() -> Incident:
    return Incident(
        at=1_700_000_100.0,
        service="gateway",
        title="gateway latency",
        status=IncidentStatus.ACKNOWLEDGED,
        opened_at=1_700_000_060.0,
        last_anomaly_at=1_700_000_090.0,
        anomaly_count=3,
        series=('latency_seconds{service="gateway"}',),
        max_probability=0.97,
        timeline=({"at": 1_700_000_060.0, "what": "opened", "score": NAN, "path": ("a", "b")},),
        root_causes=({"service": "db", "score": 0.8, "evidence": ["slow queries"]},),
        services=("gateway", "db"),
        priority=71.5,
        priority_explanation={"impact": INF, "factors": [1, 2.0, None, True]},
        labels={"lead_s": "120"},
    )


def test_sample_batches_survive_with_nan_and_infinities() -> None:
    back = roundtrip(samples())
    first = back[0]
    assert first.series == samples()[0].series and first.series.key == samples()[0].series.key
    assert first.timestamps == samples()[0].timestamps
    assert first.values[0] == 0.12 and math.isnan(first.values[1]) and first.values[2] == INF
    assert back[1].values == (-INF,)
    assert back[2].series.labels == (("service", 'we"ird\\\nname'),)


def test_events_and_anomalies_survive() -> None:
    ev = Event(
        at=1_700_000_000.0, service="api", reason="Deployed", message="v2 ✓", pod="api-1", source="k8s"
    )
    assert roundtrip(ev) == ev
    a = roundtrip(anomaly())
    assert math.isnan(a.value) and a.expected == INF and a.score == -INF
    assert a.id == anomaly(id=a.id).id
    prediction = roundtrip(anomaly(type="prediction", value=1.5, expected=None, score=2.0))
    assert prediction.type == "prediction" and prediction.expected is None


def test_incident_events_survive() -> None:
    for kind in ("opened", "updated", "resolved"):
        back = roundtrip(IncidentEvent(kind, incident()))  # type: ignore[arg-type]
        assert back.event == kind
        assert back.incident.status is IncidentStatus.ACKNOWLEDGED
        assert back.incident.timeline[0]["path"] == ("a", "b")
        assert back.incident.root_causes[0]["evidence"] == ["slow queries"]
        assert back.incident.priority_explanation["factors"] == [1, 2.0, None, True]


def test_load_predictions_survive_with_and_without_a_capacity_model() -> None:
    fitted = CapacityModel(
        ok=True,
        reason="fit",
        latency_slo=0.5,
        base_latency=0.05,
        saturation_per_replica=120.0,
        capacity_per_replica=100.0,
        capacity_lo=90.0,
        capacity_hi=110.0,
        r2=0.9,
        max_utilisation=0.8,
        n_samples=240,
    )
    refused = CapacityModel(ok=False, reason="too few samples", latency_slo=0.5)
    for model in (fitted, refused, None):
        p = LoadPrediction("api", 1_700_000_000.0, 60.0, 42.0, (43.0, 44.5, NAN), "ets", 3, model, "ets 95%")
        back = roundtrip(p)
        assert back.capacity is None or type(back.capacity) is CapacityModel
    no_replicas = LoadPrediction("api", 1.0, 60.0, 0.0, (), "naive", None, None)
    assert roundtrip(no_replicas) == no_replicas


def test_every_record_kind_round_trips_through_pydantic() -> None:
    records: list[Record] = [
        Action(at=1.0, name="scale", target="api", params={"replicas": 3, "why": ("load",)}),
        Decision(at=1.0, name="d", value={"x": [1, 2]}, reasons=("because",)),
        AuditEntry(at=1.0, actor="op", verb="ack", subject="i1", detail={"n": NAN}),
    ]
    for record in records:
        roundtrip(record)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        True,
        0,
        -(2**70),
        1.0,
        -0.0,
        NAN,
        -INF,
        "",
        "ünïcödé \ud800 lone surrogate",
        [],
        (),
        [1, (2, [3, (4,)])],
        {"n": 0, "nested": {"t": (1, 2)}},
        {1: "int key", (1, "a"): "tuple key", None: 0},
        {"$": "a plain key that looks like a tag"},
        {"$": {"$": "tuple", "v": [1]}},
        {3, 1, 2},
        frozenset({1, 2}),
        b"\x00\xffbytes",
        IncidentStatus.RESOLVED,
        Series.of("up", {"service": "api"}),
    ],
    ids=repr,
)
def test_plain_values_round_trip(payload: Any) -> None:
    roundtrip(payload)


def test_subclasses_of_plain_types_arrive_as_the_plain_type() -> None:
    class Text(str):
        pass

    assert decode(encode(Text("x"))) == "x"
    np = pytest.importorskip("numpy")
    assert decode(encode([np.float64(0.5)])) == [0.5]


class Colour(Enum):
    RED = "red"


@dataclass(frozen=True)
class Local:
    n: int


def test_unknown_payload_types_are_refused_when_published() -> None:
    with pytest.raises(TypeError, match="cannot encode a builtins.object"):
        encode(object())
    with pytest.raises(
        TypeError, match="neither defined at the top of one of the codec's trusted modules nor registered"
    ):
        encode(Local(1))
    with pytest.raises(
        TypeError, match="neither defined at the top of one of the codec's trusted modules nor registered"
    ):
        encode(Colour.RED)
    with pytest.raises(TypeError):
        encode({"deep": [Decision(at=1.0, name="d", value=object())]})
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match="int64"):
        encode([SeriesSamples(Series.of("x"), (np.int64(1),), (1.0,))])
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(TypeError, match="contains itself"):
        encode(looped)


def test_registered_dataclasses_and_enums_round_trip() -> None:
    @register_dataclass
    @dataclass(frozen=True)
    class Registered:
        name: str
        figures: tuple[float, ...]
        colour: Colour

    register_dataclass(Colour)
    roundtrip(Registered("x", (1.0, NAN), Colour.RED))
    with pytest.raises(TypeError, match="dataclass or an Enum"):
        register_dataclass(dict)


def test_decoding_builds_only_trusted_classes_and_imports_nothing_else() -> None:
    tag = {"$": "dataclass", "type": "subprocess:Popen", "v": {"args": ["true"]}}
    with pytest.raises(CodecError, match="untrusted"):
        decode(json.dumps(tag))
    assert "subprocess" not in codec.TRUSTED_MODULES
    never_imported = "opsmind_codec_test_module_that_does_not_exist"
    with pytest.raises(CodecError, match="untrusted"):
        decode(json.dumps({"$": "enum", "type": f"{never_imported}:X", "v": 1}))
    assert never_imported not in sys.modules
    # A trusted module's attribute that is not a dataclass is refused too, and so is a dataclass it
    # merely imports from elsewhere.
    with pytest.raises(CodecError, match="untrusted"):
        decode(json.dumps({"$": "dataclass", "type": "opsmind.predict.stage:log", "v": {}}))
    with pytest.raises(CodecError, match="untrusted"):
        decode(json.dumps({"$": "dataclass", "type": "opsmind.predict.stage:Forecast", "v": {}}))


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"$": "nonsense"}',
        b'{"$": "record", "type": "NoSuchRecord", "v": {}}',
        b'{"$": "record", "type": "Anomaly", "v": {"at": "not a number"}}',
        b'{"$": "dataclass", "type": "opsmind.incidents.stage:IncidentEvent", "v": {"bogus": 1}}',
        b'{"$": "enum", "type": "opsmind.types.records:IncidentStatus", "v": "no such status"}',
        b'{"$": "dict", "items": [[[1], 2]]}',
        b'{"$": "samples", "name": "x"}',
        b"\xff\xfe",
    ],
)
def test_undecodable_bytes_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_the_format_is_json() -> None:
    data = encode({"n": 1, "t": (1.5, NAN)})
    assert data == b'{"n":1,"t":{"$":"tuple","v":[1.5,NaN]}}'


def test_an_ingest_batch_travels_in_columns_and_keeps_each_key() -> None:
    batch = samples()
    data = encode(batch)
    assert data.count(b'"$"') == 1  # one object for the whole list, not one per series
    back = decode(data)
    assert [(s.series, s.series.key, s.timestamps) for s in back] == [
        (s.series, s.series.key, s.timestamps) for s in batch
    ]
    assert decode(encode([])) == []  # an empty list is a plain list
