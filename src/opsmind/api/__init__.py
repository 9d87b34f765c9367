"""HTTP API (FastAPI): the only layer that knows about HTTP."""
