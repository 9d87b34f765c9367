"""Throughput of remote-write decoding, one core (not collected by pytest; run it directly).

    .venv/bin/python tests/ingest/bench_remote_write.py

The request shape is what Prometheus sends by default: 2,000 series of one sample each, a metric name
and six labels per series, a third of the values zero (Go then leaves the field out).
"""

from __future__ import annotations

import random
import time

from opsmind.config import IngestSettings
from opsmind.ingest.prompb import encode_remote_write
from opsmind.ingest.remote_write import SeriesCache, decode_remote_write
from opsmind.types import Series, SeriesSamples


def make_request(n_series: int, samples_per_series: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    now = 1_700_000_000.0
    batch = []
    for i in range(n_series):
        series = Series.of(
            f"http_requests_total_{i % 50}",
            {
                "instance": f"10.0.{i % 7}.{i % 13}:9100",
                "job": "node",
                "service": f"svc{i % 20}",
                "pod": f"pod-{i}",
                "method": "GET",
                "code": "200",
            },
        )
        ts = tuple(now + 15 * k for k in range(samples_per_series))
        values = tuple(0.0 if rng.random() < 0.33 else rng.random() * 100 for _ in ts)
        batch.append(SeriesSamples(series, ts, values))
    return encode_remote_write(batch)


def measure(body: bytes, samples: int, *, warm: bool, seconds: float = 2.0) -> float:
    """Samples per second over ``seconds`` of back-to-back decodes (collector pauses included)."""
    limits = IngestSettings()
    cache = SeriesCache()
    if warm:
        decode_remote_write(body, content_encoding="snappy", content_type=None, limits=limits, cache=cache)
    done, busy = 0, 0.0
    while busy < seconds:
        fresh = SeriesCache() if not warm else cache  # made outside the timed part
        t0 = time.perf_counter()
        for _ in range(10):
            decode_remote_write(
                body, content_encoding="snappy", content_type=None, limits=limits, cache=fresh
            )
            if not warm:
                break
        busy += time.perf_counter() - t0
        done += samples * (10 if warm else 1)
    return done / busy


def main() -> None:
    for n_series, per in ((2000, 1), (500, 10), (20_000, 1)):
        body = make_request(n_series, per)
        warm = measure(body, n_series * per, warm=True)
        cold = measure(body, n_series * per, warm=False, seconds=1.0)
        print(
            f"{n_series:>6} series x {per:>2} samples ({len(body):>7} B): "
            f"{warm / 1e6:5.2f} M samples/s known series, {cold / 1e6:5.2f} M samples/s new series"
        )
    # A long-lived server holds millions of objects; the collector's cost grows with them.
    ballast = [(i, str(i)) for i in range(1_000_000)]
    body = make_request(2000, 1)
    print(f"  with 1M live objects: {measure(body, 2000, warm=True) / 1e6:5.2f} M samples/s known series")
    del ballast


if __name__ == "__main__":
    main()
