"""Transforms of the streaming job (pipelines/streaming.py), kept pure so they are tested on
tiny inputs: Spark ones (event log rows -> bronze -> validated -> per-subject events) and the
Python ones that merge one micro-batch into the Redis documents of
recolake.redis_layout (recent, affinity, trending).

Merging is a pure function of (previous document, batch events, as_of): the job computes every
new document first, then writes them all, with the batch marker, in one Redis transaction, so
a replayed batch either finds its marker (and writes nothing) or starts from the same state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import columns as c
from features.transforms import (
    SilverSplit,
    annotate_events,
    pseudonymise_column,
    validate_events,
    weight_column,
)

#: The fields of an event in the event log (recolake.eventlog), all strings.
EVENT_LOG_FIELDS = (c.EVENT_ID, *c.RAW_EVENT_FIELDS)
EVENT_LOG_SCHEMA = T.StructType([T.StructField(f, T.StringType(), True) for f in EVENT_LOG_FIELDS])

SUBJECT = "subject"
TS = "ts"
WEIGHT = "weight"
#: source_format of events that came through POST /v1/events.
API_FORMAT = "api"
_ANONYMOUS = "api_anonymous"  # only inside annotate_api_events


# --------------------------------------------------------------------------- Spark side


def api_events_to_bronze(
    raw: DataFrame, ingest_ds: date | Column, source_file: Column
) -> DataFrame:
    """Event log rows to the bronze schema (strings as received), source_format 'api'."""
    present = set(raw.columns)
    fields = [
        (F.col(f).cast("string") if f in present else F.lit(None).cast("string")).alias(f)
        for f in EVENT_LOG_FIELDS
    ]
    return raw.select(
        *fields,
        F.lit(API_FORMAT).alias(c.SOURCE_FORMAT),
        source_file.cast("string").alias(c.SOURCE_FILE),
        F.current_timestamp().alias(c.INGESTED_AT),
        F.lit(ingest_ds).alias(c.INGEST_DS),  # a Column passes through lit as is
    )


def annotate_api_events(
    bronze: DataFrame,
    *,
    event_types: Mapping[str, float],
    key: bytes,
    latest_allowed: datetime | Column,
) -> DataFrame:
    """features.transforms.annotate_events, except that an anonymous event (session_id, no
    user_id) is valid: silver has no use for it, the real-time features do. Its user_key is
    null. Row by row, so it runs on the stream itself."""
    anonymous = F.col(c.USER_ID).isNull() & F.col(c.SESSION_ID).isNotNull()
    marked = bronze.withColumns(
        {
            c.SOURCE_FORMAT: F.when(anonymous, F.lit(_ANONYMOUS)).otherwise(F.col(c.SOURCE_FORMAT)),
            c.USER_ID: F.when(anonymous, F.lit("anonymous")).otherwise(F.col(c.USER_ID)),
        }
    )
    annotated = annotate_events(
        marked, event_types=event_types, key=key, latest_allowed=latest_allowed
    )
    was_anonymous = F.col(c.SOURCE_FORMAT) == _ANONYMOUS
    return annotated.withColumns(
        {
            c.USER_KEY: F.when(was_anonymous, F.lit(None)).otherwise(F.col(c.USER_KEY)),
            c.SOURCE_FORMAT: F.when(was_anonymous, F.lit(API_FORMAT)).otherwise(
                F.col(c.SOURCE_FORMAT)
            ),
        }
    )


def validate_api_events(
    bronze: DataFrame,
    *,
    event_types: Mapping[str, float],
    key: bytes,
    latest_allowed: datetime | Column,
) -> SilverSplit:
    """features.transforms.validate_events with annotate_api_events' anonymous events."""
    return validate_events(
        bronze,
        event_types=event_types,
        key=key,
        latest_allowed=latest_allowed,
        annotate=annotate_api_events,
    )


def realtime_events(valid: DataFrame, *, key: bytes, weights: Mapping[str, float]) -> DataFrame:
    """Valid events -> one row per (subject, event): the user's key, and the session's
    subject (recolake.privacy.session_subject) when a session id is present; with item, type,
    the type's weight and the event time in epoch seconds. Row by row, so it runs on the
    stream itself; the job adds the item's category and drops repeated event ids in Python,
    where it merges the rows into the Redis documents anyway."""
    session = pseudonymise_column(F.concat(F.lit("session:"), F.col(c.SESSION_ID)), key)
    subjects = F.array_compact(
        F.array(F.col(c.USER_KEY), F.when(F.col(c.SESSION_ID).isNotNull(), session))
    )
    return valid.select(
        F.explode(subjects).alias(SUBJECT),
        c.EVENT_ID,
        c.ITEM_ID,
        c.EVENT_TYPE,
        F.unix_micros(c.EVENT_TIME).cast("double").__truediv__(1e6).alias(TS),
        weight_column(weights).cast("double").alias(WEIGHT),
    )


