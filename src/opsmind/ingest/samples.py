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
(fields in another order, repeated fields, unknown fields, 10-byte varints of negative timestamps) is
handed to the real protobuf parser, so the result always equals what protobuf itself would decode.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_VALUE_TAG = 0x09  # field 1, wire type 1 (64-bit)
_TIMESTAMP_TAG = 0x10  # field 2, wire type 0 (varint)
_MAX_VARINT = 9  # 9 x 7 bits = 63 bits: every non-negative int64; longer ones go to protobuf
_PAD = bytes(16)  # lets every gather read past the last sample without bounds checks

Int64Array = np.ndarray[Any, np.dtype[np.int64]]
UInt64Array = np.ndarray[Any, np.dtype[np.uint64]]


def decode_samples(encoded: list[bytes], sample_cls: Any) -> tuple[Int64Array, UInt64Array]:
    """Decode encoded ``Sample`` messages into timestamps (ms, int64) and value bit patterns (uint64).

    Values are returned as raw IEEE-754 bits so NaN payloads, such as the staleness marker, survive;
    view them with ``bits.view(np.float64)``. ``sample_cls`` is the protobuf ``Sample`` class used for
    the rare sample of another shape; its ``DecodeError`` propagates for bytes that are not a sample.
    """
    n = len(encoded)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    lens = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(encoded) + _PAD, dtype=np.uint8)
    starts = np.cumsum(lens) - lens

    has_value = (buf[starts] == _VALUE_TAG) & (lens >= 9)
    value_len = np.where(has_value, 9, 0)
    tag_at = starts + value_len
    rest = lens - value_len
    varint_len = rest - 1
    has_ts = (rest >= 2) & (buf[tag_at] == _TIMESTAMP_TAG) & (varint_len <= _MAX_VARINT)

    # Decode every varint column by column: byte k counts when k < varint_len, and all but the last
    # counted byte must carry the continuation bit.
    first = tag_at + 1
    ts = np.zeros(n, dtype=np.uint64)
    well_formed = np.ones(n, dtype=bool)
    longest = int(np.clip(varint_len, 0, _MAX_VARINT).max())
    for k in range(longest):
        byte = buf[first + k]
        within = k < varint_len
        is_last = varint_len - 1 == k
        well_formed &= ~within | ((byte >= 0x80) != is_last)
        payload = (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        ts |= np.where(within, payload, np.uint64(0))
    has_ts &= well_formed

    windows = sliding_window_view(buf, 8)
    bits = np.ascontiguousarray(windows[starts + 1]).view("<u8").reshape(n).astype(np.uint64)
    bits = np.where(has_value, bits, np.uint64(0))
    ts_ms = np.where(has_ts, ts, np.uint64(0)).astype(np.int64)

    ok = (lens == 0) | (has_value & (rest == 0)) | has_ts
    for i in np.flatnonzero(~ok).tolist():
        sample = sample_cls.FromString(encoded[i])
        ts_ms[i] = sample.timestamp
        bits[i] = struct.unpack("<Q", struct.pack("<d", sample.value))[0]
    return ts_ms, bits
