"""What the Reader decodes from Redis into the ranker's plain values (``recolake.ranking``
owns ItemInfo and RecentEvent: it imports neither Redis nor pyspark, so the API and the
offline replay share them)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from recolake.onlinestore.codecs import decode_price
from recolake.ranking import ItemInfo, RecentEvent

__all__ = [
    "ItemInfo",
    "RecentEvent",
    "decode_category_affinity",
    "decode_item_info",
    "decode_recent",
    "merge_recent",
]


def decode_item_info(payload: str | None) -> ItemInfo | None:
    if not payload:
        return None
    doc = json.loads(payload)
    # A missing flag means available (the documented generic items CSV has no column for it);
    # a missing price is an entry published before prices were (or an item without one).
    return ItemInfo(
        doc.get("title"),
        doc.get("category"),
        bool(doc.get("available", True)),
        decode_price(doc.get("price")),
    )


def decode_recent(payload: str | None) -> list[RecentEvent]:
    """The streaming job's recent list (newest first); malformed entries are an error, not
    silently skipped, so a contract break between writer and reader shows up."""
    if not payload:
        return []
    doc = json.loads(payload)
    if not isinstance(doc, list):
        raise ValueError(f"malformed recent list: {type(doc).__name__}")
    events = []
    for entry in doc:
        if not isinstance(entry, dict) or not entry.get("item_id"):
            raise ValueError(f"malformed recent entry: {entry!r}")
        ts = entry.get("ts")
        events.append(
            RecentEvent(
                str(entry["item_id"]),
                str(entry.get("event_type") or "view"),
                float(ts) if isinstance(ts, int | float) else None,
            )
        )
    return events


def decode_category_affinity(payload: str | None) -> dict[str, float]:
    """The ``categories`` of an affinity document (KeyLayout.affinity)."""
    if not payload:
        return {}
    doc = json.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError(f"malformed affinity document: {type(doc).__name__}")
    return {str(k): float(v) for k, v in (doc.get("categories") or {}).items()}


def merge_recent(*lists: Sequence[RecentEvent]) -> list[RecentEvent]:
    """User and session recent lists as one, newest first (events without ts keep order)."""
    merged = [e for events in lists for e in events]
    if len(lists) > 1:
        merged.sort(key=lambda e: -(e.ts or 0.0))
    return merged
