"""``opsmind replay``: read a CSV/NDJSON file and push it to a running OpsMind at real or accelerated
speed, with a progress bar. Bad rows are reported with file and line before anything is sent."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from opsmind.clock import RealClock
from opsmind.config import StorageSettings
from opsmind.ingest.errors import IngestError
from opsmind.ingest.replay import replay
from opsmind.types import SeriesSamples


class PushError(RuntimeError):
    pass


def compact_body(batch: list[SeriesSamples]) -> dict[str, Any]:
    return {
        "series": [
            {
                "metric": ss.series.name,
                "labels": dict(ss.series.labels),
                "timestamps": list(ss.timestamps),
                "values": list(ss.values),
            }
            for ss in batch
        ]
    }


async def run_replay(
    file: Path,
    metric: str,
    labels: dict[str, str],
    url: str,
    speed: float | None,
    align_now: bool,
    batch_size: int,
    console: Console,
    token: str | None = None,
) -> int:
    """Replay ``file`` into the API at ``url`` (with ``token`` as its bearer token when access control
    is on); return the process exit code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    newest = -math.inf
    seen: dict[str, set[float]] = {}  # the timestamps sent per series, to count the repeated ones
    repeated = 0
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:

        async def sink(batch: list[SeriesSamples]) -> None:
            nonlocal newest, repeated
            newest = max(newest, *(max(s.timestamps, default=-math.inf) for s in batch))
            for s in batch:
                times = seen.setdefault(s.series.key, set())
                before = len(times)
                times.update(s.timestamps)
                repeated += len(s.timestamps) - (len(times) - before)
            try:
                r = await client.post("/api/v1/ingest", json=compact_body(batch))
            except httpx.HTTPError as exc:
                raise PushError(f"cannot reach OpsMind at {url}: {exc}") from exc
            if r.status_code != 200:
                try:
                    detail = r.json().get("detail", r.text)
                except ValueError:
                    detail = r.text
                raise PushError(f"OpsMind refused a batch (HTTP {r.status_code}): {detail}")

        with Progress(
            TextColumn("replay {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(file.name, total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                sent = await replay(
                    file,
                    sink,
                    RealClock(),
                    metric=metric,
                    labels=labels,
                    speed=speed,
                    batch_size=batch_size,
                    align_to_now=align_now,
                    progress=progress,
                )
            except IngestError as exc:
                console.print(f"[red]{escape(exc.reason)}[/red]")
                return 2
            except PushError as exc:
                console.print(f"[red]{escape(str(exc))}[/red]")
                return 1
    if sent == 0:  # an empty file (or a header alone) is most likely the wrong file: say so, do not succeed
        console.print(f"[red]{escape(str(file))}: no points to replay[/red]")
        return 2
    console.print(f"replayed {sent} points from {file} to {url}")
    if repeated:
        console.print(
            f"[yellow]note: {repeated} of them repeated a timestamp of their series already sent; the "
            "engine keeps one value per series and timestamp (the last), so they replaced earlier ones."
            "[/yellow]"
        )
    age = time.time() - newest
    keep = StorageSettings()  # the defaults: the CLI cannot read the engine's own settings
    if not align_now and age > keep.raw_retention_s:
        # Stored, then thinned or deleted by the engine's retention at its next maintenance: say so now.
        days = [
            round(x / 86400) for x in (keep.raw_retention_s, keep.minute_retention_s, keep.hour_retention_s)
        ]
        console.print(
            f"[yellow]note: the newest point is {age / 86400:.0f} days old. With the default retention "
            f"(storage.*_retention_s) an engine keeps raw points {days[0]} days, 1-minute rollups {days[1]} "
            f"and hourly ones {days[2]}, and deletes what is older at its next maintenance; --align-now "
            "shifts the file to end now.[/yellow]"
        )
    return 0
