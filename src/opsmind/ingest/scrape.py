"""Pull metrics from Prometheus-style endpoints: parse expositions and scrape targets on a schedule.

:func:`parse_exposition` turns one exposition (Prometheus text format, or OpenMetrics when the content
type says so) into :class:`SeriesSamples`. :class:`Scraper` fetches each configured target every
``interval_s`` and hands the result to a sink, labelled like Prometheus does: ``job`` and ``instance``
plus the target's own labels, and a synthetic ``up`` series (1 scraped, 0 failed) for every attempt. A
failing target is logged and reported as ``up 0``; it never stops the other targets.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from opsmind.clock import Clock
from opsmind.config import ScrapeTarget
from opsmind.ingest.errors import IngestError
from opsmind.types import InvalidSeriesError, Series, SeriesSamples

log = logging.getLogger(__name__)

Sink = Callable[[list[SeriesSamples]], Awaitable[None]]

OPENMETRICS = "application/openmetrics-text"
#: What Prometheus itself asks for: OpenMetrics first, the classic text format as a fallback.
ACCEPT = (
    f"{OPENMETRICS};version=1.0.0,{OPENMETRICS};version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
DEFAULT_JOB = "opsmind"


def is_openmetrics(content_type: str | None) -> bool:
    """True when a ``Content-Type`` header names the OpenMetrics text format."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == OPENMETRICS


def _merge_labels(target: Mapping[str, str], scraped: Mapping[str, str]) -> dict[str, str]:
    """Target labels win; a scraped label they replace is kept as ``exported_<name>``.

    This is Prometheus' ``honor_labels: false``: an exporter cannot pretend to be another job or
    instance. As in Prometheus, the ``exported_`` prefix repeats until the name is free among the
    scraped labels.
    """
    merged = dict(scraped)
    for name, value in target.items():
        if name in merged:
            renamed = f"exported_{name}"
            while renamed in scraped:
                renamed = f"exported_{renamed}"
            merged[renamed] = merged[name]
        merged[name] = value
    return merged


def parse_exposition(
    text: str,
    default_ts: float,
    extra_labels: Mapping[str, str],
    *,
    content_type: str | None = None,
) -> list[SeriesSamples]:
    """Parse an exposition into one :class:`SeriesSamples` per series.

    ``default_ts`` (Unix seconds, normally the scrape's start) stamps samples that carry no timestamp of
    their own. ``extra_labels`` are added to every series (see :func:`_merge_labels` for clashes).
    Histogram and summary samples become their ``_bucket``/``_sum``/``_count`` series, as in Prometheus.
    Raises :class:`IngestError` (400) for text that does not parse or an invalid metric or label name.
    """
    parser = parse_openmetrics if is_openmetrics(content_type) else parse_text
    points: dict[Series, tuple[list[float], list[float]]] = {}
    try:
        families: Iterable[Metric] = parser(text)
        for family in families:
            for sample in family.samples:
                if sample.value is None:  # native histograms carry no plain value; not stored
                    continue
                series = Series.of(sample.name, _merge_labels(extra_labels, sample.labels))
                ts = default_ts if sample.timestamp is None else float(sample.timestamp)
                column = points.setdefault(series, ([], []))
                column[0].append(ts)
                column[1].append(float(sample.value))
    except InvalidSeriesError as exc:
        raise IngestError(f"invalid series in exposition: {exc}", 400) from None
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        # The prometheus_client parsers signal malformed text with whatever error the line triggered.
        detail = str(exc) or type(exc).__name__
        raise IngestError(f"invalid exposition: {detail[:200]}", 400) from None
    return [SeriesSamples(s, tuple(ts), tuple(vs)) for s, (ts, vs) in points.items()]


class ScrapeError(Exception):
    """The target answered, but not with a usable exposition (HTTP status, size)."""


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """The outcome of a target's latest scrape."""

    up: bool
    at: float
    series: int
    error: str | None = None


