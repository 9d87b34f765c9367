"""Decode Prometheus remote-write 1.0 requests into :class:`SeriesSamples`.

The function the HTTP layer calls is :func:`decode_remote_write`. It checks the headers and sizes,
decompresses the snappy block, parses the protobuf and validates every series and sample; any problem
raises :class:`IngestError` before anything is returned, so nothing from a bad request is stored.

Speed matters here: Prometheus sends many small requests (by default up to 2,000 series of one sample
each), and creating a Python object per label and per sample costs more than the budget of one
microsecond per sample. So the decoder works on columns (see :mod:`opsmind.ingest.prompb` for the views):

* Each series' raw bytes come out of one C-level parse. Prometheus writes a series as its labels followed
  by its samples, so stripping the re-encoded samples from the end leaves the labels' bytes, which key a
  cache of validated :class:`Series`; known series are never parsed or validated again.
* All samples of the request come out of a second parse as one list of small byte strings, which numpy
  decodes at once. Only samples outside the four shapes Go's protobuf encoder produces go through the
  protobuf parser one by one.

Each shortcut checks its own precondition and falls back to an exact path per series or per sample: a
series whose samples are not its last fields, or whose cut-off labels do not parse, is keyed by its
canonically re-encoded labels; a sample of another shape is parsed by protobuf. So the result is always
what a plain protobuf decode gives (the tests compare the two on hand-made and random encodings).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, islice, repeat
from operator import attrgetter, is_
from typing import Any

import cramjam
import numpy as np
from google.protobuf.message import DecodeError

from opsmind.config import IngestSettings
from opsmind.ingest.bulk import gc_paused, series_samples
from opsmind.ingest.errors import IngestError, over_limit
from opsmind.ingest.prompb import STALE_NAN, STALE_NAN_BITS, encode_remote_write, is_stale_marker, messages
from opsmind.ingest.samples import decode_samples
from opsmind.types import InvalidSeriesError, Series, SeriesSamples

__all__ = [
    "STALE_NAN",
    "RemoteWriteBatch",
    "SeriesCache",
    "check_headers",
    "decode_remote_write",
    "decode_write_request",
    "decompress",
    "encode_remote_write",
    "is_stale_marker",
    "snappy_header",
    "snappy_uncompressed_length",
]

V1_PROTO = "prometheus.WriteRequest"
V2_PROTO = "io.prometheus.write.v2.Request"


@dataclass(frozen=True, slots=True)
class RemoteWriteBatch:
    """A decoded request: the series to store and what was counted on the way.

    ``samples`` is the number of points in ``series``; ``stale_markers_dropped`` the number of Prometheus
    staleness markers that were skipped (they mark the end of a series, not a value).
    """

    series: list[SeriesSamples]
    samples: int
    stale_markers_dropped: int


class SeriesCache:
    """Validated series by the raw bytes of their labels, at most ``capacity`` of them.

    Lookups are plain dict reads (safe from several threads under the GIL). When the cache is full the
    oldest quarter of the entries is dropped; an entry costs roughly 0.5-1 KB.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: dict[bytes, Series] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Series | None:
        return self._entries.get(key)

    def put(self, key: bytes, series: Series) -> None:
        entries = self._entries
        if len(entries) >= self.capacity:
            # Evicting under a lock keeps two threads from iterating the dict while the other shrinks it.
            with self._lock:
                if len(entries) >= self.capacity:
                    for old in list(islice(entries, max(1, self.capacity // 4))):
                        entries.pop(old, None)
        entries[key] = series

    def clear(self) -> None:
        self._entries.clear()


_DEFAULT_CACHE = SeriesCache()


def check_headers(content_encoding: str | None, content_type: str | None) -> None:
    """Accept only snappy-compressed ``prometheus.WriteRequest`` bodies (remote-write 1.0), else 415."""
    encoding = (content_encoding or "").strip().lower()
    if encoding != "snappy":
        got = f"got {content_encoding!r}" if content_encoding else "it is missing"
        raise IngestError(f"remote write needs 'Content-Encoding: snappy'; {got}", 415)
    if content_type is None or not content_type.strip():
        return  # Old senders leave it out; the body is still a v1 WriteRequest.
    media, *params = (part.strip() for part in content_type.split(";"))
    if media.lower() != "application/x-protobuf":
        raise IngestError(
            f"remote write needs 'Content-Type: application/x-protobuf'; got {content_type!r}", 415
        )
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() != "proto":
            continue
        proto = value.strip().strip('"')
        if proto == V2_PROTO:
            raise IngestError(
                f"remote write 2.0 ({V2_PROTO}) is not supported; configure the sender for "
                f"remote write 1.0 ({V1_PROTO})",
                415,
            )
        if proto != V1_PROTO:
            raise IngestError(f"unsupported remote-write message {proto!r}; expected {V1_PROTO}", 415)


def snappy_header(body: bytes) -> tuple[int, int]:
    """Read a snappy block's leading varint: ``(declared uncompressed length, header size)``.

    The length is at most 2**32-1 and takes at most five bytes; anything else is not snappy.
    """
    result = 0
    for size, byte in enumerate(body[:5], start=1):
        result |= (byte & 0x7F) << (7 * (size - 1))
        if byte < 0x80:
            if result > 0xFFFFFFFF:
                break
            return result, size
    raise IngestError("invalid snappy: the block does not start with a valid length header", 400)


def snappy_uncompressed_length(body: bytes) -> int:
    """The uncompressed length a snappy block declares (see :func:`snappy_header`)."""
    return snappy_header(body)[0]


# The densest snappy element is a 3-byte copy of 64 bytes, so no block expands by more than 64/3.
_SNAPPY_MAX_EXPANSION = (64, 3)


def decompress(body: bytes, limits: IngestSettings) -> bytes:
    """Check the sizes, then decompress a snappy block; a bomb is refused before any memory is spent.

    The length the block declares is checked twice before decompressing: against what its compressed
    bytes could possibly produce (more is not snappy: 400) and against ``max_decoded_bytes`` (413).
    """
    if len(body) > limits.max_body_bytes:
        raise over_limit("bytes", len(body), limits.max_body_bytes, "max_body_bytes")
    declared, header = snappy_header(body)
    most = (len(body) - header) * _SNAPPY_MAX_EXPANSION[0] // _SNAPPY_MAX_EXPANSION[1]
    if declared > most:
        raise IngestError(
            f"invalid snappy: the block declares {declared} bytes but {len(body) - header} compressed "
            f"bytes hold at most {most}",
            400,
        )
    if declared > limits.max_decoded_bytes:
        raise IngestError(
            f"decompressed body would be {declared} bytes, over the limit of {limits.max_decoded_bytes} "
            "(ingest.max_decoded_bytes)",
            413,
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise IngestError(f"invalid snappy: {exc}", 400) from None


def decode_remote_write(
    body: bytes,
    *,
    content_encoding: str | None,
    content_type: str | None,
    limits: IngestSettings,
    cache: SeriesCache | None = None,
) -> RemoteWriteBatch:
    """Decode a remote-write 1.0 request body; raise :class:`IngestError` on any bad input.

    The result's ``series`` are the :class:`SeriesSamples` to store (timestamps in seconds, staleness
    markers dropped, every other value kept, NaN and ±Inf included); it also counts the samples kept
    and the markers dropped. Statuses: 415 wrong ``Content-Encoding`` or ``Content-Type`` (including
    remote write 2.0), 413 body, decompressed body, series or samples over ``limits``, 400 everything
    else: invalid snappy or protobuf, a negative timestamp, an invalid series (bad metric or label
    name, duplicate label, no ``__name__``; the reason names the series and the label). ``cache``
    defaults to a process-wide :class:`SeriesCache`.
    """
    check_headers(content_encoding, content_type)
    return decode_write_request(decompress(body, limits), limits, cache=cache)


# A sample of length L framed as field 2 takes L + 2 bytes while L < 126 (one-byte length); longer ones
# map to 1, a length no framed part can have, so they never pass for "one sample each".
_FRAMED_LENGTH = bytes(k + 2 if k < 126 else 1 for k in range(256))


def _render(pairs: Sequence[tuple[str, str]]) -> str:
    text = "{" + ", ".join(f"{k}={v!r}" for k, v in pairs) + "}"
    return text if len(text) <= 300 else text[:297] + "..."


def decode_write_request(
    data: bytes, limits: IngestSettings, cache: SeriesCache | None = None
) -> RemoteWriteBatch:
    """Decode an uncompressed ``prometheus.WriteRequest``; see :func:`decode_remote_write`."""
    with gc_paused():
        return _decode(data, limits, _DEFAULT_CACHE if cache is None else cache)


def _decode(data: bytes, limits: IngestSettings, cache: SeriesCache) -> RemoteWriteBatch:
    m = messages()
    try:
        raw = list(m.RawRequest.FromString(data).timeseries)
        if len(raw) > limits.max_series_per_request:
            raise over_limit("series", len(raw), limits.max_series_per_request, "max_series_per_request")
        # Only the samples of each series, re-encoded canonically: the suffix to strip from the raw
        # series, and (through the singular "flat" view) every sample of the request in order.
        samples_req = m.SamplesRequest.FromString(data)
        samples_req.DiscardUnknownFields()
        samples_only = samples_req.SerializeToString()
        parts = list(m.RawRequest.FromString(samples_only).timeseries)
        flat = list(m.FlatSamplesRequest.FromString(samples_only).timeseries.samples)
    except DecodeError as exc:
        raise IngestError(f"invalid protobuf: {exc}", 400) from None
    n, total = len(raw), len(flat)
    if total > limits.max_samples_per_request:
        raise over_limit("samples", total, limits.max_samples_per_request, "max_samples_per_request")

    # With as many samples as series and every part exactly one framed sample, each series has one
    # (a part of zero samples is empty, so no other split of the samples can match). Lengths go into
    # bytes objects, which compare in C; a length over 255 raises and takes the general path.
    one_each, sample_lens = False, None
    try:
        flat_lens = bytes(map(len, flat))
        sample_lens = np.frombuffer(flat_lens, dtype=np.uint8).astype(np.int64)
        one_each = total == n and bytes(map(len, parts)) == flat_lens.translate(_FRAMED_LENGTH)
    except ValueError:
        pass
    counts = None if one_each else list(map(len, map(attrgetter("samples"), samples_req.timeseries)))

    keys = list(map(bytes.removesuffix, raw, parts))
    labels_req: list[Any] = []

    def exact_key(i: int) -> bytes:
        """Series ``i``'s labels alone, canonically re-encoded (the request is parsed once, lazily)."""
        if not labels_req:
            try:
                req = m.LabelsRequest.FromString(data)
            except DecodeError as exc:  # not expected: the same bytes parsed above
                raise IngestError(f"invalid protobuf: {exc}", 400) from None
            req.DiscardUnknownFields()
            labels_req.append(req)
        key: bytes = labels_req[0].timeseries[i].SerializeToString()
        return key

    found: list[Series | None] = list(map(cache._entries.get, keys))
    for i in compress(range(n), map(is_, found, repeat(None))):
        if keys[i] is raw[i]:
            # removesuffix handed back the very same object, nothing was stripped: the series has no
            # samples, or they are not its last fields. Key it by its canonical labels instead. (A
            # raw series that holds samples never hits the cache: no cached key contains a sample.)
            keys[i] = exact_key(i)
            found[i] = _resolve(i, keys[i], cache, m.LabelsSeries, None)
        else:
            found[i] = _resolve(i, keys[i], cache, m.LabelsSeries, exact_key)
    series: list[Series] = found  # type: ignore[assignment]  # every None was just resolved

    try:
        ts_ms, bits = decode_samples(flat, m.Sample, sample_lens)
    except DecodeError as exc:
        raise IngestError(f"invalid protobuf in a sample: {exc}", 400) from None
    # ends[i]: one past the last sample of series i in ``flat``.
    ends = list(range(1, n + 1)) if counts is None else list(accumulate(counts))
    if total and int(ts_ms.min()) < 0:
        j = int(np.argmax(ts_ms < 0))
        i = bisect_right(ends, j)
        first = ends[i - 1] if i else 0
        raise IngestError(
            f"series {i} {series[i].key}: sample {j - first} has a negative timestamp "
            f"({int(ts_ms[j])} ms); timestamps are milliseconds since 1970",
            400,
        )
    stale = bits == np.uint64(STALE_NAN_BITS)
    n_stale = int(np.count_nonzero(stale))
    values: list[float] = bits.view(np.float64).tolist()

    if counts is None and n_stale == 0:
        # The common shape: one sample per series. Series scraped together share a timestamp, so each
        # distinct one becomes a single 1-tuple that all of them reference (fewer objects to allocate
        # and for the collector to walk); the values' 1-tuples are made by zip, in C.
        distinct, which = np.unique(ts_ms, return_inverse=True)
        shared = list(zip((distinct / 1000.0).tolist()))
        stamps = list(map(shared.__getitem__, which.tolist()))
        return RemoteWriteBatch(series_samples(series, stamps, zip(values)), total, 0)
    ts_list: list[float] = (ts_ms / 1000.0).tolist()
    keep_series: list[Series] = []
    keep_ts: list[tuple[float, ...]] = []
    keep_values: list[tuple[float, ...]] = []
    stale_list: list[bool] = stale.tolist()
    start = 0
    for i, end in enumerate(ends):
        if end > start:
            if n_stale and any(stale_list[start:end]):
                kept = [k for k in range(start, end) if not stale_list[k]]
                if kept:
                    keep_series.append(series[i])
                    keep_ts.append(tuple(ts_list[k] for k in kept))
                    keep_values.append(tuple(values[k] for k in kept))
            else:
                keep_series.append(series[i])
                keep_ts.append(tuple(ts_list[start:end]))
                keep_values.append(tuple(values[start:end]))
        start = end
    return RemoteWriteBatch(series_samples(keep_series, keep_ts, keep_values), total - n_stale, n_stale)


def _resolve(
    i: int, key: bytes, cache: SeriesCache, labels_series: Any, exact_key: Callable[[int], bytes] | None
) -> Series:
    """Parse and validate the labels in ``key`` (series ``i``), caching the result.

    A key cut from the raw series bytes that does not parse was cut in the wrong place (a field that is
    neither label nor sample came last), so it is retried with the exact, canonical labels.
    """
    hit = cache.get(key)  # An earlier series of the same request may have filled it.
    if hit is not None:
        return hit
    try:
        parsed = labels_series.FromString(key)
    except DecodeError as exc:
        if exact_key is None:
            raise IngestError(f"invalid protobuf in the labels of series {i}: {exc}", 400) from None
        return _resolve(i, exact_key(i), cache, labels_series, None)
    pairs = [(label.name, label.value) for label in parsed.labels]
    try:
        series = Series.from_pairs(pairs)
    except InvalidSeriesError as exc:
        raise IngestError(f"series {i} {_render(pairs)}: {exc}", 400) from None
    cache.put(key, series)
    return series
