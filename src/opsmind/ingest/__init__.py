"""Getting samples in: every path validates the whole input and raises :class:`IngestError` on the
first problem, so nothing from a bad request is stored.

* :mod:`opsmind.ingest.remote_write`: Prometheus remote-write 1.0 (``decode_remote_write``).
* :mod:`opsmind.ingest.push`: the JSON push API (``decode_push``).
* :mod:`opsmind.ingest.scrape`: Prometheus/OpenMetrics expositions and the ``Scraper``.
* :mod:`opsmind.ingest.replay`: CSV and NDJSON file replay.

The submodules are not imported here, so importing the error type does not load protobuf, numpy or httpx.
"""

from opsmind.ingest.errors import IngestError

__all__ = ["IngestError"]
