"""Remote-write 1.0 decoding: round trips, every kind of bad input, and hand-made encodings that leave
the decoder's shortcuts (checked against a plain protobuf decode)."""

from __future__ import annotations

import gc
import math
import random
import struct

import cramjam
import pytest

from opsmind.config import IngestSettings
from opsmind.ingest import remote_write
from opsmind.ingest.errors import IngestError
from opsmind.ingest.prompb import (
    STALE_NAN,
    encode_remote_write,
    encode_write_request,
    is_stale_marker,
    messages,
)
from opsmind.ingest.remote_write import (
    SeriesCache,
    decode_remote_write,
    snappy_uncompressed_length,
)
from opsmind.types import Series, SeriesSamples

CT = "application/x-protobuf"
LIMITS = IngestSettings()


# --- a tiny protobuf writer, so tests can build encodings Go's encoder never produces -----------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values are written as 10-byte two's complement varints
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def label(name: str, value: str) -> bytes:
    return field_bytes(1, name.encode()) + field_bytes(2, value.encode())


def sample(value: float, ts_ms: int) -> bytes:
    """A sample as Go writes it: zero fields left out."""
    out = b""
    if value != 0 or math.copysign(1.0, value) < 0 or value != value:
        out += field_double(1, value)
    if ts_ms:
        out += field_varint(2, ts_ms)
    return out


def series(
    labels: list[bytes], samples: list[bytes], *, tail: bytes = b"", samples_first: bool = False
) -> bytes:
    lab = b"".join(field_bytes(1, x) for x in labels)
    sam = b"".join(field_bytes(2, x) for x in samples)
    return (sam + lab if samples_first else lab + sam) + tail


def request(*series_bytes: bytes) -> bytes:
    return b"".join(field_bytes(1, s) for s in series_bytes)


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def decode(
    data: bytes, limits: IngestSettings = LIMITS, cache: SeriesCache | None = None
) -> list[SeriesSamples]:
    """Decode an uncompressed WriteRequest through the public entry point."""
    return decode_remote_write(
        snappy(data),
        content_encoding="snappy",
        content_type=CT,
        limits=limits,
        cache=SeriesCache() if cache is None else cache,
    ).series


def reference(data: bytes) -> list[SeriesSamples]:
    """The obvious decoder: real protobuf messages, one Python object per label and sample."""
    out = []
    for ts in messages().WriteRequest.FromString(data).timeseries:
        s = Series.from_pairs([(lab.name, lab.value) for lab in ts.labels])
        points = [(x.timestamp / 1000.0, x.value) for x in ts.samples if not is_stale_marker(x.value)]
        if points:
            out.append(SeriesSamples(s, tuple(t for t, _ in points), tuple(v for _, v in points)))
    return out


def bits(batch: list[SeriesSamples]) -> list[tuple[str, tuple[float, ...], tuple[int, ...]]]:
    """Comparable form: NaN payloads compared bit for bit."""
    return [
        (x.series.key, x.timestamps, tuple(struct.unpack("<Q", struct.pack("<d", v))[0] for v in x.values))
        for x in batch
    ]


def expect_error(status: int, *fragments: str, body: bytes, **kwargs: object) -> IngestError:
    args: dict[str, object] = {"content_encoding": "snappy", "content_type": CT, "limits": LIMITS}
    args.update(kwargs)
    with pytest.raises(IngestError) as info:
        decode_remote_write(body, cache=SeriesCache(), **args)  # type: ignore[arg-type]
    assert info.value.status == status, info.value.reason
    for fragment in fragments:
        assert fragment in info.value.reason
    return info.value


def node_series(i: int) -> Series:
    return Series.of(
        "http_requests_total",
        {"instance": f"10.0.0.{i % 250}:9100", "job": "node", "service": f"svc{i % 7}", "code": "200"},
    )


# --- round trips ------------------------------------------------------------------------------------


def test_round_trip_keeps_series_timestamps_and_values() -> None:
    batch = [
        SeriesSamples(node_series(i), (1_700_000_000.0 + i, 1_700_000_015.5), (float(i), 0.0))
        for i in range(50)
    ]
    batch.append(SeriesSamples(Series.of("up"), (1_700_000_000.123,), (1.0,)))
    got = decode_remote_write(
        encode_remote_write(batch),
        content_encoding="snappy",
        content_type=CT,
        limits=LIMITS,
        cache=SeriesCache(),
    )
    assert got.series == batch
    assert got.samples == 101 and got.stale_markers_dropped == 0


