"""Liveness that means something: 200 only when Redis answers."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from redis.exceptions import RedisError

from online.deps import StoreDep
from online.schemas import HealthResponse
from online.store import NothingPublishedError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz(store: StoreDep, response: Response) -> HealthResponse:
    try:
        await store.ping()
    except (RedisError, OSError) as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthResponse(status="unavailable", redis=False, detail=str(exc))
    try:
        publication = (await store.publication()).version
    except NothingPublishedError:
        publication = None
    return HealthResponse(status="ok", redis=True, publication=publication)
