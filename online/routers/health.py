"""Liveness that means something: 200 only when Redis answers within a short deadline and a
publication is live."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status
from redis.exceptions import RedisError

from online.deps import ReaderDep, SettingsDep
from online.schemas import HealthResponse
from recolake.onlinestore.reader import NothingPublishedError

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthResponse,
    responses={
        503: {
            "model": HealthResponse,
            "description": "Redis did not answer within `api_health_timeout_seconds`, or "
            "nothing is published (after a Redis restart: run `recolake republish`).",
        }
    },
)
async def healthz(reader: ReaderDep, settings: SettingsDep, response: Response) -> HealthResponse:
    deadline = settings.api_health_timeout_seconds
    try:
        await reader.ping(deadline)
    except (TimeoutError, RedisError, OSError) as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        detail = f"redis did not answer within {deadline}s: {type(exc).__name__} {exc}".strip()
        return HealthResponse(status="unavailable", redis=False, detail=detail)
    try:
        reader.forget_publication()  # health reports what Redis holds now, not the cache
        publication = (await asyncio.wait_for(reader.publication(), deadline)).version
    except NothingPublishedError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthResponse(status="unavailable", redis=True, detail=str(exc))
    except (TimeoutError, RedisError, OSError) as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthResponse(status="unavailable", redis=False, detail=type(exc).__name__)
    return HealthResponse(status="ok", redis=True, publication=publication)
