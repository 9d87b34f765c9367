"""The operations dashboard: the static page at ``/`` and its assets under ``/ui/``, and the topology it
draws.

The page is built from ``web/`` by ``make web`` into ``opsmind/api/static/`` (git-ignored); without it
``/`` answers 503 naming ``make web``. The page holds no data: everything it shows comes from the API with
the user's token. ``GET /api/v1/topology`` is the service map: the configured dependency graph
(``incidents.topology``, caller -> callees) plus every service seen in the stored series or registered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from opsmind.api.deps import EngineDep
from opsmind.api.routers.services import open_incidents_by_service
from opsmind.engine import Engine

router = APIRouter()
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SERIES_SCAN_LIMIT = 1_000_000
NOT_BUILT = "the dashboard is not built: run `make web` (needs npm), then reload"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}


def static_dir() -> Path:
    return STATIC_DIR


def _file(name: str) -> Path:
    """The built file ``name`` inside the static folder; 503 when nothing is built, 404 when not there."""
    root = static_dir().resolve()
    if not (root / "index.html").is_file():
        raise HTTPException(503, NOT_BUILT)
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix not in MEDIA_TYPES:
        raise HTTPException(404, f"no dashboard asset {name!r}")
    return path


def _send(path: Path) -> FileResponse:
    # The page is small and changes with every build: let the browser revalidate instead of guessing.
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.api_route(
    "/", methods=["GET", "HEAD"], include_in_schema=False, responses={503: {"description": "not built"}}
)
async def index() -> FileResponse:
    return _send(_file("index.html"))


@router.api_route("/ui/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def asset(name: str) -> FileResponse:
    return _send(_file(name))


def _topology(engine: Engine) -> dict[str, Any]:
    topology = engine.topology
    seen = {
        info.series.service
        for info in engine.store.series(None, SERIES_SCAN_LIMIT)
        if info.series.service is not None
    }
    edges = sorted({(caller, callee) for caller, callees in topology.edges.items() for callee in callees})
    named = {s for edge in edges for s in edge} | set(open_incidents_by_service(engine))
    services = sorted(seen | set(engine.registry.registered()) | named)
    sources = sorted({src for a, b in edges for src in topology.source(a, b)})
    return {
        "services": services,
        "edges": [{"from": a, "to": b, "source": topology.source(a, b)} for a, b in edges],
        "source": " + ".join(sources) if sources else "none configured",
    }


@router.get("/api/v1/topology", tags=["services"])
async def topology(engine: EngineDep) -> dict[str, Any]:
    """The service map: every service seen in the stored series, registered, named in
    ``incidents.topology`` or filed under an open incident (an external alert's), and
    the calls between them (``from`` calls ``to``) that ``incidents.topology`` and the registered
    services' ``depends_on`` declare, each with its ``source``; no edges when none are declared."""
    return await asyncio.to_thread(_topology, engine)
