"""The simulated fleet as a scrape target: Prometheus' text exposition format (version 0.0.4).

:func:`render` writes one snapshot (a step's samples) as the format a Prometheus server scrapes
(https://prometheus.io/docs/instrumenting/exposition_formats/). :class:`ExpositionServer` serves the
latest snapshot over HTTP, so a real Prometheus can scrape the simulator the way it scrapes a real fleet:
``GET /metrics`` for every series, ``GET /metrics/<service>`` for one service's series (one scrape
target per service).

The server never touches the simulation: whoever steps the ``SimRun`` calls :meth:`ExpositionServer.update`
with the step's samples; the snapshot is rendered there and swapped in under a lock, so a scrape always
sees one whole step.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from opsmind.types import Series

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"

# One line of help per metric the simulator's observer exposes (opsmind.sim.observe).
HELP: dict[str, str] = {
    "request_rate": "Requests per second arriving at the service.",
    "error_ratio": "Fraction of the service's requests that fail (0..1).",
    "latency_seconds": "Request latency quantile of the service, in seconds.",
    "replicas_desired": "Replicas the service's deployment asks for.",
    "replicas_ready": "Replicas of the service that are ready to serve.",
    "cpu_utilisation": "Mean CPU utilisation of the service's ready pods (0..1).",
    "pool_in_use_ratio": "Fraction of the service's connection pool in use (0..1).",
    "cost_per_hour_dollars": "Running cost of the service's replicas, in US dollars per hour.",
    "queue_depth": "Jobs waiting in the worker's queue.",
    "disk_used_ratio": "Fraction of the service's persistent disk in use (0..1).",
    "model_accuracy": "Accuracy of the model the ML service is serving (0..1).",
    "model_drift_score": "Model drift: accuracy lost against the baseline, scaled to 0..1.",
    "pod_ready": "1 if the pod is ready to serve, else 0.",
    "pod_cpu_utilisation": "CPU utilisation of the pod (0..1).",
    "pod_memory_bytes": "Resident memory of the pod, in bytes.",
    "pod_restarts_total": "Container restarts of the pod since it was created.",
}
GENERIC_HELP = "Metric of the OpsMind fleet simulator."


def metric_type(name: str) -> str:
    """``counter`` for names ending in ``_total`` (the naming convention), else ``gauge``."""
    return "counter" if name.endswith("_total") else "gauge"


def escape_label_value(value: str) -> str:
    """A label value as the format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A HELP text as the format writes it: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: ``NaN``, ``+Inf``, ``-Inf``, or the shortest text that reads back as ``value``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _series_text(series: Series) -> str:
    if not series.labels:
        return series.name
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in series.labels)
    return f"{series.name}{{{inner}}}"


def render(samples: Iterable[tuple[Series, float]], timestamp: float | None = None) -> str:
    """One snapshot in the text exposition format 0.0.4.

    Series are grouped by metric name (in order of first appearance), each group under one ``# HELP``
    and one ``# TYPE`` line. A series given twice is written once, with its last value. ``timestamp``
    (Unix seconds) is written on every sample, in milliseconds; by default there is none and the scraper
    stamps the scrape itself, as Prometheus expects of a live target.
    """
    families: dict[str, dict[Series, float]] = {}
    for series, value in samples:
        family = families.get(series.name)
        if family is None:
            family = families[series.name] = {}
        family[series] = value
    suffix = "" if timestamp is None else f" {round(timestamp * 1000.0)}"
    lines: list[str] = []
    add = lines.append
    for name, family in families.items():
        add(f"# HELP {name} {escape_help(HELP.get(name, GENERIC_HELP))}")
        add(f"# TYPE {name} {metric_type(name)}")
        for series, value in family.items():
            add(f"{_series_text(series)} {format_value(value)}{suffix}")
    return "\n".join(lines) + "\n" if lines else ""


class _Snapshot:
    """The rendered bodies of one update: everything, and per service (when asked for)."""

    __slots__ = ("all", "services")

    def __init__(self, all_: bytes, services: dict[str, bytes]) -> None:
        self.all = all_
        self.services = services


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "opsmind-sim"

    def _body(self) -> bytes | None:
        path = unquote(urlsplit(self.path).path)
        if path == METRICS_PATH:
            return self.server.exposition.body()
        prefix = METRICS_PATH + "/"
        if path.startswith(prefix) and len(path) > len(prefix):
            return self.server.exposition.body(path[len(prefix) :])
        return None

    def _respond(self, with_body: bool) -> None:
        body = self._body()
        if body is None:
            payload = b"not found: try GET /metrics\n"
            self.send_response(HTTPStatus.NOT_FOUND)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        else:
            payload = body
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if with_body:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line on stderr per request."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exposition: ExpositionServer) -> None:
        self.exposition = exposition
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper that hung up is normal; anything else is logged, never printed to stderr."""
        log.debug("exposition: error serving %s", client_address, exc_info=True)


class ExpositionServer:
    """Serves the latest snapshot given to :meth:`update` at ``GET /metrics`` on ``host:port``.

    With ``per_service`` (the default) ``GET /metrics/<service>`` serves only the series whose
    ``service`` label is ``<service>``; a service absent from the latest snapshot is 404, as is every
    other path. ``port=0`` takes a free port (read it from :attr:`port` after :meth:`start`). Before the
    first update ``/metrics`` is an empty, valid exposition.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, per_service: bool = True) -> None:
        self.host = host
        self._requested_port = port
        self.per_service = per_service
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(b"", {})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the exposition server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the server (``http://host:port``), without the path."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def update(self, samples: Sequence[tuple[Series, float]], timestamp: float | None = None) -> None:
        """Make ``samples`` the snapshot served from now on (rendered here, swapped in under a lock)."""
        all_ = render(samples, timestamp).encode("utf-8")
        services: dict[str, bytes] = {}
        if self.per_service:
            by_service: dict[str, list[tuple[Series, float]]] = {}
            for series, value in samples:
                service = series.service
                if service is not None:
                    by_service.setdefault(service, []).append((series, value))
            services = {name: render(group, timestamp).encode("utf-8") for name, group in by_service.items()}
        snapshot = _Snapshot(all_, services)
        with self._lock:
            self._snapshot = snapshot

    def body(self, service: str | None = None) -> bytes | None:
        """What ``GET /metrics`` (or ``GET /metrics/<service>``) answers now; None where that is 404."""
        with self._lock:
            snapshot = self._snapshot
        if service is None:
            return snapshot.all
        return snapshot.services.get(service) if self.per_service else None

    def start(self) -> ExpositionServer:
        if self._server is not None:
            raise RuntimeError("the exposition server is already started")
        server = _Server((self.host, self._requested_port), self)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sim-exposition", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (no-op when not started)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> ExpositionServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