class Scraper:
    """Scrape ``targets`` on their intervals and send every result to ``sink``.

    ``client`` is used when given (tests, shared connection pools); otherwise the scraper makes its own
    and closes it when :meth:`run` ends. ``max_response_bytes`` bounds a response after decompression.
    """

    def __init__(
        self,
        targets: list[ScrapeTarget],
        sink: Sink,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
        *,
        max_response_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.targets = list(targets)
        self._sink = sink
        self._clock = clock
        self._client = client
        self._owns_client = client is None
        self._max_bytes = max_response_bytes
        self.status: dict[str, TargetStatus] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}  # by target URL, while running
        self._stop: asyncio.Event | None = None
        for target in self.targets:
            self.check(target)

    def check(self, target: ScrapeTarget) -> None:
        """Fail when it is added (at start-up for the configured ones), not at every scrape, when a
        target's own labels are invalid: ValueError names the target and the label."""
        try:
            Series.of("up", self.target_labels(target))
        except InvalidSeriesError as exc:
            raise ValueError(f"scrape target {target.url}: {exc}") from None

    def add(self, target: ScrapeTarget) -> None:
        """Scrape ``target`` too, from now on (a target with the same URL is replaced); ValueError as
        :meth:`check`. For targets registered while running (the service registry)."""
        self.check(target)
        url = str(target.url)
        self.remove(url)
        self.targets.append(target)
        if self._stop is not None:
            self._start(target, self._stop)

    def remove(self, url: str) -> bool:
        """Stop scraping the target at ``url`` (an in-flight scrape is cancelled); whether there was one."""
        before = len(self.targets)
        self.targets = [t for t in self.targets if str(t.url) != url]
        task = self._loops.pop(url, None)
        if task is not None:
            task.cancel()
        self.status.pop(url, None)
        return len(self.targets) < before

    def _start(self, target: ScrapeTarget, stop: asyncio.Event) -> None:
        url = str(target.url)
        self._loops[url] = asyncio.create_task(self._loop(target, stop), name=f"scrape {url}")

    @staticmethod
    def target_labels(target: ScrapeTarget) -> dict[str, str]:
        """The labels every series of ``target`` gets: ``instance`` (host:port), ``job`` and its own."""
        instance = f"{target.url.host}:{target.url.port}"
        job = target.labels.get("job") or DEFAULT_JOB
        return {"instance": instance, **target.labels, "job": job}

    async def scrape_once(self, target: ScrapeTarget) -> list[SeriesSamples]:
        """Scrape ``target`` once, send the series (plus ``up``) to the sink and return them.

        Problems with the target (unreachable, timeout, HTTP error, bad exposition) give ``up`` 0 and
        are logged; only an exception from the sink itself propagates.
        """
        started = self._clock.now()
        labels = self.target_labels(target)
        url = str(target.url)
        error: str | None = None
        try:
            text, content_type = await self._fetch(target)
            # The parsers are pure Python (about 10 µs a line): a big exposition in a worker thread lets
            # the event loop keep serving requests meanwhile.
            batch = await asyncio.to_thread(
                parse_exposition, text, started, labels, content_type=content_type
            )
        except Exception as exc:  # any failure of one target must not stop the others
            batch = []
            error = _describe_error(exc, target)
        batch.append(SeriesSamples(Series.of("up", labels), (started,), (0.0 if error else 1.0,)))
        self._record(url, TargetStatus(up=error is None, at=started, series=len(batch) - 1, error=error))
        await self._sink(batch)
        return batch

    def _record(self, url: str, status: TargetStatus) -> None:
        previous = self.status.get(url)
        self.status[url] = status
        if status.error is not None:
            # Warn when a target goes down; repeating it every interval would only flood the log.
            level = logging.WARNING if previous is None or previous.up else logging.DEBUG
            log.log(level, "scrape of %s failed: %s", url, status.error)
        elif previous is not None and not previous.up:
            log.info("scrape of %s succeeds again (%d series)", url, status.series)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=True)
        return self._client

    async def _fetch(self, target: ScrapeTarget) -> tuple[str, str | None]:
        headers = {"Accept": ACCEPT, "X-Prometheus-Scrape-Timeout-Seconds": f"{target.timeout_s:g}"}
        chunks: list[bytes] = []
        size = 0
        # httpx's timeout applies to each read; asyncio.timeout bounds the scrape as a whole.
        async with asyncio.timeout(target.timeout_s):
            async with self._http().stream(
                "GET", str(target.url), headers=headers, timeout=target.timeout_s
            ) as response:
                if response.status_code != 200:
                    raise ScrapeError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise ScrapeError(f"response is larger than {self._max_bytes} bytes")
                    chunks.append(chunk)
                encoding = response.charset_encoding or "utf-8"
                content_type = response.headers.get("content-type")
        return b"".join(chunks).decode(encoding), content_type

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape every target at its interval until ``stop`` is set (targets :meth:`add`-ed meanwhile
        too); an in-flight scrape completes."""
        self._stop = stop
        try:
            for target in self.targets:
                self._start(target, stop)
            await stop.wait()
            await asyncio.gather(*self._loops.values(), return_exceptions=True)
        finally:
            self._stop = None
            for task in self._loops.values():
                task.cancel()
            self._loops.clear()
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if the scraper made it (``run`` does this when it ends)."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self, target: ScrapeTarget, stop: asyncio.Event) -> None:
        interval = target.interval_s
        next_at = self._clock.now()
        while not stop.is_set():
            try:
                await self.scrape_once(target)
            except Exception:  # the sink failed; keep scraping, the next batch may pass
                log.exception("could not deliver the scrape of %s", target.url)
            next_at += interval
            now = self._clock.now()
            if next_at <= now:
                # A slow scrape or sink overran the interval: skip the missed slots instead of bursting.
                next_at += interval * (math.floor((now - next_at) / interval) + 1)
            await self._wait(stop, next_at - now)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds`` on the clock, returning early when ``stop`` is set."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        _, pending = await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _describe_error(exc: Exception, target: ScrapeTarget) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timed out after {target.timeout_s:g}s"
    if isinstance(exc, IngestError):
        return exc.reason
    if isinstance(exc, ScrapeError):
        return str(exc)
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        return "response is not valid text in its declared encoding"
    return f"{type(exc).__name__}: {exc}"
