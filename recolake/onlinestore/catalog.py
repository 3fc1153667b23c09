"""The live catalog overlay: item updates from PUT /v1/items applied over the published
catalog at once, until the nightly that includes them is published.

Layout (keys.KeyLayout): ``catalog:items:<bucket>`` hashes (item_id -> encoded entry, the
whole entry: a PUT replaces an item's entry, as silver's latest row replaces the item) and
one ``catalog:version`` counter, INCRed after the entries are written.

The hot path pays no extra round trip for it: the Reader reads the counter inside the
snapshot's pipeline (one more GET in a trip it makes anyway), drops its cached catalog entries
when the counter moved, and looks an entry up in the overlay next to the published one in the
same pipelined HGETs (only for items it has not cached). An update is therefore served from
the request after the INCR, by every API process.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from recolake.onlinestore.keys import KeyLayout
from recolake.ranking import ItemInfo

#: Hashes the overlay is spread over (fixed: readers and writers must agree on it).
OVERLAY_BUCKETS = 16


def overlay_bucket(item_id: str) -> int:
    return zlib.crc32(item_id.encode("utf-8")) % OVERLAY_BUCKETS


@dataclass(frozen=True)
class CatalogEntry:
    """One item as PUT /v1/items sent it (validated by the API's schema)."""

    item_id: str
    title: str
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    available: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)
    updated_at: str = ""  # ISO-8601 UTC, the API's clock

    def encode(self) -> str:
        doc = asdict(self)
        del doc["item_id"]  # the hash field
        doc["attributes"] = dict(self.attributes)
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, item_id: str, payload: str | bytes | None) -> CatalogEntry | None:
        if not payload:
            return None
        doc = json.loads(payload)
        if not isinstance(doc, dict) or not doc.get("title"):
            raise ValueError(f"malformed catalog overlay entry for {item_id!r}")
        return cls(
            item_id=item_id,
            title=str(doc["title"]),
            category=doc.get("category"),
            brand=doc.get("brand"),
            price=doc.get("price"),
            available=bool(doc.get("available", True)),
            attributes={str(k): str(v) for k, v in (doc.get("attributes") or {}).items()},
            updated_at=str(doc.get("updated_at") or ""),
        )

    def info(self) -> ItemInfo:
        """What the ranker reads of it (titles in reasons, category, availability)."""
        return ItemInfo(self.title, self.category, self.available)


def merged_info(published: ItemInfo | None, overlay: str | bytes | None, item_id: str):
    """The entry the API serves: the overlay's when there is one (it is newer than any
    publication still live), else the published one."""
    entry = CatalogEntry.decode(item_id, overlay)
    return entry.info() if entry is not None else published


async def write_entries(client, layout: KeyLayout, entries: Sequence[CatalogEntry]) -> int:
    """Write the entries, then bump the version (only once every HSET is acknowledged, so a
    reader that sees the new version reads the new entries); returns the new version."""
    by_bucket: dict[int, dict[str, str]] = {}
    for entry in entries:
        by_bucket.setdefault(overlay_bucket(entry.item_id), {})[entry.item_id] = entry.encode()
    async with client.pipeline(transaction=False) as pipe:
        for bucket, mapping in by_bucket.items():
            pipe.hset(layout.catalog_items(bucket), mapping=mapping)
        await pipe.execute()
    return int(await client.incr(layout.catalog_version))


async def read_entries(client, layout: KeyLayout, item_ids: Sequence[str]):
    """item_id -> CatalogEntry (None when the overlay has none): for tests and operators."""
    async with client.pipeline(transaction=False) as pipe:
        for item in item_ids:
            pipe.hget(layout.catalog_items(overlay_bucket(item)), item)
        replies = await pipe.execute()
    return {i: CatalogEntry.decode(i, p) for i, p in zip(item_ids, replies, strict=True)}
