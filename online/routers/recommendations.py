"""GET /v1/recommendations/{user_id} and GET /v1/recommendations?session_id=: request parsing
and response only; the blend is online/services/recommend.py.

The hot path answers with pre-serialised JSON (the pydantic models document the shape in
OpenAPI; validating our own output per request would cost more than the blend itself).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from online.deps import ReadAuth, ReaderDep, SettingsDep
from online.metrics import observe_recommendations
from online.routers.params import (
    MAX_ID_LENGTH,
    READ_ERRORS,
    Category,
    Exclude,
    ExcludePurchased,
    ExcludeRecent,
    K,
    SingleValued,
    parse_exclude,
)
from online.schemas import RecommendationsResponse
from online.services.fields import Fields, add_fields, parse_fields
from online.services.recommend import RecommendQuery, recommend
from recolake.onlinestore.reader import Reader
from recolake.settings import Settings

router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    dependencies=[ReadAuth, SingleValued],
    responses=READ_ERRORS,
)

UserId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The shop's user id.")
]
SessionId = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Anonymous visitor's session id (its recent events drive the blend).",
    ),
]
OptionalUserId = Annotated[
    str | None, Query(min_length=1, max_length=MAX_ID_LENGTH, description="The shop's user id.")
]


def _json(body: dict) -> Response:
    observe_recommendations(body)  # items per source, variant, fallbacks: /metrics
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


async def _serve(
    reader: Reader, settings: Settings, query: RecommendQuery, fields: str | None
) -> Response:
    """What both routes do: the blend, then the requested item fields."""
    wanted = parse_fields(fields)  # a 422 before anything is served
    body = await recommend(reader, settings, query)
    return _json(await add_fields(reader, settings, body, wanted))


@router.get("/recommendations/{user_id}", response_model=RecommendationsResponse)
async def user_recommendations(
    user_id: UserId,
    reader: ReaderDep,
    settings: SettingsDep,
    k: K = 10,
    session_id: SessionId = None,
    exclude: Exclude = None,
    category: Category = None,
    fields: Fields = None,
    exclude_purchased: ExcludePurchased = None,
    exclude_recent: ExcludeRecent = False,
) -> Response:
    """A known user's blend (published ALS list + their and, if given, the session's
    recent events + trending + popular)."""
    return await _serve(
        reader,
        settings,
        RecommendQuery(
            user_id,
            session_id,
            k,
            parse_exclude(exclude),
            category,
            exclude_purchased,
            exclude_recent,
        ),
        fields,
    )


@router.get("/recommendations", response_model=RecommendationsResponse)
async def visitor_recommendations(
    reader: ReaderDep,
    settings: SettingsDep,
    session_id: SessionId = None,
    user_id: OptionalUserId = None,
    k: K = 10,
    exclude: Exclude = None,
    category: Category = None,
    fields: Fields = None,
    exclude_purchased: ExcludePurchased = None,
    exclude_recent: ExcludeRecent = False,
) -> Response:
    """An anonymous visitor's blend, by ``session_id`` (and optionally ``user_id``). With
    neither, the cold-start list every new visitor gets (trending, then popular)."""
    return await _serve(
        reader,
        settings,
        RecommendQuery(
            user_id,
            session_id,
            k,
            parse_exclude(exclude),
            category,
            exclude_purchased,
            exclude_recent,
        ),
        fields,
    )
