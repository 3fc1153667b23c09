"""GET /v1/items/{item_id}/similar and /v1/items/{item_id}/bought-together: request parsing
and response only; the logic is online/services/items.py."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from online.deps import ReadAuth, ReaderDep, SettingsDep
from online.routers.params import (
    NOT_FOUND,
    READ_ERRORS,
    Category,
    Exclude,
    ItemId,
    K,
    SingleValued,
    parse_exclude,
)
from online.schemas import SimilarItemsResponse
from online.services.fields import Fields, add_fields, parse_fields
from online.services.items import neighbours_of

router = APIRouter(
    prefix="/v1/items",
    tags=["items"],
    dependencies=[ReadAuth, SingleValued],
    responses={**READ_ERRORS, **NOT_FOUND},
)


def _json(body: dict) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get("/{item_id}/similar", response_model=SimilarItemsResponse)
async def similar_items(
    item_id: ItemId,
    reader: ReaderDep,
    settings: SettingsDep,
    k: K = 10,
    exclude: Exclude = None,
    category: Category = None,
    fields: Fields = None,
) -> Response:
    """Content-similar and co-viewed items, merged (weights from settings)."""
    wanted = parse_fields(fields)  # a 422 before anything is served
    body = await neighbours_of(
        reader, settings, item_id, "similar", k, parse_exclude(exclude), category
    )
    return _json(await add_fields(reader, settings, body, wanted))


@router.get("/{item_id}/bought-together", response_model=SimilarItemsResponse)
async def bought_together(
    item_id: ItemId,
    reader: ReaderDep,
    settings: SettingsDep,
    k: K = 10,
    exclude: Exclude = None,
    category: Category = None,
    fields: Fields = None,
) -> Response:
    """Items bought in the same baskets/sessions as this one."""
    wanted = parse_fields(fields)  # a 422 before anything is served
    body = await neighbours_of(
        reader, settings, item_id, "bought_together", k, parse_exclude(exclude), category
    )
    return _json(await add_fields(reader, settings, body, wanted))
