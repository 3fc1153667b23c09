"""``?fields=title,category,price`` on recommendation and item-page responses: each item
carries those catalog fields, so an app needs no second lookup.

Cheap by construction: the blend already read the catalog entry of every candidate, so the
Reader's per-version cache answers (no extra round trip unless an entry was evicted)."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, status

from online.services.common import guarded
from recolake.onlinestore.reader import Reader
from recolake.settings import Settings

#: The catalog fields a response can carry (recolake.ranking.ItemInfo: what is published,
#: or what PUT /v1/items put over it since; ``price`` is null when the catalog has none).
ITEM_FIELDS = ("title", "category", "available", "price")


def parse_fields(value: str | None) -> tuple[str, ...]:
    """``"title, category"`` -> ("title", "category"); an unknown name is a 422."""
    if not value:
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in ITEM_FIELDS]
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"unknown fields {unknown}: known {list(ITEM_FIELDS)}",
        )
    return names


async def add_fields(
    reader: Reader, settings: Settings, body: dict, fields: tuple[str, ...]
) -> dict:
    """Set ``fields`` on every item of ``body`` from the catalog of the publication it was
    served from (null for an item that publication does not know)."""
    if not fields or not body.get("items"):
        return body

    async def read():
        pub, _ = await reader.serving(body.get("publication"))
        known, _ = await reader.details(pub, [i["item_id"] for i in body["items"]], ())
        return known

    known = await guarded(read(), settings.api_redis_deadline_seconds)
    for item in body["items"]:
        info = known.get(item["item_id"])
        for name in fields:
            item[name] = getattr(info, name) if info is not None else None
    return body


_ONE = "(" + "|".join(ITEM_FIELDS) + ")"
_FIELDS_PATTERN = rf"^ *{_ONE} *(, *{_ONE} *)*$"

#: The query parameter (documented in OpenAPI on every route that takes it).
Fields = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=_FIELDS_PATTERN,
        description="Comma-separated catalog fields to add to every item, from the published "
        f"catalog: any of {', '.join(ITEM_FIELDS)} (e.g. `fields=title,category,price`); "
        "the live catalog's value when PUT /v1/items changed the item since the publication; "
        "null for an item the catalog has no value of.",
    ),
]
