"""The app factory: `uvicorn online.app:create_app --factory` or `recolake serve`.

The lifespan opens what every request shares and closes it on shutdown: the Redis client
(one cluster-aware ``connect_async`` with the API's timeouts and blocking pool), the Reader
over it, the event log and the impressions' group commit in front of it."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from online.metrics import MetricsMiddleware, process_exited, record_unavailable
from online.routers import catalog, events, health, items, recommendations, ui, users
from online.routers import rules as rules_router
from online.routers.metrics import router as metrics_router
from online.services import ServiceError, UnavailableError
from online.services import impressions as impression_log
from online.services.common import experiment_of
from online.services.rules import check_rules_file, seed_rules
from recolake import __version__
from recolake.eventlog import open_event_log
from recolake.onlinestore import KeyLayout, RedisTimeouts, connect_async
from recolake.onlinestore.reader import Reader
from recolake.settings import Settings, get_settings

log = logging.getLogger("recolake.api")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the documented ErrorResponse body: ``detail`` = [{loc, msg, type}]."""
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    if isinstance(exc, UnavailableError):  # the online store failed: /metrics counts it
        record_unavailable(exc)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


class UnavailableEventLog:
    """Stands in for an event log that could not be opened at start-up (say, an unwritable
    landing dir): reads keep serving, every append fails like a failed write (503, nothing
    stored), and the reason is in the log."""

    def __init__(self, error: OSError) -> None:
        self.error = error

    def append(self, events) -> None:
        raise OSError(f"event log could not be opened: {self.error}")

    def close(self) -> None:
        pass


def _open_event_log(settings: Settings):
    try:
        return open_event_log(settings)
    except OSError as exc:
        log.error("event log could not be opened, writes will answer 503: %s", exc)
        return UnavailableEventLog(exc)


def _without_null_query_params(schema: dict) -> dict:
    """A query parameter is absent or a string: never JSON null. FastAPI documents an
    optional ``str | None`` parameter as ``anyOf: [string, null]``, which tells clients (and
    fuzzers) that null is a value to send; document the type alone (optional = not required)."""
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", ()):
                inner = param.get("schema", {})
                variants = inner.get("anyOf")
                if param.get("in") != "query" or not variants:
                    continue
                kept = [v for v in variants if v.get("type") != "null"]
                if len(kept) == 1 and len(kept) < len(variants):
                    extra = {k: v for k, v in inner.items() if k != "anyOf"}
                    param["schema"] = {**kept[0], **extra}
    return schema


def _openapi(app: FastAPI):
    def build() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = _without_null_query_params(FastAPI.openapi(app))
        return app.openapi_schema

    return build


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.require_pseudonymisation_key()  # fail at start-up, not on the first request
    experiment_of(settings)  # the experiments file too (ExperimentConfigError says why)
    check_rules_file(settings)  # and the rules file (RulesError says why)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect_async(settings.redis_url, RedisTimeouts.for_api(settings))
        app.state.settings = settings
        app.state.reader = Reader(
            client, KeyLayout(settings.redis_namespace), cache_items=settings.online_cache_items
        )
        app.state.event_log = _open_event_log(settings)
        await seed_rules(app.state.reader, settings)  # the rules file, if Redis has none
        # Served lists -> the event log, group-committed (online/services/impressions.py).
        app.state.impressions = impression_log.ImpressionLog.from_settings(
            settings, app.state.event_log
        )
        await app.state.impressions.start()
        impression_log.install(settings, app.state.impressions)
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
            impression_log.uninstall(settings)
            await app.state.impressions.stop()  # pending impressions out before the log closes
            await client.aclose()
            app.state.event_log.close()
            process_exited()
            if settings.api_gc_gen0_threshold:  # leave the process as found (tests, reloads)
                gc.set_threshold(*thresholds)
                gc.unfreeze()

    app = FastAPI(
        title="recolake",
        version=__version__,
        description="Real-time recommendations for online shops.",
        lifespan=lifespan,
    )
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(MetricsMiddleware)  # per route template and status: /metrics
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(recommendations.router)
    app.include_router(items.router)
    app.include_router(catalog.router)
    app.include_router(events.router)
    app.include_router(users.router)
    app.include_router(users.profiles)
    app.include_router(rules_router.router)
    app.include_router(ui.router)  # the page (/ui) and the JSON it reads
    return app
