"""The app factory: `uvicorn online.app:create_app --factory` or `recolake serve`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from online.routers import events, health, items, recommendations
from online.store import RecommendationStore, connect
from recolake import __version__
from recolake.redis_layout import RedisLayout
from recolake.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.require_pseudonymisation_key()  # fail at start-up, not on the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.redis_url)
        app.state.settings = settings
        app.state.store = RecommendationStore(
            client, RedisLayout(settings.redis_namespace), cache_items=settings.online_cache_items
        )
        thresholds = gc.get_threshold()
        if settings.api_gc_gen0_threshold:
            # Requests make short-lived garbage freed by refcounting; the cyclic GC's full
            # passes over the whole (framework) heap were the p99 spikes: freeze what start-up
            # built and collect less often.
            gc.collect()
            gc.freeze()
            gc.set_threshold(settings.api_gc_gen0_threshold, *thresholds[1:])
        try:
            yield
        finally:
            await client.aclose()
            event_log = getattr(app.state, "event_log", None)  # opened by the first POST
            if event_log is not None:
                event_log.close()
            if settings.api_gc_gen0_threshold:  # leave the process as found (tests, reloads)
                gc.set_threshold(*thresholds)
                gc.unfreeze()

    app = FastAPI(
        title="recolake",
        version=__version__,
        description="Real-time recommendations for online shops.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(recommendations.router)
    app.include_router(items.router)
    app.include_router(events.router)
    return app
