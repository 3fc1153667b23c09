"""GET /v1/recommendations/{user_id}: the user's ALS list, or popular items as fallback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from redis.exceptions import RedisError

from online.deps import SettingsDep, StoreDep
from online.schemas import RecommendationsResponse, RecommendedItem
from online.store import NothingPublishedError
from recolake.privacy import pseudonymise

router = APIRouter(prefix="/v1", tags=["recommendations"])

UserId = Annotated[str, Path(min_length=1, max_length=256, description="The shop's user id.")]


@router.get("/recommendations/{user_id}", response_model=RecommendationsResponse)
async def recommendations(
    user_id: UserId,
    store: StoreDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, le=100, description="How many items to return.")] = 10,
) -> RecommendationsResponse:
    user_key = pseudonymise(user_id, settings.require_pseudonymisation_key())
    try:
        publication, personal, popular = await store.user_and_popular(user_key)
    except NothingPublishedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    except (RedisError, OSError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"recommendation store unavailable: {exc}"
        ) from exc

    items = [RecommendedItem(item_id=i, score=s, source="als") for i, s in (personal or [])[:k]]
    seen = {item.item_id for item in items}
    for item_id, score in popular:
        if len(items) >= k:
            break
        if item_id not in seen:
            items.append(RecommendedItem(item_id=item_id, score=score, source="popular"))
            seen.add(item_id)
    return RecommendationsResponse(
        user_id=user_id,
        items=items,
        model_version=publication.model_version,
        publication=publication.version,
    )
