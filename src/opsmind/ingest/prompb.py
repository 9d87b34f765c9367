"""The Prometheus remote-write 1.0 protobuf schema, built at run time, plus an encoder.

No generated ``*_pb2.py`` files and no ``protoc``: the message classes are assembled from a
``FileDescriptorProto`` the first time they are needed (never at import time) and cached. Field numbers
follow the remote-write 1.0 specification (https://prometheus.io/docs/specs/remote_write_spec/)::

    message WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
                           repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
    message Label        { string name = 1; string value = 2; }
    message Sample       { double value = 1; int64 timestamp = 2; }

Only the fields opsmind reads are declared; metadata, exemplars and native histograms are unknown
fields to these classes, which protobuf skips while parsing. Besides the real messages the file declares
*views*: messages with the same field numbers but different types (``bytes`` instead of a sub-message,
a singular field instead of a repeated one) that let the decoder in :mod:`opsmind.ingest.remote_write`
pull whole columns out of a request with a handful of C-level calls instead of one Python call per label.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from opsmind.types import SeriesSamples

#: The float Prometheus writes as a staleness marker: a NaN with this exact bit pattern.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

_PACKAGE = "prometheus"
_VIEWS = "opsmind.prompb_views"


def is_stale_marker(value: float) -> bool:
    """Return True when ``value`` is the Prometheus staleness marker (not just any NaN)."""
    return value != value and struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


@dataclass(frozen=True, slots=True)
class Messages:
    """The message classes of the remote-write schema and the decoder's views of it.

    ``WriteRequest``, ``TimeSeries``, ``Label`` and ``Sample`` are the real messages. The views, all
    wire-compatible with a ``WriteRequest`` (or a part of one):

    * ``RawRequest``: every time series as its raw encoded bytes.
    * ``SamplesRequest``: per series only the samples, each as raw bytes (labels become unknown fields).
    * ``FlatSamplesRequest``: ``timeseries`` declared singular, so protobuf merges all series into one
      and the samples of the whole request arrive as one repeated field, in order.
    * ``LabelsRequest``: per series only the labels, each as raw bytes.
    * ``LabelsSeries``: one series' labels as real ``Label`` messages (samples become unknown fields).
    """

    WriteRequest: Any
    TimeSeries: Any
    Label: Any
    Sample: Any
    RawRequest: Any
    SamplesRequest: Any
    FlatSamplesRequest: Any
    LabelsRequest: Any
    LabelsSeries: Any


_F = descriptor_pb2.FieldDescriptorProto


def _add_message(
    file: Any, package: str, name: str, fields: Iterable[tuple[str, int, int, int, str | None]]
) -> None:
    msg = file.message_type.add(name=name)
    for field_name, number, field_type, label, type_name in fields:
        field = msg.field.add(name=field_name, number=number, type=field_type, label=label)
        if type_name is not None:
            field.type_name = f".{package}.{type_name}" if "." not in type_name else f".{type_name}"


@functools.cache
def messages() -> Messages:
    """Build (once) and return the remote-write message classes.

    A private descriptor pool keeps these definitions from clashing with any generated ``prometheus``
    protos another library may have registered in protobuf's default pool.
    """
    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    msg_t, bytes_t, str_t = _F.TYPE_MESSAGE, _F.TYPE_BYTES, _F.TYPE_STRING
    pool = descriptor_pool.DescriptorPool()

    real = descriptor_pb2.FileDescriptorProto(name="prometheus/remote.proto", package=_PACKAGE)
    real.syntax = "proto3"  # proto3 strings: upb rejects label names/values that are not valid UTF-8
    _add_message(real, _PACKAGE, "Label", [("name", 1, str_t, opt, None), ("value", 2, str_t, opt, None)])
    _add_message(
        real,
        _PACKAGE,
        "Sample",
        [("value", 1, _F.TYPE_DOUBLE, opt, None), ("timestamp", 2, _F.TYPE_INT64, opt, None)],
    )
    _add_message(
        real,
        _PACKAGE,
        "TimeSeries",
        [("labels", 1, msg_t, rep, "Label"), ("samples", 2, msg_t, rep, "Sample")],
    )
    _add_message(real, _PACKAGE, "WriteRequest", [("timeseries", 1, msg_t, rep, "TimeSeries")])
    pool.Add(real)

    views = descriptor_pb2.FileDescriptorProto(name="opsmind/prompb_views.proto", package=_VIEWS)
    views.syntax = "proto3"
    views.dependency.append(real.name)
    _add_message(views, _VIEWS, "RawRequest", [("timeseries", 1, bytes_t, rep, None)])
    _add_message(views, _VIEWS, "SamplesSeries", [("samples", 2, bytes_t, rep, None)])
    _add_message(views, _VIEWS, "SamplesRequest", [("timeseries", 1, msg_t, rep, "SamplesSeries")])
    _add_message(views, _VIEWS, "FlatSamplesRequest", [("timeseries", 1, msg_t, opt, "SamplesSeries")])
    _add_message(views, _VIEWS, "LabelsOnlySeries", [("labels", 1, bytes_t, rep, None)])
    _add_message(views, _VIEWS, "LabelsRequest", [("timeseries", 1, msg_t, rep, "LabelsOnlySeries")])
    _add_message(views, _VIEWS, "LabelsSeries", [("labels", 1, msg_t, rep, f"{_PACKAGE}.Label")])
    pool.Add(views)

    def cls(full_name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    return Messages(
        WriteRequest=cls(f"{_PACKAGE}.WriteRequest"),
        TimeSeries=cls(f"{_PACKAGE}.TimeSeries"),
        Label=cls(f"{_PACKAGE}.Label"),
        Sample=cls(f"{_PACKAGE}.Sample"),
        RawRequest=cls(f"{_VIEWS}.RawRequest"),
        SamplesRequest=cls(f"{_VIEWS}.SamplesRequest"),
        FlatSamplesRequest=cls(f"{_VIEWS}.FlatSamplesRequest"),
        LabelsRequest=cls(f"{_VIEWS}.LabelsRequest"),
        LabelsSeries=cls(f"{_VIEWS}.LabelsSeries"),
    )


def encode_varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (or a negative int64, as 10 two's-complement bytes)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_write_request(batch: Iterable[SeriesSamples]) -> bytes:
    """Serialize ``batch`` as an uncompressed ``prometheus.WriteRequest``.

    Labels are written sorted by name with ``__name__`` among them, as the specification asks of
    senders; timestamps are converted from seconds to integer milliseconds.
    """
    m = messages()
    req = m.WriteRequest()
    for item in batch:
        ts = req.timeseries.add()
        for name, value in sorted(item.series.as_dict().items()):
            ts.labels.add(name=name, value=value)
        for t, v in zip(item.timestamps, item.values, strict=True):
            ts.samples.add(value=v, timestamp=round(t * 1000.0))
    data: bytes = req.SerializeToString()
    return data


def encode_remote_write(batch: Iterable[SeriesSamples]) -> bytes:
    """Encode ``batch`` as a remote-write 1.0 request body (snappy block format, not framed).

    The result is what a Prometheus server POSTs with ``Content-Encoding: snappy`` and
    ``Content-Type: application/x-protobuf``. Values are written bit for bit, so a :data:`STALE_NAN`
    value arrives as a staleness marker.
    """
    return bytes(cramjam.snappy.compress_raw(encode_write_request(batch)))