# --------------------------------------------------------------------------- Python side


@dataclass(frozen=True)
class Event:
    """One event of one subject, as the merge functions see it."""

    event_id: str
    item_id: str
    event_type: str
    ts: float
    category: str | None
    weight: float


def _decay(age_seconds: float, half_life_seconds: float) -> float:
    return math.pow(2.0, -max(age_seconds, 0.0) / half_life_seconds)


def merge_recent(
    previous: Sequence[Mapping[str, Any]], events: Iterable[Event], n: int
) -> list[dict[str, Any]]:
    """The last ``n`` events, newest first; an event id already in the list is not added
    again (client retries, replays)."""
    seen = {e.get("event_id") for e in previous if e.get("event_id")}
    merged = [dict(e) for e in previous]
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        merged.append(
            {
                "item_id": event.item_id,
                "event_type": event.event_type,
                "ts": event.ts,
                "event_id": event.event_id,
            }
        )
    merged.sort(key=lambda e: (-(e.get("ts") or 0.0), str(e.get("event_id", ""))))
    return merged[:n]


def _top(scores: Mapping[str, float], n: int) -> dict[str, float]:
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {k: round(v, 6) for k, v in ranked if v > 1e-9}


def merge_affinity(
    previous: Mapping[str, Any] | None,
    events: Iterable[Event],
    *,
    as_of: float,
    half_life_seconds: float,
    session_gap_seconds: float,
    max_items: int = 100,
    max_categories: int = 50,
) -> dict[str, Any]:
    """Recency-decayed item and category affinity as of ``as_of`` (epoch seconds), plus the
    category counts of the current session window: a session ends after
    ``session_gap_seconds`` without events (gap-based session window on event time).

    Document: {"items", "categories", "session_categories", "as_of", "last_ts"}.
    """
    previous = previous or {}
    old_as_of = float(previous.get("as_of", as_of))
    as_of = max(as_of, old_as_of)
    carry = _decay(as_of - old_as_of, half_life_seconds)
    items = {k: v * carry for k, v in (previous.get("items") or {}).items()}
    categories = {k: v * carry for k, v in (previous.get("categories") or {}).items()}
    session = dict(previous.get("session_categories") or {})
    last_ts = previous.get("last_ts")
    for event in sorted(events, key=lambda e: (e.ts, e.event_id)):
        score = event.weight * _decay(as_of - event.ts, half_life_seconds)
        items[event.item_id] = items.get(event.item_id, 0.0) + score
        if last_ts is not None and event.ts - last_ts > session_gap_seconds:
            session = {}
        last_ts = event.ts if last_ts is None else max(last_ts, event.ts)
        if event.category:
            categories[event.category] = categories.get(event.category, 0.0) + score
            session[event.category] = session.get(event.category, 0) + 1
    return {
        "items": _top(items, max_items),
        "categories": _top(categories, max_categories),
        "session_categories": session,
        "as_of": as_of,
        "last_ts": last_ts,
    }


def merge_trending(
    previous: Mapping[str, Any] | None,
    events: Iterable[Event],
    *,
    now: float,
    window_seconds: float,
    bucket_seconds: float = 60.0,
) -> dict[str, Any]:
    """Sliding-window state of trending items: summed event weight per item per time bucket
    (event time), buckets older than the window dropped. {"buckets": {start: {item: w}}}."""
    horizon = now - window_seconds
    buckets: dict[str, dict[str, float]] = {
        b: dict(items)
        for b, items in ((previous or {}).get("buckets") or {}).items()
        if float(b) + bucket_seconds > horizon
    }
    for event in events:
        if event.ts <= horizon or event.ts > now + window_seconds:
            continue
        start = str(int(event.ts // bucket_seconds * bucket_seconds))
        bucket = buckets.setdefault(start, {})
        bucket[event.item_id] = bucket.get(event.item_id, 0.0) + max(event.weight, 0.0)
    return {"buckets": buckets}


def trending_list(state: Mapping[str, Any], top_n: int) -> list[list[Any]]:
    """The published trending list: [[item_id, score], ...], hottest first."""
    totals: dict[str, float] = {}
    for items in (state.get("buckets") or {}).values():
        for item, weight in items.items():
            totals[item] = totals.get(item, 0.0) + weight
    return [[k, v] for k, v in _top(totals, top_n).items()]
