"""GET /metrics: Prometheus text format (online/metrics.py has every metric).

Open like /healthz, also when ``api_read_token`` is set: the read token guards /v1 reads
because recommendations expose a user's history, and nothing here names a user (route
templates, not paths; sources, variants, statuses). Keep it off the public internet like
/healthz (scraped from inside)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from online.deps import ReaderDep, SettingsDep
from online.metrics import CONTENT_TYPE, exposition

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4. Always 200: when Redis "
            "does not answer within `api_metrics_timeout_seconds`, "
            "`recolake_streaming_progress_up` is 0 and the other streaming gauges are absent.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(reader: ReaderDep, settings: SettingsDep) -> Response:
    """Request counts and latencies per route template and status, items served per source,
    fallbacks, online-store errors, impressions per variant, and the streaming job's last
    batch per query (duration, end time, input lag)."""
    body = await exposition(reader, settings.api_metrics_timeout_seconds)
    return Response(body, media_type=CONTENT_TYPE)