def test_round_trip_one_sample_per_series_fast_path() -> None:
    batch = [SeriesSamples(node_series(i), (1_700_000_000.5,), (i * 0.25,)) for i in range(2000)]
    cache = SeriesCache()
    for _ in range(2):  # the second pass answers every series from the cache
        assert decode(encode_write_request(batch), cache=cache) == batch
    assert len(cache) == 1750  # distinct (instance, service) pairs among the 2,000 series


def test_stale_markers_are_dropped_and_counted_other_nans_kept() -> None:
    normal_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    batch = [
        SeriesSamples(node_series(1), (10.0, 20.0, 30.0), (1.0, STALE_NAN, 3.0)),
        SeriesSamples(node_series(2), (10.0,), (STALE_NAN,)),  # only a marker: the series disappears
        SeriesSamples(node_series(3), (10.0, 20.0), (normal_nan, math.inf)),
        SeriesSamples(node_series(4), (10.0,), (-math.inf,)),
    ]
    got = decode_remote_write(
        encode_remote_write(batch),
        content_encoding="snappy",
        content_type=CT,
        limits=LIMITS,
        cache=SeriesCache(),
    )
    assert got.stale_markers_dropped == 2 and got.samples == 5
    assert [x.series for x in got.series] == [node_series(1), node_series(3), node_series(4)]
    assert got.series[0].values == (1.0, 3.0) and got.series[0].timestamps == (10.0, 30.0)
    assert struct.pack("<d", got.series[1].values[0]) == struct.pack("<d", normal_nan)
    assert got.series[1].values[1] == math.inf and got.series[2].values == (-math.inf,)


def test_stale_marker_in_one_sample_request() -> None:
    batch = [SeriesSamples(node_series(i), (5.0,), (STALE_NAN if i % 2 else 1.0,)) for i in range(10)]
    got = decode_remote_write(
        encode_remote_write(batch),
        content_encoding="snappy",
        content_type=CT,
        limits=LIMITS,
        cache=SeriesCache(),
    )
    assert got.stale_markers_dropped == 5 and [x.series for x in got.series] == [
        node_series(i) for i in range(0, 10, 2)
    ]


def test_empty_request_and_series_without_samples() -> None:
    assert decode(b"") == []
    only_labels = request(series([label("__name__", "up")], []))
    assert decode(only_labels) == []


def test_content_type_variants_accepted() -> None:
    body = encode_remote_write([SeriesSamples(Series.of("up"), (1.0,), (1.0,))])
    for ct in (
        None,
        "",
        CT,
        f"{CT}; proto=prometheus.WriteRequest",
        "Application/X-Protobuf;proto=prometheus.WriteRequest",
    ):
        assert (
            len(decode_remote_write(body, content_encoding="Snappy", content_type=ct, limits=LIMITS).series)
            == 1
        )


def test_gc_is_resumed_after_success_and_failure() -> None:
    assert gc.isenabled()
    decode(request(series([label("__name__", "up")], [sample(1.0, 1000)])))
    assert gc.isenabled()
    with pytest.raises(IngestError):
        decode(request(series([label("__name__", "1bad")], [sample(1.0, 1000)])))
    assert gc.isenabled()


# --- encodings outside the shortcuts, checked against the plain decode --------------------------------


