"""HTTP API (FastAPI): the only layer that knows about HTTP."""

from opsmind.api import paths as paths  # registers the ``label`` path convertor before any route is built
