"""GET /v1/recommendations/{user_id} and GET /v1/recommendations?session_id=: the blend.

Candidates come from the user's published ALS list, the neighbours (co_view,
bought_together, content) of the recent items the streaming job keeps per user/session,
trending and popular; see online/blend.py for the scoring. Two Redis round trips at most:
the lists, then neighbours + catalog entries not already cached by this process.

The hot path answers with pre-serialised JSON (the pydantic models document the shape in
OpenAPI; validating our own output per request would cost more than the blend itself).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from redis.exceptions import RedisError

from online.blend import (
    Filters,
    Inputs,
    Weights,
    anchors,
    blend,
    decode_category_affinity,
)
from online.schemas import RecommendationsResponse
from online.store import NothingPublishedError, RecommendationStore
from recolake.privacy import pseudonymise, session_subject
from recolake.redis_layout import NEIGHBOUR_KINDS
from recolake.settings import Settings

router = APIRouter(prefix="/v1", tags=["recommendations"])

MAX_ID_LENGTH = 256
MAX_EXCLUDE = 200

UserId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The shop's user id.")
]
K = Annotated[int, Query(ge=1, le=100, description="How many items to return.")]
SessionId = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Anonymous visitor's session id (its recent events drive the blend).",
    ),
]
Exclude = Annotated[
    list[str] | None,
    Query(description="Item ids never to return (repeat the parameter or comma-separate)."),
]
Category = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_ID_LENGTH, description="Only items of this category."),
]


def weights_of(settings: Settings) -> Weights:
    return Weights(
        als=settings.blend_weight_als,
        neighbours=settings.blend_weight_neighbours,
        content=settings.blend_weight_content,
        trending=settings.blend_weight_trending,
        popular=settings.blend_weight_popular,
        affinity=settings.blend_weight_affinity,
    )


def parse_exclude(values: list[str] | None) -> frozenset[str]:
    if not values:
        return frozenset()
    items = frozenset(v.strip() for value in values for v in value.split(",") if v.strip())
    if len(items) > MAX_EXCLUDE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"exclude lists at most {MAX_EXCLUDE} item ids, got {len(items)}",
        )
    return items


def unavailable(exc: Exception) -> HTTPException:
    if isinstance(exc, NothingPublishedError):
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc))
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"recommendation store unavailable: {exc}"
    )


async def recommend(
    store: RecommendationStore,
    settings: Settings,
    *,
    user_id: str | None,
    session_id: str | None,
    k: int,
    exclude: list[str] | None,
    category: str | None,
) -> Response:
    key = settings.require_pseudonymisation_key()
    user_key = pseudonymise(user_id, key) if user_id is not None else None
    subjects = [user_key] if user_key is not None else []
    if session_id is not None:
        subjects.append(session_subject(session_id, key))
    filters = Filters(parse_exclude(exclude), category, settings.max_per_category)
    per_source = max(settings.blend_candidates_per_source, k)
    try:
        snap = await store.snapshot(subjects, user_key)
        used = anchors(snap.recent, settings.blend_recent_anchors)
        als = (snap.als or [])[:per_source]
        trending = snap.trending[:per_source]
        popular = snap.popular[:per_source]
        nbr_keys = [(kind, a.item_id) for a in used for kind in NEIGHBOUR_KINDS]
        wanted = [a.item_id for a in used] + [i for lst in (als, trending, popular) for i, _ in lst]
        catalog, neighbours = await store.details(snap.publication, wanted, nbr_keys)
        nbr_items = [e[0] for key in nbr_keys for e in neighbours[key] if e[0] not in catalog]
        if nbr_items:  # third trip only for neighbour items this process has never seen
            catalog, _ = await store.details(snap.publication, nbr_items, ())
    except (NothingPublishedError, RedisError, OSError) as exc:
        raise unavailable(exc) from exc
    except ValueError as exc:  # a real-time document that breaks the contract
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=str(exc)) from exc

    affinity: dict[str, float] = {}
    for payload in snap.affinity_payloads:
        for cat, score in decode_category_affinity(payload).items():
            affinity[cat] = affinity.get(cat, 0.0) + score
    ranked = blend(
        Inputs(
            als=als,
            recent=snap.recent,
            neighbours=neighbours,
            trending=trending,
            popular=popular,
            category_affinity=affinity,
            catalog=catalog,
        ),
        weights=weights_of(settings),
        filters=filters,
        k=k,
        n_anchors=settings.blend_recent_anchors,
    )
    body = {
        "user_id": user_id,
        "session_id": session_id,
        "items": [
            {"item_id": r.item_id, "score": r.score, "source": r.source, "reason": r.reason}
            for r in ranked
        ],
        "recent": [a.item_id for a in used],
        "model_version": snap.publication.model_version,
        "publication": snap.publication.version,
    }
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get("/recommendations/{user_id}", response_model=RecommendationsResponse)
async def user_recommendations(
    user_id: UserId,
    request: Request,
    k: K = 10,
    session_id: SessionId = None,
    exclude: Exclude = None,
    category: Category = None,
) -> Response:
    """A known user's blend (published ALS list + their and, if given, the session's
    recent events + trending + popular)."""
    state = request.app.state  # not Depends(): sync dependencies cost a threadpool hop
    return await recommend(
        state.store,
        state.settings,
        user_id=user_id,
        session_id=session_id,
        k=k,
        exclude=exclude,
        category=category,
    )


@router.get("/recommendations", response_model=RecommendationsResponse)
async def visitor_recommendations(
    request: Request,
    session_id: SessionId = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)] = None,
    k: K = 10,
    exclude: Exclude = None,
    category: Category = None,
) -> Response:
    """An anonymous visitor's blend, by ``session_id`` (and optionally ``user_id``)."""
    if session_id is None and user_id is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="give session_id or user_id (or both)"
        )
    state = request.app.state  # not Depends(): sync dependencies cost a threadpool hop
    return await recommend(
        state.store,
        state.settings,
        user_id=user_id,
        session_id=session_id,
        k=k,
        exclude=exclude,
        category=category,
    )
