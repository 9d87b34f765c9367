"""Vectorised decoding of many encoded ``prometheus.Sample`` messages at once.

A remote-write request carries one small ``Sample`` message per point. Reading them through protobuf
objects costs a Python object per sample; decoding the bytes with numpy costs a few array operations per
request. Go's protobuf encoder (which Prometheus uses) omits zero-valued fields, so a sample has one of
four shapes::

    09 <8-byte double> 10 <varint ms>     value and timestamp
    10 <varint ms>                        value 0.0
    09 <8-byte double>                    timestamp 0
    (empty)                               both zero

Each shape is recognised exactly (the varint must end on the sample's last byte), and anything else
(fields in another order, repeated fields, unknown fields, varints over 8 bytes such as those of
negative timestamps) is handed to the real protobuf parser, so the result always equals what protobuf
itself would decode.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_VALUE_TAG = 0x09  # field 1, wire type 1 (64-bit)
_TIMESTAMP_TAG = 0x10  # field 2, wire type 0 (varint)
_MAX_VARINT = 8  # 8 x 7 bits: timestamps below 2**56 ms (year 2 million); longer ones go to protobuf
_PAD = bytes(16)  # lets every 8-byte read start at any sample without running off the buffer
# _LOW_BYTES[k] keeps the low k bytes of a little-endian word.
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(_MAX_VARINT + 1)], dtype=np.uint64)

Int64Array = np.ndarray[Any, np.dtype[np.int64]]
UInt64Array = np.ndarray[Any, np.dtype[np.uint64]]


def _words(buf: np.ndarray[Any, np.dtype[np.uint8]], offsets: Int64Array) -> UInt64Array:
    """The 8 bytes at each offset of ``buf`` as a little-endian uint64."""
    windows = sliding_window_view(buf, 8)[offsets]
    return np.ascontiguousarray(windows).view("<u8").reshape(len(offsets)).astype(np.uint64)


def _varints(
    words: UInt64Array, length: Int64Array
) -> tuple[UInt64Array, np.ndarray[Any, np.dtype[np.bool_]]]:
    """Decode varints of ``length`` (1-8) bytes held in ``words``; also say which are well formed.

    Well formed: every byte but the last carries the continuation bit. The 7-bit groups are packed
    pairwise in three steps (SIMD-within-a-register), instead of a loop over the bytes.
    """
    keep = _LOW_BYTES[np.clip(length, 0, _MAX_VARINT)]
    w = words & keep
    well_formed = (w & np.uint64(0x8080808080808080)) == (
        np.uint64(0x8080808080808080) & (keep >> np.uint64(8))
    )
    x = w & np.uint64(0x7F7F7F7F7F7F7F7F)
    x = (x & np.uint64(0x007F007F007F007F)) | ((x & np.uint64(0x7F007F007F007F00)) >> np.uint64(1))
    x = (x & np.uint64(0x00003FFF00003FFF)) | ((x & np.uint64(0x3FFF00003FFF0000)) >> np.uint64(2))
    x = (x & np.uint64(0x000000000FFFFFFF)) | ((x & np.uint64(0x0FFFFFFF00000000)) >> np.uint64(4))
    return x, well_formed


def decode_samples(
    encoded: list[bytes], sample_cls: Any, lengths: Int64Array | None = None
) -> tuple[Int64Array, UInt64Array]:
    """Decode encoded ``Sample`` messages into timestamps (ms, int64) and value bit patterns (uint64).

    Values are returned as raw IEEE-754 bits so NaN payloads, such as the staleness marker, survive;
    view them with ``bits.view(np.float64)``. ``lengths`` may pass ``len()`` of every item when the
    caller has it already. ``sample_cls`` is the protobuf ``Sample`` class used for the rare sample of
    another shape; its ``DecodeError`` propagates for bytes that are not a sample.
    """
    n = len(encoded)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    lens = np.fromiter(map(len, encoded), dtype=np.int64, count=n) if lengths is None else lengths
    buf = np.frombuffer(b"".join(encoded) + _PAD, dtype=np.uint8)
    starts = np.cumsum(lens) - lens

    has_value = (buf[starts] == _VALUE_TAG) & (lens >= 9)
    value_len = np.where(has_value, 9, 0)
    tag_at = starts + value_len
    rest = lens - value_len
    varint_len = rest - 1
    ts, well_formed = _varints(_words(buf, tag_at + 1), varint_len)
    has_ts = (rest >= 2) & (buf[tag_at] == _TIMESTAMP_TAG) & (varint_len <= _MAX_VARINT) & well_formed

    bits = np.where(has_value, _words(buf, starts + 1), np.uint64(0))
    ts_ms = np.where(has_ts, ts, np.uint64(0)).astype(np.int64)

    ok = (lens == 0) | (has_value & (rest == 0)) | has_ts
    for i in np.flatnonzero(~ok).tolist():
        sample = sample_cls.FromString(encoded[i])
        ts_ms[i] = sample.timestamp
        bits[i] = struct.unpack("<Q", struct.pack("<d", sample.value))[0]
    return ts_ms, bits