def test_hand_made_encodings_match_reference() -> None:
    name = label("__name__", "m")
    cases = {
        "zero value and zero timestamp": request(
            series([name], [sample(0.0, 0), sample(0.0, 5), sample(2.0, 0)])
        ),
        "fields in reverse order": request(series([name], [field_varint(2, 7000) + field_double(1, 1.5)])),
        "repeated field, last wins": request(
            series([name], [field_double(1, 1.0) + field_double(1, 2.0) + field_varint(2, 9)])
        ),
        "unknown field in a sample": request(series([name], [sample(3.0, 4000) + field_varint(7, 1)])),
        "non-minimal varint": request(series([name], [field_double(1, 4.0) + b"\x10\x81\x80\x00"])),
        "samples before labels": request(
            series([name, label("a", "b")], [sample(1.0, 1000)], samples_first=True)
        ),
        "exemplar after samples": request(
            series([name], [sample(1.0, 1000)], tail=field_bytes(3, label("x", "y")))
        ),
        "histogram only": request(series([name], [], tail=field_bytes(4, b"\x08\x01"))),
        "label with fields swapped": request(
            series([field_bytes(2, b"v") + field_bytes(1, b"k"), name], [sample(1.0, 1)])
        ),
        # The raw series ends with the bytes of its re-encoded sample, but inside a label value: the cut
        # labels do not parse, and the decoder must fall back to the exact labels.
        "sample look-alike at the end of a label": request(
            series([name, label("a", "x\x12\x02\x10\x05")], [sample(0.0, 5)], samples_first=True)
        ),
        "many samples": request(series([name], [sample(float(i), 1000 * i) for i in range(300)])),
        "mixed request": request(
            series([name, label("a", "1")], [sample(1.0, 1000)]),
            series([name, label("a", "2")], []),
            series([name, label("a", "3")], [sample(1.0, 1000), sample(2.0, 2000)]),
            series([name, label("a", "4")], [sample(0.0, 3000)]),
        ),
    }
    for what, data in cases.items():
        assert bits(decode(data)) == bits(reference(data)), what


def test_random_encodings_match_reference() -> None:
    rng = random.Random(7)
    for _ in range(30):
        parts = []
        for _ in range(rng.randint(1, 40)):
            labels = [label("__name__", rng.choice(["a", "b_total", "c:rate5m"]))]
            labels += [
                label(f"l{k}", rng.choice(["", "x", "ü", "long" * 20])) for k in range(rng.randint(0, 5))
            ]
            values = [0.0, -0.0, 1.0, -2.5, math.inf, math.nan, STALE_NAN, 1e300]
            samples = [
                sample(rng.choice(values), rng.choice([0, 1, 1_700_000_000_000, 2**62]))
                for _ in range(rng.randint(0, 3))
            ]
            tail = rng.choice([b"", field_bytes(3, b""), field_varint(9, 5)])
            parts.append(series(labels, samples, tail=tail, samples_first=rng.random() < 0.2))
        data = request(*parts)
        assert bits(decode(data)) == bits(reference(data))


