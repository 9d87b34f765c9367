"""A tuning corpus in NAB's layout, made from real production traces with injected, labelled anomalies.

Why: detector settings must be chosen on data apart from what they are scored on. NAB is the score, so
it is never used to choose; this corpus is. It is built from the real traces in
``../shared/datasets/traces`` (Crane CPU, NASA-1995 and WorldCup-98 requests), so the series have the
heavy tails, flat stretches, daily cycles and unlabelled oddities of production metrics, unlike purely
synthetic noise.

Each trace is averaged to a fixed step and cut into files of about ``FILE_ROWS`` rows; a seeded generator
injects 0-3 anomalies per file after the probationary 15%: a spike (a few points), a level shift that
stays, a variance burst, a dropout (the metric flat at 0 or at its last value) and a slow drift; each has
a magnitude drawn in units of the file's own robust spread. Windows are made as NAB made its own: 10% of
the file's rows divided by its number of anomalies, centred on the anomaly's first row. The traces'
natural events (flash crowds, outages) stay unlabelled, as they would in real data: a detector that
fires on them pays false positives.

``opsmind bench nab --data DIR`` scores the folder like NAB itself (the default profiles are NAB's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from opsmind.bench.traces import MAX_SPAN_DAYS
from opsmind.sim.load import TraceError, read_trace

F64 = npt.NDArray[np.float64]
FILE_ROWS = 4000
KINDS = ("spike", "shift", "variance", "dropout", "drift")
PROBATION = 0.15


@dataclass(frozen=True)
class TraceSource:
    category: str
    glob: str
    step_s: float  # averaging step


SOURCES = (
    TraceSource("crane", "crane_dsp_production_cpu/input*.csv.gz", 180.0),
    TraceSource("nasa", "nasa_http_1995/nasa_1995_per_minute.csv.gz", 300.0),
    TraceSource("worldcup", "worldcup98/worldcup98_per_minute.csv.gz", 300.0),
)


def resample(times: F64, values: F64, step_s: float) -> F64:
    """Mean of the values in each ``step_s`` bucket (buckets without rows take the previous mean)."""
    bucket = ((times - times[0]) // step_s).astype(np.int64)
    sums = np.bincount(bucket, weights=values)
    counts = np.bincount(bucket)
    out = np.full(len(sums), np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    for i in range(1, len(out)):
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out


def inject(values: F64, rng: np.random.Generator) -> tuple[F64, list[tuple[int, str]]]:
    """The values with 0-3 anomalies injected after the probationary period, and their (row, kind)."""
    x = values.copy()
    n = len(x)
    count = int(rng.choice([0, 1, 1, 2, 2, 3]))
    spread = float(np.median(np.abs(np.diff(x)))) * 1.4826 or float(np.std(x)) or 1.0
    level = float(np.median(np.abs(x))) or spread
    lo = int(PROBATION * n) + n // 20
    candidates = np.arange(lo, n - n // 20)
    slots = sorted(int(s) for s in rng.choice(candidates, size=count, replace=False)) if count else []
    out: list[tuple[int, str]] = []
    last = -n
    for start in slots:
        if start - last < n // 8:
            continue  # keep windows apart, as NAB's labels are
        kind = str(rng.choice(KINDS))
        length = int(rng.integers(20, 120))
        end = min(n, start + length)
        if kind == "spike":
            k = int(rng.integers(1, 4))
            x[start : start + k] += rng.choice([-1, 1]) * rng.uniform(4, 12) * spread + 0.1 * level
        elif kind == "shift":
            x[start:] += rng.choice([-1, 1]) * max(rng.uniform(3, 8) * spread, rng.uniform(0.2, 0.5) * level)
        elif kind == "variance":
            x[start:end] += rng.normal(0.0, rng.uniform(3, 8) * spread, end - start)
        elif kind == "dropout":
            x[start:end] = 0.0 if rng.random() < 0.5 else x[start - 1]
        else:  # drift: a ramp to a lasting offset
            ramp = np.linspace(0.0, 1.0, end - start)
            off = rng.choice([-1, 1]) * max(rng.uniform(5, 12) * spread, rng.uniform(0.3, 0.6) * level)
            x[start:end] += ramp * off
            x[end:] += off
        if np.min(values) >= 0.0:
            x = np.maximum(x, 0.0)  # counts and utilisations stay non-negative
        out.append((start, kind))
        last = start
    return x, out


def windows_for(n: int, anomalies: list[tuple[int, str]]) -> list[tuple[int, int]]:
    if not anomalies:
        return []
    width = max(2, int(0.1 * n / len(anomalies)))
    return [(max(0, a - width // 2), min(n - 1, a + width // 2)) for a, _ in anomalies]


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def build_corpus(traces: Path, out: Path, seed: int) -> dict[str, int]:
    """Write the corpus to ``out`` (NAB layout); returns counts of files, rows and anomalies."""
    rng = np.random.default_rng(seed)
    labels: dict[str, list[list[str]]] = {}
    kinds: dict[str, list[str]] = {}
    rows = 0
    start_t = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    for source in SOURCES:
        paths = sorted(traces.glob(source.glob))
        if not paths:
            raise FileNotFoundError(f"{traces / source.glob}: no trace files")
        (out / "data" / source.category).mkdir(parents=True, exist_ok=True)
        for path in paths:
            t, v = read_trace(path)
            if t[-1] > MAX_SPAN_DAYS * 86_400:  # t starts at 0; a stray timestamp would ask for GBs of steps
                raise TraceError(
                    f"{path}: the timestamps span {t[-1] / 86_400:,.0f} days, more than {MAX_SPAN_DAYS}; "
                    "a stray or mis-scaled timestamp?"
                )
            series = resample(np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.float64), source.step_s)
            parts = max(1, round(len(series) / FILE_ROWS))
            for k, chunk in enumerate(np.array_split(series, parts)):
                x, anomalies = inject(chunk, rng)
                stamps = [_stamp(start_t + i * source.step_s) for i in range(len(x))]
                name = f"{source.category}/{path.name.split('.')[0]}_{k}.csv"
                lines = ["timestamp,value"] + [f"{s},{val:.6g}" for s, val in zip(stamps, x, strict=True)]
                (out / "data" / name).write_text("\n".join(lines) + "\n")
                labels[name] = [
                    [stamps[a] + ".000000", stamps[b] + ".000000"] for a, b in windows_for(len(x), anomalies)
                ]
                kinds[name] = [k for _, k in anomalies]
                rows += len(x)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "combined_windows.json").write_text(json.dumps(labels, indent=1, sort_keys=True))
    (out / "labels" / "kinds.json").write_text(json.dumps(kinds, indent=1, sort_keys=True))
    return {"files": len(labels), "rows": rows, "anomalies": sum(len(w) for w in labels.values())}
