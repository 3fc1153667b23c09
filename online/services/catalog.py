"""Catalog updates (PUT /v1/items[/{item_id}]): durable in the event log first, then applied
to the serving state.

Order matters: the item records are appended to the event log (fsynced file or Kafka ack:
recolake.eventlog) before anything is served, so an accepted update always reaches the lake
(streaming lake query -> bronze.items, source_format 'api' -> the nightly's silver and gold
catalog); then the live overlay (recolake.onlinestore.catalog) is written and its version
bumped, so every API process serves the update from its next request (an unavailable item is
filtered out of every source, a new title shows in reasons). A failure between the two is
retried by the client (a PUT is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from online.services import UnavailableError
from online.services.common import RETRY_AFTER_REDIS, guarded
from recolake.eventlog import EventLog, item_record
from recolake.onlinestore.catalog import CatalogEntry, write_entries
from recolake.onlinestore.reader import Reader
from recolake.settings import Settings
from recolake.validation import format_timestamp

log = logging.getLogger("recolake.catalog")


@dataclass(frozen=True)
class ItemUpdate:
    """One item's new catalog entry (the router validated sizes and types)."""

    item_id: str
    title: str
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    available: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)


async def update_items(
    reader: Reader, settings: Settings, event_log: EventLog, updates: Sequence[ItemUpdate]
) -> dict:
    """Apply ``updates`` (the last one wins for a repeated id); the response document."""
    now = format_timestamp(datetime.now(UTC))
    latest = {u.item_id: u for u in updates}  # a batch naming an item twice: the last wins
    entries = [
        CatalogEntry(
            item_id=u.item_id,
            title=u.title,
            category=u.category,
            brand=u.brand,
            price=u.price,
            available=u.available,
            attributes=dict(u.attributes),
            updated_at=now,
        )
        for u in latest.values()
    ]
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
    version = await guarded(
        write_entries(reader.client, reader.layout, entries), settings.api_redis_deadline_seconds
    )
    reader.observe_catalog(str(version))  # this process: from its next request, no wait
    return {
        "items": [
            {"item_id": e.item_id, "available": e.available, "updated_at": e.updated_at}
            for e in entries
        ],
        "catalog_version": version,
        "lake": "appended to the event log: the streaming job lands it in bronze.items "
        "(source_format 'api'); the next nightly's silver and gold catalog use it",
    }
