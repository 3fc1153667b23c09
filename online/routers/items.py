"""GET /v1/items/{item_id}/similar and /v1/items/{item_id}/bought-together: the published
neighbour lists of one item (no user needed: product pages, carts)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from redis.exceptions import RedisError

from online.blend import Filters, similar
from online.routers.recommendations import (
    MAX_ID_LENGTH,
    Category,
    Exclude,
    parse_exclude,
    unavailable,
)
from online.schemas import SimilarItemsResponse
from online.store import NothingPublishedError, RecommendationStore
from recolake.settings import Settings

router = APIRouter(prefix="/v1/items", tags=["items"])

ItemId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The shop's item id.")
]
K = Annotated[int, Query(ge=1, le=100, description="How many items to return.")]


async def neighbours_of(
    store: RecommendationStore,
    settings: Settings,
    item_id: str,
    kinds: dict[str, float],
    label: str,
    k: int,
    exclude: list[str] | None,
    category: str | None,
) -> Response:
    filters = Filters(parse_exclude(exclude), category, settings.max_per_category)
    try:
        pub = await store.publication()
        keys = [(kind, item_id) for kind in kinds]
        _, cached = await store.details(pub, (), keys)
        lists = {kind: cached[(kind, item_id)] for kind in kinds}
        items = [item_id] + [e[0] for lst in lists.values() for e in lst]
        catalog, _ = await store.details(pub, items, ())
    except (NothingPublishedError, RedisError, OSError) as exc:
        raise unavailable(exc) from exc
    if not any(lists.values()) and catalog.get(item_id) is None:
        raise HTTPException(404, detail=f"item {item_id!r} is not in the published catalog")
    ranked = similar(
        item_id,
        lists,
        weights=kinds,
        catalog=catalog,
        filters=filters,
        k=k,
    )
    body = {
        "item_id": item_id,
        "kind": label,
        "items": [
            {"item_id": r.item_id, "score": r.score, "source": r.source, "reason": r.reason}
            for r in ranked
        ],
        "publication": pub.version,
    }
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get("/{item_id}/similar", response_model=SimilarItemsResponse)
async def similar_items(
    item_id: ItemId,
    request: Request,
    k: K = 10,
    exclude: Exclude = None,
    category: Category = None,
) -> Response:
    """Content-similar and co-viewed items, merged (weights from settings)."""
    store, settings = request.app.state.store, request.app.state.settings
    kinds = {"content": settings.blend_weight_content, "co_view": settings.blend_weight_neighbours}
    return await neighbours_of(store, settings, item_id, kinds, "similar", k, exclude, category)


@router.get("/{item_id}/bought-together", response_model=SimilarItemsResponse)
async def bought_together(
    item_id: ItemId,
    request: Request,
    k: K = 10,
    exclude: Exclude = None,
    category: Category = None,
) -> Response:
    """Items bought in the same baskets/sessions as this one."""
    store, settings = request.app.state.store, request.app.state.settings
    kinds = {"bought_together": 1.0}
    return await neighbours_of(
        store, settings, item_id, kinds, "bought_together", k, exclude, category
    )
