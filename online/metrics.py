"""The API's Prometheus metrics (GET /metrics, online/routers/metrics.py): every metric object
and the helpers that feed them, in one place.

- ``recolake_http_requests_total`` / ``recolake_http_request_duration_seconds``: per method,
  route *template* (``/v1/recommendations/{user_id}``, never the raw path: bounded
  cardinality, no user ids in labels; ``unmatched`` for 404s no route matched) and status;
  fed by :class:`MetricsMiddleware` (pure ASGI: no per-request task or body copy).
- ``recolake_recommended_items_total{source}``, ``recolake_recommendation_responses_total
  {variant}``, ``recolake_fallback_responses_total{reason}``: what the recommendation routes
  served, from their response documents (:func:`observe_recommendations`).
- ``recolake_redis_errors_total{kind}``: reads answered 503 because the online store failed
  (online/services/common.py ``guarded``; counted where the app turns them into answers).
- ``recolake_impressions_total{variant}``: impressions logged (:func:`record_impression`).
- ``recolake_streaming_*``: the streaming job's last micro-batch per query, read from Redis
  at scrape time (recolake.onlinestore.stream.StreamProgress) with a bounded timeout.

Several uvicorn workers (``recolake serve --workers N``): each process counts its own
requests, so a scrape would see one worker's at random. ``serve`` therefore turns on
prometheus-client's multiprocess mode first (online/metrics_dir.py: ``PROMETHEUS_MULTIPROC_DIR``):
every worker writes its values to files there and any worker's scrape sums them. That mode has
no ``process_*``/``python_*`` collectors.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from online.metrics_dir import MULTIPROC_ENV
from recolake.onlinestore.reader import NothingPublishedError, Reader
from recolake.onlinestore.stream import StreamProgress
from recolake.ranking import SOURCES

log = logging.getLogger("recolake.api")

#: The text format Prometheus scrapes (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
OTHER = "other"
NONE = "none"
#: Distinct variant label values kept per process; later ones are counted as ``other``.
MAX_VARIANTS = 32
MAX_VARIANT_LENGTH = 64
FALLBACK_REASONS = ("no_candidates", "few_candidates", "filtered", "popular_only")
NON_PERSONAL_SOURCES = frozenset({"trending", "popular"})
REDIS_ERROR_KINDS = ("timeout", "connection", "error", "unpublished", "malformed")

HTTP_REQUESTS = Counter(
    "recolake_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "recolake_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ITEMS_SERVED = Counter(
    "recolake_recommended_items",
    "Items in recommendation responses, by the source that contributed most to each.",
    ["source"],
)
RESPONSES = Counter(
    "recolake_recommendation_responses",
    "Recommendation responses served, by experiment variant ('none' without one).",
    ["variant"],
)
FALLBACKS = Counter(
    "recolake_fallback_responses",
    "Recommendation responses that fell back: short (fewer than k items; reason as in the "
    "response's `short`) or popular_only (every item from trending/popular).",
    ["reason"],
)
REDIS_ERRORS = Counter(
    "recolake_redis_errors",
    "Reads answered 503 because the online store failed: timeout, connection, error (other "
    "Redis errors), unpublished (nothing live), malformed (a document broke the contract).",
    ["kind"],
)
IMPRESSIONS = Counter(
    "recolake_impressions",
    "Impressions (one per recommendation list served) by experiment variant and outcome: "
    "stored (durable in the event log) or failed (lost to a failing log).",
    ["variant", "outcome"],
)

for _source in SOURCES:  # every series exists from the start (rates over 0, not absent)
    ITEMS_SERVED.labels(_source)
for _reason in FALLBACK_REASONS:
    FALLBACKS.labels(_reason)
for _kind in REDIS_ERROR_KINDS:
    REDIS_ERRORS.labels(_kind)

_SOURCES = frozenset(SOURCES)
_variants: set[str] = set()


def _variant(value: Any) -> str:
    """A bounded label value for a variant name (``none`` when absent)."""
    if value is None or value == "":
        return NONE
    if not isinstance(value, str) or len(value) > MAX_VARIANT_LENGTH:
        return OTHER
    if value not in _variants:
        if len(_variants) >= MAX_VARIANTS:
            return OTHER
        _variants.add(value)
    return value


# --- what the routes call ----------------------------------------------------------------


_labelled: dict[tuple[int, str], Any] = {}


def _child(metric: Counter, value: str) -> Any:
    """``metric.labels(value)``, looked up once per value (labels() takes a lock: ~1 us)."""
    key = (id(metric), value)
    child = _labelled.get(key)
    if child is None:
        child = _labelled[key] = metric.labels(value)
    return child


def observe_recommendations(body: Mapping[str, Any]) -> None:
    """Count one recommendation response document (online/services/recommend.py's
    ``document``): its items per source, its variant, and whether it fell back."""
    items = body.get("items") or ()
    by_source = Tally([item.get("source") for item in items])
    for source, n in by_source.items():
        _child(ITEMS_SERVED, source if source in _SOURCES else OTHER).inc(n)
    _child(RESPONSES, _variant(body.get("variant"))).inc()
    short = body.get("short")
    if short:
        reason = short.get("reason")
        _child(FALLBACKS, reason if reason in FALLBACK_REASONS else OTHER).inc()
    if items and by_source.keys() <= NON_PERSONAL_SOURCES:
        _child(FALLBACKS, "popular_only").inc()


def record_impression(variant: str | None, stored: bool = True) -> None:
    """Count one impression of ``variant`` (None: no experiment). For the impressions logger:
    once per impression, ``stored`` = durably appended (False: the log failed)."""
    IMPRESSIONS.labels(_variant(variant), "stored" if stored else "failed").inc()


def redis_error_kind(exc: BaseException | None) -> str:
    """The ``kind`` label of the online-store failure behind a 503 (guarded's ``__cause__``)."""
    if isinstance(exc, NothingPublishedError):
        return "unpublished"
    if isinstance(exc, (TimeoutError, RedisTimeoutError)):
        return "timeout"
    if isinstance(exc, (RedisConnectionError, OSError)):
        return "connection"
    if isinstance(exc, RedisError):
        return "error"
    if isinstance(exc, ValueError):
        return "malformed"
    return OTHER


def record_unavailable(exc: BaseException) -> None:
    """Count a 503 of online/services/common.py ``guarded`` (an ``UnavailableError``)."""
    REDIS_ERRORS.labels(redis_error_kind(exc.__cause__)).inc()


# --- requests ----------------------------------------------------------------------------

_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    pair = _children.get(key)
    if pair is None:  # labels() costs a lock and a dict look-up: done once per series
        labels = (method, route, str(status))
        pair = _children[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    pair[0].inc()
    pair[1].observe(seconds)


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (set by the router on the
    scope once it matched; ``unmatched`` otherwise). An exception that escapes the app counts
    as the 500 the server answers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else OTHER
            observe_request(method, route, status, time.perf_counter() - started)


# --- the streaming job's progress, at scrape time ----------------------------------------


class _Progress:
    """One scrape's view of the streaming job (recolake.onlinestore.stream.StreamProgress
    per query; None when Redis did not answer in time)."""

    def __init__(self, progress: Mapping[str, StreamProgress] | None) -> None:
        self.progress = progress

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "recolake_streaming_progress_up",
            "1 when this scrape read the streaming job's progress from Redis in time, else 0 "
            "(then the other recolake_streaming_* gauges are absent).",
        )
        up.add_metric([], 0.0 if self.progress is None else 1.0)
        yield up
        if self.progress is None:
            return
        families = {
            "duration": GaugeMetricFamily(
                "recolake_streaming_batch_duration_seconds",
                "Wall time of the query's last micro-batch.",
                labels=["query"],
            ),
            "ended": GaugeMetricFamily(
                "recolake_streaming_batch_end_timestamp_seconds",
                "When the query's last micro-batch ended (epoch seconds; alert on time() - it).",
                labels=["query"],
            ),
            "lag": GaugeMetricFamily(
                "recolake_streaming_input_lag_seconds",
                "From the newest event time of the last batch with events to that batch's end.",
                labels=["query"],
            ),
            "batch": GaugeMetricFamily(
                "recolake_streaming_batch_id",
                "Id of the query's last micro-batch (restarts at 0 with a new checkpoint).",
                labels=["query"],
            ),
            "rows": GaugeMetricFamily(
                "recolake_streaming_batch_rows",
                "Rows in the query's last micro-batch.",
                labels=["query"],
            ),
        }
        for query, p in sorted(self.progress.items()):
            families["duration"].add_metric([query], p.duration_seconds)
            families["ended"].add_metric([query], p.ended_at)
            families["batch"].add_metric([query], float(p.batch_id))
            families["rows"].add_metric([query], float(p.rows))
            if p.lag_seconds is not None:
                families["lag"].add_metric([query], p.lag_seconds)
        yield from families.values()


class _Process:
    """This process's registry (counters, histograms, process_* and python_* collectors)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


async def read_progress(reader: Reader, timeout: float) -> dict[str, StreamProgress] | None:
    """The streaming job's progress, or None when Redis did not answer within ``timeout``
    (a scrape never fails or waits on Redis longer than that)."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.stream_progress()
    except (TimeoutError, RedisError, OSError) as exc:
        log.warning("/metrics: streaming progress not read: %s: %s", type(exc).__name__, exc)
        return None


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


async def exposition(reader: Reader, timeout: float) -> bytes:
    """The body of GET /metrics: this process's (or, in multiprocess mode, every worker's)
    metrics, plus the streaming gauges read now."""
    progress = await read_progress(reader, timeout)
    registry = CollectorRegistry(auto_describe=False)
    if is_multiprocess():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Process())
    registry.register(_Progress(progress))
    return generate_latest(registry)


def process_exited() -> None:
    """At a worker's shutdown in multiprocess mode (prometheus-client's clean-up of its live
    gauges; counters and histograms stay summed in)."""
    if is_multiprocess():
        multiprocess.mark_process_dead(os.getpid())
