"""The FastAPI application: thin routers over one engine, errors as problem documents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from opsmind import __version__
from opsmind.api import auth, problems
from opsmind.api.head import HeadAsGet
from opsmind.api.routers import auth as auth_routes
from opsmind.api.routers import (
    feedback,
    health,
    health_scores,
    ingest,
    live,
    overrides,
    platform_events,
    prediction,
    records,
    remediation,
    scaling,
    series,
    services,
    silences,
    ui,
)
from opsmind.engine import Engine

Source = Callable[[asyncio.Event], Coroutine[None, None, None]]


def create_app(
    engine: Engine,
    manage_engine: bool = True,
    sources: Sequence[Source] = (),
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """Build the app around ``engine``; with ``manage_engine`` the app starts and stops it.

    ``sources`` are data sources run beside the engine for the app's lifetime (the demo fleet, for
    instance); each gets an event that is set when the app shuts down."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            await engine.start()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(src(stop)) for src in sources]
        try:
            yield
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if manage_engine:
                await engine.stop()

    app = FastAPI(
        title="OpsMind",
        version=__version__,
        lifespan=lifespan,
        description="AI operations engine: ingest, detect, group into incidents, notify.",
        # Access control for every route, present and future (docs/DASHBOARD.md, "Access control").
        dependencies=[Depends(auth.authorize)],
    )
    app.state.engine = engine
    problems.install(app)
    auth.install(app)
    app.add_middleware(HeadAsGet)
    for r in extra_routers:  # e.g. the demo's fault-injection route, which lives with the demo
        app.include_router(r)
    for r in (
        health.router,
        auth_routes.router,
        ingest.router,
        live.router,
        series.router,
        # Before the service routes: a service label may hold '/' (e.g. "shop/cart", matched by
        # {name:label}, opsmind.api.paths), so ".../<name>/health" must be tried as the health route first.
        health_scores.router,
        services.router,
        silences.router,
        records.router,
        feedback.router,
        platform_events.router,
        prediction.router,
        scaling.router,
        remediation.router,
        overrides.router,
        ui.router,
    ):
        app.include_router(r)
    return app
