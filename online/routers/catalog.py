"""PUT /v1/items/{item_id} and PUT /v1/items (a batch): the live catalog, with the write
token. Parsing and documentation only; online/services/catalog.py applies the updates."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints, field_validator

from online.deps import EventLogDep, ReaderDep, SettingsDep, WriteAuth
from online.routers.params import READ_ERRORS, ItemId
from online.schemas import ErrorResponse
from online.services.catalog import update_items
from recolake.onlinestore.catalog import CatalogEntry
from recolake.validation import ID_PATTERN, MAX_ID_LENGTH, MAX_PRICE

#: Bounds of one item's entry (it is cached per API process and copied to the lake).
MAX_TEXT = 512
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 256


AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ATTRIBUTE_KEY)]
AttributeValue = Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_VALUE, strict=True)]


class ItemIn(BaseModel):
    """An item's whole catalog entry: a PUT replaces what the item had (as the nightly's
    silver takes the latest row per item)."""

    model_config = {"extra": "forbid"}

    # ID_PATTERN: at least one non-whitespace character (the schema says what is checked)
    title: str = Field(min_length=1, max_length=MAX_TEXT, pattern=ID_PATTERN, strict=True)
    category: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, strict=True
    )
    brand: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEXT, pattern=ID_PATTERN, strict=True
    )
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False, strict=True)
    available: bool = Field(default=True, strict=True)
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description=f"Extra string attributes (at most {MAX_ATTRIBUTES}; keys up to "
        f"{MAX_ATTRIBUTE_KEY}, values up to {MAX_ATTRIBUTE_VALUE} characters).",
    )

    @field_validator("title", "category", "brand")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None


class ItemInBatch(ItemIn):
    item_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, strict=True)


class UpdatedItem(BaseModel):
    item_id: str
    available: bool
    updated_at: str = Field(description="When the API applied it (ISO-8601 UTC).")
    content_neighbours: int = Field(
        description="Content neighbours scored for it against the live publication's content "
        "terms (served while the publication has none for the item; 0 when it carries no terms)."
    )


class CatalogUpdateResponse(BaseModel):
    items: list[UpdatedItem]
    catalog_version: int = Field(description="The live overlay's version after this update.")
    lake: str = Field(description="How the update reaches the lake.")


router = APIRouter(prefix="/v1/items", tags=["catalog"], dependencies=[WriteAuth])

_ERRORS = {
    400: {"model": ErrorResponse, "description": "The body or the path is not valid UTF-8 JSON."},
    **READ_ERRORS,
    401: {**READ_ERRORS[401], "description": "No bearer token was sent."},
    403: {**READ_ERRORS[403], "description": "Wrong token, or writes are disabled."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid body (sizes, types, blank text, too many items).",
    },
    503: {
        **READ_ERRORS[503],
        "description": "The event log or Redis did not take the update: nothing or not all "
        "of it is applied; retry (a PUT is idempotent).",
    },
}


def _update(item_id: str, item: ItemIn) -> CatalogEntry:
    return CatalogEntry(
        item_id=item_id,
        title=item.title,
        category=item.category,
        brand=item.brand,
        price=item.price,
        available=item.available,
        attributes=item.attributes,
    )


@router.put(
    "/{item_id}",
    response_model=CatalogUpdateResponse,
    responses={
        **_ERRORS,
        404: {
            "model": ErrorResponse,
            "description": "No such route: an id no path segment can carry (a '/', a line "
            "break, even percent-encoded) is never matched; send it with PUT /v1/items.",
        },
    },
    summary="Create or replace one item's catalog entry",
)
async def put_item(
    item_id: ItemId,
    item: ItemIn,
    reader: ReaderDep,
    settings: SettingsDep,
    event_log: EventLogDep,
) -> dict:
    """Needs the write token. Served from the next request (an unavailable item leaves every
    list, a new title shows in reasons); 200 once the update is durable in the event log,
    which takes it to bronze.items for the nightly."""
    return await update_items(reader, settings, event_log, [_update(item_id, item)])


@router.put(
    "",
    response_model=CatalogUpdateResponse,
    responses=_ERRORS,
    summary="Create or replace several items' catalog entries",
)
async def put_items(
    items: Annotated[list[ItemInBatch], Body(min_length=1)],
    reader: ReaderDep,
    settings: SettingsDep,
    event_log: EventLogDep,
) -> dict:
    """Needs the write token. A JSON list of items (each with its ``item_id``), at most
    ``settings.events_max_batch``; all or nothing: one invalid item rejects the request."""
    if len(items) > settings.events_max_batch:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"at most {settings.events_max_batch} items per request, got {len(items)}",
        )
    updates = [_update(i.item_id, i) for i in items]
    return await update_items(reader, settings, event_log, updates)
