"""Catalog updates (PUT /v1/items[/{item_id}]): durable in the event log first, then applied
to the serving state.

Order matters: the item records are appended to the event log (fsynced file or Kafka ack:
recolake.eventlog) before anything is served, so an accepted update always reaches the lake
(streaming lake query -> bronze.items, source_format 'api' -> the nightly's silver and gold
catalog); then the item's content neighbours are scored against the live publication's
content terms (recolake.onlinestore.catalog.content_neighbours: "similar items" and cold
start work for a new item before the next nightly), the live overlay is written and its
version bumped, so every API process serves the update from its next request (an unavailable item is
filtered out of every source, a new title shows in reasons). A failure between the two is
retried by the client (a PUT is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from online.services import UnavailableError
from online.services.common import RETRY_AFTER_REDIS, guarded
from recolake.eventlog import EventLog, item_record
from recolake.onlinestore.catalog import (
    CatalogEntry,
    content_neighbours,
    write_entries,
    write_neighbours,
)
from recolake.onlinestore.reader import NothingPublishedError, Reader
from recolake.settings import Settings
from recolake.validation import format_timestamp

log = logging.getLogger("recolake.catalog")


async def update_items(
    reader: Reader, settings: Settings, event_log: EventLog, updates: Sequence[CatalogEntry]
) -> dict:
    """Apply ``updates`` (the router validated sizes and types; the last one wins for a
    repeated id), stamped with this process's clock; the response document."""
    now = format_timestamp(datetime.now(UTC))
    latest = {u.item_id: u for u in updates}  # a batch naming an item twice: the last wins
    entries = [replace(u, attributes=dict(u.attributes), updated_at=now) for u in latest.values()]
    records = [
        item_record(
            e.item_id,
            title=e.title,
            category=e.category,
            brand=e.brand,
            price=e.price,
            available=e.available,
            attributes=dict(e.attributes),
            timestamp=now,
        )
        for e in entries
    ]
    try:
        await asyncio.to_thread(event_log.append, records)
    except OSError as exc:
        log.error("catalog update not stored in the event log: %s", exc)
        raise UnavailableError(
            f"event log unavailable, the update was not applied: {exc}", RETRY_AFTER_REDIS
        ) from exc
    lists, version = await guarded(
        _apply(reader, settings, entries), settings.api_redis_deadline_seconds
    )
    reader.observe_catalog(str(version))  # this process: from its next request, no wait
    return {
        "items": [
            {
                "item_id": e.item_id,
                "available": e.available,
                "updated_at": e.updated_at,
                "content_neighbours": len(lists.get(e.item_id, ())),
            }
            for e in entries
        ],
        "catalog_version": version,
        "lake": "appended to the event log: the streaming job lands it in bronze.items "
        "(source_format 'api'); the next nightly's silver and gold catalog use it",
    }


async def _apply(reader: Reader, settings: Settings, entries: list[CatalogEntry]):
    """Live content neighbours (scored against the live publication's content terms), then
    the entries, then the version bump: a reader that sees the new version sees both."""
    try:
        pub = await reader.publication()
    except NothingPublishedError:  # the overlay still applies; no terms to score against
        lists: dict[str, list[tuple[str, float]]] = {}
    else:
        lists = await content_neighbours(
            reader.client,
            reader.layout,
            pub.version,
            pub.buckets,
            entries,
            top_n=settings.neighbours_top_n,
        )
    await write_neighbours(reader.client, reader.layout, {i: n for i, n in lists.items() if n})
    version = await write_entries(reader.client, reader.layout, entries)
    return lists, version
