"""Spark transforms of the streaming job (pipelines/streaming.py), kept pure so they are
tested on tiny inputs: event log rows -> bronze -> validated -> one row per (subject, event);
the log's impression records (recolake.eventlog.Impression) -> bronze.impressions, and its
catalog item records (recolake.eventlog.item_record, PUT /v1/items) -> bronze.items; both
kept apart from the events (never validated, quarantined or counted as one).

What a micro-batch does to the Redis documents (the merges, exactly-once on a Cluster too) is
the online-store contract's: recolake.onlinestore.stream (StreamWriter, merge_*, Event,
re-exported here for older callers).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

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
from recolake.eventlog import IMPRESSION, ITEM, RECORD
from recolake.onlinestore.keys import SESSION_PREFIX, USER_PREFIX
from recolake.onlinestore.stream import (  # noqa: F401 (re-exported)
    PRIMARY,
    SUBJECT,
    TS,
    WEIGHT,
    Event,
    merge_affinity,
    merge_recent,
    merge_trending,
    trending_list,
)

#: The fields of an event in the event log (recolake.eventlog), all strings.
EVENT_LOG_FIELDS = (c.EVENT_ID, *c.RAW_EVENT_FIELDS)
EVENT_LOG_SCHEMA = T.StructType([T.StructField(f, T.StringType(), True) for f in EVENT_LOG_FIELDS])
#: An event's fields in bronze: the above plus the optional recommendation id.
BRONZE_EVENT_FIELDS = (*EVENT_LOG_FIELDS, c.RECOMMENDATION_ID)
#: Every field of either kind of record in the log, as the streaming job reads it: all
#: strings (an impression's ``items`` array arrives as its JSON text).
LOG_RECORD_FIELDS = tuple(
    dict.fromkeys((RECORD, *BRONZE_EVENT_FIELDS, *c.RAW_IMPRESSION_FIELDS, *c.RAW_ITEM_FIELDS))
)
LOG_RECORD_SCHEMA = T.StructType(
    [T.StructField(f, T.StringType(), True) for f in LOG_RECORD_FIELDS]
)

#: source_format of events that came through POST /v1/events.
API_FORMAT = "api"
_ANONYMOUS = "api_anonymous"  # only inside annotate_api_events


# --------------------------------------------------------------------------- Spark side


def _is_kind(raw: DataFrame, kind: str) -> Column:
    if RECORD not in raw.columns:
        return F.lit(False)
    return F.coalesce(F.col(RECORD) == F.lit(kind), F.lit(False))


def _is_impression(raw: DataFrame) -> Column:
    return _is_kind(raw, IMPRESSION)


def event_records(raw: DataFrame) -> DataFrame:
    """The log's events: every record that is neither an impression nor an item (no
    ``record`` field, or "event"; an unknown kind is validated as an event, so it is
    quarantined, not lost)."""
    return raw.where(~_is_impression(raw) & ~_is_kind(raw, ITEM))


def impression_records(raw: DataFrame) -> DataFrame:
    return raw.where(_is_impression(raw))


def item_records(raw: DataFrame) -> DataFrame:
    """The log's catalog updates (PUT /v1/items)."""
    return raw.where(_is_kind(raw, ITEM))


def _to_bronze(
    raw: DataFrame, fields: tuple[str, ...], ingest_ds: date | Column, source_file: Column
) -> DataFrame:
    present = set(raw.columns)
    values = [
        (F.col(f).cast("string") if f in present else F.lit(None).cast("string")).alias(f)
        for f in fields
    ]
    return raw.select(
        *values,
        F.lit(API_FORMAT).alias(c.SOURCE_FORMAT),
        source_file.cast("string").alias(c.SOURCE_FILE),
        F.current_timestamp().alias(c.INGESTED_AT),
        F.lit(ingest_ds).alias(c.INGEST_DS),  # a Column passes through lit as is
    )


def api_events_to_bronze(
    raw: DataFrame, ingest_ds: date | Column, source_file: Column
) -> DataFrame:
    """Event log rows to the bronze schema (strings as received), source_format 'api'."""
    return _to_bronze(raw, BRONZE_EVENT_FIELDS, ingest_ds, source_file)


def api_impressions_to_bronze(
    raw: DataFrame, ingest_ds: date | Column, source_file: Column
) -> DataFrame:
    """Impression records to bronze.impressions' schema (strings as received)."""
    return _to_bronze(raw, c.RAW_IMPRESSION_FIELDS, ingest_ds, source_file)


def api_items_to_bronze(raw: DataFrame, ingest_ds: date | Column, source_file: Column) -> DataFrame:
    """Item records to bronze.items' schema (strings as received), source_format 'api': the
    nightly's silver takes the latest row per item, from a CSV or the API alike."""
    return _to_bronze(raw, c.RAW_ITEM_FIELDS, ingest_ds, source_file)


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
    """Valid events -> one row per (subject, event): the user's subject (``u:<user_key>``) and
    the session's (``s:<hmac>``, = recolake.onlinestore.session_subject) when a session id is
    present, plus the event's primary subject (the user if known, else the session: the scope
    of its event_id, so the job counts it once across the fan-out); with item, type, the
    type's weight and the event time in epoch seconds. Row by row, so it runs on the stream
    itself; the StreamWriter adds the item's category and drops repeated events."""
    session = F.concat(
        F.lit(SESSION_PREFIX),
        pseudonymise_column(F.concat(F.lit("session:"), F.col(c.SESSION_ID)), key),
    )
    user = F.concat(F.lit(USER_PREFIX), F.col(c.USER_KEY))  # null when anonymous
    session = F.when(F.col(c.SESSION_ID).isNotNull(), session)
    return valid.select(
        F.explode(F.array_compact(F.array(user, session))).alias(SUBJECT),
        F.coalesce(user, session).alias(PRIMARY),
        c.EVENT_ID,
        c.ITEM_ID,
        c.EVENT_TYPE,
        F.unix_micros(c.EVENT_TIME).cast("double").__truediv__(1e6).alias(TS),
        weight_column(weights).cast("double").alias(WEIGHT),
    )
