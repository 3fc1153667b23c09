"""Similar and bought-together items of one item: the published neighbour lists, merged and
filtered (no user needed: product pages, carts)."""

from __future__ import annotations

import uuid

from online.services import NotFoundError
from online.services.common import filters_of, guarded
from online.services.rules import active_rules
from recolake.experiments import DEFAULT_VARIANT
from recolake.onlinestore.reader import Reader
from recolake.ranking import similar
from recolake.settings import Settings


def kinds_of(settings: Settings, label: str) -> dict[str, float]:
    if label == "similar":
        return {
            "content": settings.blend_weight_content,
            "co_view": settings.blend_weight_neighbours,
        }
    return {"bought_together": 1.0}


async def _read(reader: Reader, item_id: str, kinds: dict[str, float]):
    pub = await reader.publication()
    await reader.refresh_catalog()  # live catalog updates (PUT /v1/items) from this request
    keys = [(kind, item_id) for kind in kinds]
    _, cached = await reader.details(pub, (), keys)
    lists = {kind: cached[(kind, item_id)] for kind in kinds}
    items = [item_id] + [e[0] for lst in lists.values() for e in lst]
    catalog, _ = await reader.details(pub, items, ())
    return pub, lists, catalog


async def neighbours_of(
    reader: Reader,
    settings: Settings,
    item_id: str,
    label: str,
    k: int,
    exclude: frozenset[str],
    category: str | None,
) -> dict:
    """The response document of GET /v1/items/{item_id}/{similar,bought-together}; 404 for
    an item the live publication does not know."""
    kinds = kinds_of(settings, label)
    pub, lists, catalog = await guarded(
        _read(reader, item_id, kinds), settings.api_redis_deadline_seconds
    )
    if not any(lists.values()) and catalog.get(item_id) is None:
        raise NotFoundError(f"item {item_id!r} is not in the published catalog")
    rules = await active_rules(reader, settings, label)  # cached ~1 s
    if rules is not None and rules.pins:  # pinned items' catalog entries (filters need them)
        catalog, _ = await guarded(
            reader.details(pub, [i for _, i in rules.pins], ()),
            settings.api_redis_deadline_seconds,
        )
    ranked = similar(
        item_id,
        lists,
        weights=kinds,
        catalog=catalog,
        filters=filters_of(settings, exclude, category),
        k=k,
        rules=rules,
    )
    body = {
        "recommendation_id": uuid.uuid4().hex,
        "experiment": None,  # item pages are not part of an experiment
        "variant": DEFAULT_VARIANT,
        "item_id": item_id,
        "kind": label,
        "items": [
            {"item_id": r.item_id, "score": r.score, "source": r.source, "reason": r.reason}
            for r in ranked
        ],
        "publication": pub.version,
    }
    short = ranked.short(k)
    if short is not None:
        body["short"] = short
    return body
