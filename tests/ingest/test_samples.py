"""The vectorised sample decoder against protobuf itself, on every shape and on garbage."""

from __future__ import annotations

import random
import struct

import pytest
from google.protobuf.message import DecodeError

from opsmind.ingest.prompb import messages
from opsmind.ingest.samples import decode_samples

from .test_remote_write import field_double, field_varint, sample


def protobuf_decode(items: list[bytes]) -> list[tuple[int, int]] | None:
    out = []
    for item in items:
        try:
            msg = messages().Sample.FromString(item)
        except DecodeError:
            return None
        out.append((msg.timestamp, struct.unpack("<Q", struct.pack("<d", msg.value))[0]))
    return out


def vectorised_decode(items: list[bytes]) -> list[tuple[int, int]] | None:
    try:
        ts, bits = decode_samples(items, messages().Sample)
    except DecodeError:
        return None
    return list(zip(ts.tolist(), bits.tolist(), strict=True))


def random_sample(rng: random.Random) -> bytes:
    ts = rng.choice([0, 1, 127, 128, 2**35, 1_700_000_000_000, 2**55, 2**56 - 1, 2**56, 2**62, -1, -5])
    value = rng.choice([0.0, -0.0, 1.5, float("nan"), 1e308, float("inf")])
    shape = rng.random()
    if shape < 0.6:
        return sample(value, ts)  # the shapes Go writes
    if shape < 0.7:
        return field_varint(2, ts) + field_double(1, value)  # fields swapped
    if shape < 0.8:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))  # garbage
    if shape < 0.9:  # long, possibly ill-formed varints
        continuation = bytes(0x80 | rng.randrange(128) for _ in range(rng.randint(0, 9)))
        return field_double(1, value) + b"\x10" + continuation + bytes([rng.randrange(128)])
    return sample(value, ts)[:-1]  # truncated


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_decoder_matches_protobuf(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        items = [random_sample(rng) for _ in range(rng.randint(1, 30))]
        assert vectorised_decode(items) == protobuf_decode(items), items


def test_empty_input() -> None:
    ts, bits = decode_samples([], messages().Sample)
    assert ts.size == 0 and bits.size == 0