def test_same_series_twice_and_cache_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    data = request(
        *(series([label("__name__", "m"), label("i", str(i % 3))], [sample(1.0, 1000)]) for i in range(9))
    )
    calls = 0
    original = Series.from_pairs

    def counting(pairs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return original(pairs)

    monkeypatch.setattr(Series, "from_pairs", staticmethod(counting))
    cache = SeriesCache()
    assert len(decode(data, cache=cache)) == 9
    assert calls == 3 and len(cache) == 3
    decode(data, cache=cache)
    assert calls == 3


def test_series_cache_is_bounded() -> None:
    cache = SeriesCache(capacity=8)
    for i in range(100):
        cache.put(bytes([i]), Series.of("m"))
    assert len(cache) <= 8 and cache.get(bytes([99])) is not None
    with pytest.raises(ValueError):
        SeriesCache(capacity=0)


# --- bad input ---------------------------------------------------------------------------------------

GOOD = request(series([label("__name__", "up"), label("job", "node")], [sample(1.0, 1000)]))


def test_wrong_or_missing_compression_is_415() -> None:
    expect_error(415, "Content-Encoding: snappy", "missing", body=snappy(GOOD), content_encoding=None)
    expect_error(415, "'gzip'", body=snappy(GOOD), content_encoding="gzip")


def test_wrong_content_type_is_415() -> None:
    expect_error(415, "application/x-protobuf", body=snappy(GOOD), content_type="application/json")
    expect_error(415, "unsupported", body=snappy(GOOD), content_type=f"{CT};proto=foo.Bar")


def test_remote_write_v2_is_refused_by_name() -> None:
    err = expect_error(
        415,
        "2.0",
        "not supported",
        body=snappy(GOOD),
        content_type=f"{CT};proto=io.prometheus.write.v2.Request",
    )
    assert "io.prometheus.write.v2.Request" in err.reason


def test_oversized_body_is_413() -> None:
    limits = IngestSettings(max_body_bytes=1024)
    expect_error(413, "max_body_bytes", body=b"\x00" * 1025, limits=limits)


def test_decompression_bomb_refused_from_header(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = snappy(bytes(2 * 1024 * 1024))  # 2 MiB of zeros compress about 21:1

    def never(_: bytes) -> bytes:
        raise AssertionError("must not decompress")

    monkeypatch.setattr(remote_write.cramjam.snappy, "decompress_raw", never)
    limits = IngestSettings(max_decoded_bytes=1024 * 1024)
    expect_error(413, "max_decoded_bytes", str(2 * 1024 * 1024), body=bomb, limits=limits)


def test_header_declaring_more_than_snappy_can_hold_is_400() -> None:
    expect_error(400, "invalid snappy", "declares 4294967295 bytes", body=b"\xff\xff\xff\xff\x0fgarbage")


def test_snappy_length_header() -> None:
    assert snappy_uncompressed_length(varint(300) + b"x") == 300
    for bad in (b"", b"\x80\x80", b"\xff\xff\xff\xff\x7f", b"\xff\xff\xff\xff\xff\x01"):
        with pytest.raises(IngestError, match="invalid snappy"):
            snappy_uncompressed_length(bad)


def test_bad_snappy_is_400() -> None:
    expect_error(400, "invalid snappy", body=b"")
    expect_error(400, "invalid snappy", body=varint(100) + b"\xfe\xff\xff\xff garbage")
    expect_error(400, "invalid snappy", body=snappy(GOOD)[:-3])


def test_truncated_protobuf_is_400() -> None:
    expect_error(400, "invalid protobuf", body=snappy(GOOD[:-4]))
    expect_error(400, "invalid protobuf", body=snappy(b"\x0a\xff\xff\xff\xff\x0f"))


def test_bad_sample_bytes_are_400() -> None:
    data = request(series([label("__name__", "up")], [b"\x09\x00\x00"]))
    expect_error(400, "invalid protobuf", body=snappy(data))


def test_invalid_utf8_label_is_400() -> None:
    data = request(
        series(
            [label("__name__", "up"), field_bytes(1, b"job") + field_bytes(2, b"\xff\xfe")], [sample(1.0, 1)]
        )
    )
    expect_error(400, "invalid protobuf", body=snappy(data))


def test_negative_timestamp_is_400() -> None:
    data = request(
        series([label("__name__", "ok")], [sample(1.0, 1000)]),
        series([label("__name__", "up"), label("job", "x")], [sample(1.0, 1000), sample(2.0, -5)]),
    )
    err = expect_error(
        400, "negative timestamp", "-5 ms", "series 1", 'up{job="x"}', "sample 1", body=snappy(data)
    )
    assert err.status == 400


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        ([("__name__", "1up")], ["invalid metric name '1up'"]),
        ([("__name__", "up"), ("bad-label", "v")], ["invalid label name 'bad-label'", "bad-label='v'"]),
        ([("__name__", "up"), ("__meta_x", "v")], ["'__meta_x'", "reserved"]),
        ([("__name__", "up"), ("job", "a"), ("job", "b")], ["duplicate label name 'job'", "job='a'"]),
        ([("job", "a")], ["no __name__"]),
    ],
)
def test_invalid_series_is_400_with_series_and_label(
    labels: list[tuple[str, str]], fragments: list[str]
) -> None:
    data = request(
        series([label("__name__", "fine")], [sample(1.0, 1000)]),
        series([label(k, v) for k, v in labels], [sample(1.0, 1000)]),
    )
    expect_error(400, "series 1", *fragments, body=snappy(data))


def test_invalid_series_without_samples_is_still_rejected() -> None:
    data = request(series([label("__name__", "up"), label("a-b", "c")], []))
    expect_error(400, "a-b", body=snappy(data))


def test_too_many_series_or_samples_is_413() -> None:
    limits = IngestSettings(max_series_per_request=2, max_samples_per_request=3)
    three = request(
        *(series([label("__name__", "m"), label("i", str(i))], [sample(1.0, 1)]) for i in range(3))
    )
    expect_error(413, "3 series", "max_series_per_request", body=snappy(three), limits=limits)
    four = request(series([label("__name__", "m")], [sample(1.0, t) for t in range(1, 5)]))
    expect_error(413, "4 samples", "max_samples_per_request", body=snappy(four), limits=limits)
