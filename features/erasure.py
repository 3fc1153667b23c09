"""Spark side of the right to erasure: which rows belong to erased users, and the ledger
filter every job applies so a backfill or re-run cannot bring them back.

A user is matched by the pseudonymised key: tables past bronze hold ``user_key``; bronze and
the landing files hold the raw ``user_id``, which is pseudonymised on the fly with the same
HMAC (``transforms.pseudonymise_column``), so the raw id of an erased user is never needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import columns as c
from features.tables import ERASURE_LEDGER
from features.transforms import parse_timestamp, pseudonymise_column
from recolake.settings import Settings


def user_key_column(schema: T.StructType, key: bytes) -> Column | None:
    """The pseudonymised user of a row of a table with this schema (None: no user column)."""
    names = set(schema.fieldNames())
    if c.USER_KEY in names:
        return F.col(c.USER_KEY)
    if c.USER_ID in names:
        return pseudonymise_column(F.col(c.USER_ID), key)
    return None


def erased_rows(schema: T.StructType, user_keys: Sequence[str], key: bytes) -> Column | None:
    """Condition selecting every row of the given users (for a Delta DELETE)."""
    user = user_key_column(schema, key)
    if user is None or not user_keys:
        return None
    return user.isin(list(user_keys))


def drop_erased(
    events: DataFrame, ledger: DataFrame, *, key: bytes, time: Column | None = None
) -> tuple[DataFrame, DataFrame]:
    """(kept, dropped) of ``events`` against the erasure ledger: an event of an erased user
    stamped at or before ``erased_at`` is dropped (an unparseable time too: it cannot be shown
    to be newer). Later events are new activity and kept. ``time``: the event time (default:
    ``event_time``, else the raw ``timestamp`` parsed)."""
    user = user_key_column(events.schema, key)
    if user is None:
        raise ValueError("drop_erased needs a user_key or user_id column")
    if time is None:
        names = set(events.schema.fieldNames())
        time = F.col(c.EVENT_TIME) if c.EVENT_TIME in names else parse_timestamp(F.col(c.TIMESTAMP))
    erased = ledger.select(F.col(c.USER_KEY).alias("_erased_key"), F.col(c.ERASED_AT).alias("_at"))
    joined = (
        events.withColumn("_user", user)
        .withColumn("_time", time)
        .join(erased, F.col("_user") == F.col("_erased_key"), "left")
    )
    gone = F.col("_erased_key").isNotNull() & (
        F.col("_time").isNull() | (F.col("_time") <= F.col("_at"))
    )
    extra = ["_user", "_time", "_erased_key", "_at"]
    return joined.where(~gone).drop(*extra), joined.where(gone).drop(*extra)


def erasure_ledger(spark: SparkSession, settings: Settings) -> DataFrame:
    """(user_key, erased_at) of every erased user (empty when nobody was ever erased)."""
    return ERASURE_LEDGER.read_or_empty(spark, settings).select(c.USER_KEY, c.ERASED_AT)
