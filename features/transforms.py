"""Pure DataFrame -> DataFrame transforms from raw files to gold features.

Nothing here reads, writes or looks at the clock: inputs come as frames and arguments, so
every function is unit-tested on frames of a few rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features import columns as c
from recolake.onlinestore.keys import SESSION_PREFIX, USER_PREFIX
from recolake.privacy import hmac_pads
from recolake.validation import EARLIEST_TIMESTAMP, MAX_ID_LENGTH, MAX_PRICE

#: Timestamp layouts accepted in raw files, tried in order (all read as UTC).
TIMESTAMP_FORMATS = (
    "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS][XXX]",
    "yyyy-MM-dd HH:mm:ss[.SSSSSS][.SSS][XXX]",
    "yyyy-MM-dd HH:mm:ss 'UTC'",
    "yyyy-MM-dd HH:mm",
    "M/d/yyyy H:mm",
)

#: Online Retail product codes are five digits with an optional letter suffix; everything
#: else (POST, DOT, M, C2, BANK CHARGES, AMAZONFEE, gift vouchers...) is not a product.
ONLINE_RETAIL_PRODUCT_CODE = r"^[0-9]{5}[A-Za-z]{0,2}$"


# --------------------------------------------------------------------------- bronze


def _ingest_metadata(df: DataFrame, source_format: str, ingest_ds: date) -> DataFrame:
    return (
        df.withColumn(c.SOURCE_FORMAT, F.lit(source_format))
        .withColumn(c.SOURCE_FILE, F.col("_metadata.file_path"))
        .withColumn(c.INGESTED_AT, F.current_timestamp())
        .withColumn(c.INGEST_DS, F.lit(ingest_ds))
    )


def _as_strings(df: DataFrame, fields: tuple[str, ...]) -> list[Column]:
    present = set(df.columns)
    return [
        (F.col(f).cast("string") if f in present else F.lit(None).cast("string")).alias(f)
        for f in fields
    ]


def require_columns(df: DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [col for col in required if col not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: missing required column(s) {missing}; found {sorted(df.columns)}"
        )


def generic_events_to_bronze(raw: DataFrame, ingest_ds: date) -> DataFrame:
    """Generic events CSV (user_id,item_id,event_type,timestamp[,session_id,quantity,price]
    [,event_id]) to the bronze schema. Values stay strings: validation happens in silver."""
    require_columns(raw, (c.USER_ID, c.ITEM_ID, c.EVENT_TYPE, c.TIMESTAMP), "events file")
    fields = (c.EVENT_ID, *c.RAW_EVENT_FIELDS, c.RECOMMENDATION_ID)
    df = raw.select(*_as_strings(raw, fields), "_metadata")
    return _ingest_metadata(df, "generic", ingest_ds).drop("_metadata")


def generic_items_to_bronze(raw: DataFrame, ingest_ds: date) -> DataFrame:
    require_columns(raw, (c.ITEM_ID, c.TITLE, c.CATEGORY, c.PRICE), "items file")
    df = raw.select(*_as_strings(raw, c.RAW_ITEM_FIELDS), "_metadata")
    return _ingest_metadata(df, "generic", ingest_ds).drop("_metadata")


ONLINE_RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
)


def online_retail_to_bronze(raw: DataFrame, ingest_ds: date) -> DataFrame:
    """UCI Online Retail rows as purchase events: invoice = session, stock code = item."""
    require_columns(raw, ONLINE_RETAIL_COLUMNS, "Online Retail file")
    df = raw.select(
        F.lit(None).cast("string").alias(c.EVENT_ID),
        F.col("CustomerID").cast("string").alias(c.USER_ID),
        F.col("StockCode").cast("string").alias(c.ITEM_ID),
        F.lit("purchase").alias(c.EVENT_TYPE),
        F.col("InvoiceDate").cast("string").alias(c.TIMESTAMP),
        F.col("InvoiceNo").cast("string").alias(c.SESSION_ID),
        F.col("Quantity").cast("string").alias(c.QUANTITY),
        F.col("UnitPrice").cast("string").alias(c.PRICE),
        F.lit(None).cast("string").alias(c.RECOMMENDATION_ID),
        "_metadata",
    )
    return _ingest_metadata(df, "online_retail", ingest_ds).drop("_metadata")


def online_retail_items_to_bronze(raw: DataFrame, ingest_ds: date) -> DataFrame:
    """One catalog row per stock code: its latest description and price. Online Retail has
    no categories, so the category is the description's last word (HOLDER, LANTERN, ...)."""
    require_columns(raw, ONLINE_RETAIL_COLUMNS, "Online Retail file")
    described = raw.where(F.trim("Description") != "")
    latest = described.groupBy("StockCode").agg(
        F.max_by(F.struct("Description", "UnitPrice", "_metadata"), "InvoiceDate").alias("l")
    )
    title = F.trim(F.col("l.Description"))
    df = latest.select(
        F.col("StockCode").cast("string").alias(c.ITEM_ID),
        title.alias(c.TITLE),
        F.element_at(F.split(title, r"\s+"), -1).alias(c.CATEGORY),
        F.col("l.UnitPrice").cast("string").alias(c.PRICE),
        F.lit("true").alias(c.AVAILABLE),
        F.lit(None).cast("string").alias(c.BRAND),  # Online Retail names no brands
        F.lit(None).cast("string").alias(c.ATTRIBUTES),
        F.col("l._metadata").alias("_metadata"),
    )
    return _ingest_metadata(df, "online_retail", ingest_ds).drop("_metadata")


# --------------------------------------------------------------------------- silver


def pseudonymise_column(col: Column, key: bytes) -> Column:
    """HMAC-SHA256(key, col) as hex, in Spark SQL (no Python UDF); equals
    ``recolake.privacy.pseudonymise``."""
    inner_pad, outer_pad = hmac_pads(key)
    inner = F.sha2(F.concat(F.lit(inner_pad), F.encode(col, "UTF-8")), 256)
    return F.sha2(F.concat(F.lit(outer_pad), F.unhex(inner)), 256)


def parse_timestamp(col: Column) -> Column:
    """First layout that parses, else null (Spark 4 is ANSI: plain casts would throw)."""
    trimmed = F.trim(col)
    return F.coalesce(*(F.try_to_timestamp(trimmed, F.lit(fmt)) for fmt in TIMESTAMP_FORMATS))


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _optional(df: DataFrame, name: str) -> Column:
    """A string column that older frames (bronze written before it was declared) lack."""
    return F.col(name) if name in df.columns else F.lit(None).cast("string")


def event_fingerprint(df: DataFrame) -> Column:
    """Content hash of the raw fields: the event id when the client gave none."""
    parts = [F.coalesce(F.col(f), F.lit("\u2400")) for f in c.RAW_EVENT_FIELDS]
    return F.sha2(F.concat_ws("\u241f", *parts), 256)


@dataclass(frozen=True)
class SilverSplit:
    """The outcome of validating one batch of bronze events."""

    valid: DataFrame
    quarantined: DataFrame
    exact_duplicates: DataFrame


def validate_events(
    bronze: DataFrame,
    *,
    event_types: Mapping[str, float] | list[str],
    key: bytes,
    latest_allowed: datetime | Column,
    annotate: Callable[..., DataFrame] | None = None,
) -> SilverSplit:
    """Split bronze events into typed silver rows, quarantined rows (with a reason) and
    exact duplicates. Every input row lands in exactly one of the three. ``annotate`` (default
    annotate_events) sets the reasons: the streaming job passes its own variant."""
    deduped = bronze.dropDuplicates([c.EVENT_ID, *c.RAW_EVENT_FIELDS, c.SOURCE_FORMAT])
    annotated = (annotate or annotate_events)(
        deduped, event_types=event_types, key=key, latest_allowed=latest_allowed
    )
    return SilverSplit(
        valid=valid_events(annotated),
        quarantined=quarantined_events(annotated),
        exact_duplicates=bronze.exceptAll(deduped),
    )


def annotate_events(
    bronze: DataFrame,
    *,
    event_types: Mapping[str, float] | list[str],
    key: bytes,
    latest_allowed: datetime | Column,
    earliest_allowed: datetime = EARLIEST_TIMESTAMP,
) -> DataFrame:
    """Bronze rows plus ``reason`` (null when the event is valid) and ``user_key``. Row by
    row, no shuffle: it also runs on a stream, where the streaming job plans it once instead
    of per micro-batch (``latest_allowed`` then is a Column on the batch's clock). The limits
    are recolake.validation's, which the API applies before it stores an event."""
    known_types = sorted(event_types)
    event_type, event_time, quantity, price = _typed_fields()
    is_retail = F.col(c.SOURCE_FORMAT) == "online_retail"
    too_long = (
        (F.length(c.USER_ID) > MAX_ID_LENGTH)
        | (F.length(c.ITEM_ID) > MAX_ID_LENGTH)
        | (F.length(c.SESSION_ID) > MAX_ID_LENGTH)
        | (F.length(c.EVENT_ID) > MAX_ID_LENGTH)
        | F.coalesce(F.length(_optional(bronze, c.RECOMMENDATION_ID)) > MAX_ID_LENGTH, F.lit(False))
    )
    reason = (
        F.when(_blank(F.col(c.USER_ID)), "missing_user_id")
        .when(_blank(F.col(c.ITEM_ID)), "missing_item_id")
        .when(too_long, "id_too_long")
        .when(_blank(F.col(c.EVENT_TYPE)), "missing_event_type")
        .when(~event_type.isin(known_types), "unknown_event_type")
        .when(_blank(F.col(c.TIMESTAMP)), "missing_timestamp")
        .when(event_time.isNull(), "unparseable_timestamp")
        .when(event_time >= F.lit(latest_allowed), "timestamp_after_ds")  # lit: Column as is
        .when(event_time < F.lit(earliest_allowed), "timestamp_before_min")
        .when(~_blank(F.col(c.QUANTITY)) & quantity.isNull(), "invalid_quantity")
        .when(is_retail & F.col(c.SESSION_ID).startswith("C"), "cancellation")
        .when(quantity <= 0, "non_positive_quantity")
        .when(~_blank(F.col(c.PRICE)) & _bad_price(price), "invalid_price")
        .when(is_retail & ~F.trim(c.ITEM_ID).rlike(ONLINE_RETAIL_PRODUCT_CODE), "non_product_code")
        .when(is_retail & (price == 0), "zero_price")
    )
    user_key = F.when(~_blank(F.col(c.USER_ID)), pseudonymise_column(F.trim(c.USER_ID), key))
    return bronze.withColumns({c.REASON: reason, c.USER_KEY: user_key})


def _bad_price(price: Column) -> Column:
    """Unparseable, negative, NaN, infinite or above validation.MAX_PRICE."""
    return price.isNull() | F.isnan(price) | (price < 0) | (price > F.lit(MAX_PRICE))


def _typed_fields() -> tuple[Column, Column, Column, Column]:
    """Event type, event time, quantity and price parsed from the raw strings."""
    return (
        F.lower(F.trim(c.EVENT_TYPE)),
        parse_timestamp(F.col(c.TIMESTAMP)),
        F.trim(c.QUANTITY).try_cast("int"),
        F.trim(c.PRICE).try_cast("double"),
    )


def quarantined_events(annotated: DataFrame) -> DataFrame:
    """The rejected rows of annotate_events, in the quarantine's shape."""
    return annotated.where(F.col(c.REASON).isNotNull()).select(
        c.EVENT_ID,
        c.USER_KEY,
        *(f for f in c.RAW_EVENT_FIELDS if f != c.USER_ID),
        c.SOURCE_FORMAT,
        c.SOURCE_FILE,
        c.REASON,
        c.INGEST_DS,
    )


def valid_events(annotated: DataFrame) -> DataFrame:
    """The accepted rows of annotate_events, typed as silver."""
    event_type, event_time, quantity, price = _typed_fields()
    return annotated.where(F.col(c.REASON).isNull()).select(
        F.coalesce(F.col(c.EVENT_ID), event_fingerprint(annotated)).alias(c.EVENT_ID),
        F.col(c.USER_KEY),
        F.trim(c.ITEM_ID).alias(c.ITEM_ID),
        event_type.alias(c.EVENT_TYPE),
        event_time.alias(c.EVENT_TIME),
        F.col(c.SESSION_ID),
        quantity.alias(c.QUANTITY),
        price.alias(c.PRICE),
        F.col(c.SOURCE_FORMAT),
        F.col(c.INGEST_DS),
        F.to_date(event_time).alias(c.EVENT_DATE),
        F.nullif(F.trim(_optional(annotated, c.RECOMMENDATION_ID)), F.lit("")).alias(
            c.RECOMMENDATION_ID
        ),
    )


def event_subject(col_user: str = c.USER_KEY, col_session: str = c.SESSION_ID) -> Column:
    """Whose idempotency key an event id is: the user (``u:<user_key>``), else the session
    (``s:<session_id>``): the API's rule (online.services.events)."""
    return F.coalesce(
        F.concat(F.lit("u:"), F.col(col_user)), F.concat(F.lit("s:"), F.col(col_session))
    )


def dedupe_by_event_id(valid: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Keep the first row per (subject, event id): a client retry with the same id counts
    once, while the same id from another user (or session) is another event."""
    keyed = valid.withColumn("_subject", event_subject())
    unique = keyed.dropDuplicates(["_subject", c.EVENT_ID]).drop("_subject")
    return unique, valid.exceptAll(unique)


def silver_items(bronze_items: DataFrame) -> DataFrame:
    """Typed catalog rows, the latest ingest per item winning; unparseable prices -> null.

    ``available`` is optional in the documented items CSV: a missing or blank value means
    available (only false/0/no/n mark an item unavailable), else a catalog without the column
    would filter every item out of every answer."""
    available = F.lower(F.trim(c.AVAILABLE))
    typed = bronze_items.where(~_blank(F.col(c.ITEM_ID))).select(
        F.trim(c.ITEM_ID).alias(c.ITEM_ID),
        F.trim(c.TITLE).alias(c.TITLE),
        F.trim(c.CATEGORY).alias(c.CATEGORY),
        F.trim(c.PRICE).try_cast("double").alias(c.PRICE),
        F.coalesce(~available.isin("false", "0", "no", "n"), F.lit(True)).alias(c.AVAILABLE),
        _nullif_blank(c.BRAND, bronze_items).alias(c.BRAND),
        F.col(c.INGEST_DS),
        F.col(c.INGESTED_AT),
    )
    latest = typed.groupBy(c.ITEM_ID).agg(
        F.max_by(
            F.struct(*[x for x in typed.columns if x != c.ITEM_ID]),
            F.struct(c.INGEST_DS, c.INGESTED_AT),
        ).alias("l")
    )
    return latest.select(
        c.ITEM_ID,
        *(
            F.col(f"l.{x}").alias(x)
            for x in (c.TITLE, c.CATEGORY, c.PRICE, c.AVAILABLE, c.INGEST_DS, c.BRAND)
        ),
    )


def _nullif_blank(name: str, df: DataFrame) -> Column:
    """A trimmed optional string column; blank or absent (bronze written before the column
    was declared) -> null."""
    if name not in df.columns:
        return F.lit(None).cast("string")
    value = F.trim(F.col(name))
    return F.when(value != "", value)


IMPRESSION_ITEMS_SCHEMA = "array<struct<item_id:string,position:int,source:string>>"


def realtime_subject(key: bytes, col_user_key: str = c.USER_KEY, col_session: str = c.SESSION_ID):
    """The real-time subject in Spark SQL: ``u:<user_key>`` (recolake.onlinestore.user_subject)
    when there is a user key, else ``s:<hmac>`` (session_subject of the raw session id)."""
    session = F.concat(
        F.lit(SESSION_PREFIX),
        pseudonymise_column(F.concat(F.lit("session:"), F.col(col_session)), key),
    )
    return F.coalesce(F.concat(F.lit(USER_PREFIX), F.col(col_user_key)), session)


def silver_impressions(bronze: DataFrame, *, key: bytes) -> DataFrame:
    """Bronze impression records -> one row per shown item (silver.impressions), the user id
    pseudonymised and the subject the API served (user first, else session). Records without
    a recommendation id, a variant, a parseable time or a user/session, and items without an
    id or a positive position, are dropped; a record seen twice (replay, retry) counts once
    per (recommendation_id, position)."""
    when = parse_timestamp(F.col(c.TIMESTAMP))
    user_key = F.when(~_blank(F.col(c.USER_ID)), pseudonymise_column(F.trim(c.USER_ID), key))
    session = F.when(~_blank(F.col(c.SESSION_ID)), F.col(c.SESSION_ID))
    records = bronze.where(
        ~_blank(F.col(c.RECOMMENDATION_ID))
        & ~_blank(F.col(c.VARIANT))
        & when.isNotNull()
        & (~_blank(F.col(c.USER_ID)) | ~_blank(F.col(c.SESSION_ID)))
    ).select(
        F.trim(c.RECOMMENDATION_ID).alias(c.RECOMMENDATION_ID),
        user_key.alias(c.USER_KEY),
        session.alias(c.SESSION_ID),
        F.col(c.EXPERIMENT),
        F.col(c.VARIANT),
        F.coalesce(F.col(c.ENDPOINT), F.lit("recommendations")).alias(c.ENDPOINT),
        when.alias(c.IMPRESSION_TIME),
        F.explode(F.from_json(F.col(c.ITEMS), IMPRESSION_ITEMS_SCHEMA)).alias("_item"),
    )
    rows = records.select(
        c.RECOMMENDATION_ID,
        c.USER_KEY,
        c.SESSION_ID,
        realtime_subject(key).alias(c.SUBJECT),
        c.EXPERIMENT,
        c.VARIANT,
        c.ENDPOINT,
        F.col("_item.item_id").alias(c.ITEM_ID),
        F.col("_item.position").alias(c.POSITION),
        F.col("_item.source").alias(c.SOURCE),
        c.IMPRESSION_TIME,
        F.to_date(c.IMPRESSION_TIME).alias(c.EVENT_DATE),
    )
    shown = rows.where(~_blank(F.col(c.ITEM_ID)) & (F.col(c.POSITION) >= 1))
    return shown.dropDuplicates([c.RECOMMENDATION_ID, c.POSITION])


# --------------------------------------------------------------------------- gold


def end_of_day(ds: date) -> datetime:
    """Exclusive upper bound of the logical date ``ds`` (UTC)."""
    return datetime(ds.year, ds.month, ds.day) + timedelta(days=1)


def weight_column(weights: Mapping[str, float], event_type: str = c.EVENT_TYPE) -> Column:
    mapping = F.create_map(*(x for k, v in weights.items() for x in (F.lit(k), F.lit(float(v)))))
    return F.coalesce(mapping[F.col(event_type)], F.lit(0.0))


#: Negative feedback types by default (settings.negative_event_types).
NEGATIVE_EVENT_TYPES = ("hide", "dislike")


def user_item_strength(
    events: DataFrame,
    *,
    as_of: datetime,
    weights: Mapping[str, float],
    half_life_days: float,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
    negative_types: Collection[str] = NEGATIVE_EVENT_TYPES,
) -> DataFrame:
    """Implicit strength per (user, item) from events before ``as_of``: sum of event-type
    weight x 0.5^(age / half-life). A ``negative_types`` event (hide, dislike) zeroes the
    pair: only the events after the user's last one count. Pairs with strength <= 0 are
    dropped."""
    before = events.where(F.col(c.EVENT_TIME) < F.lit(as_of))
    if negative_types:
        negative = F.col(c.EVENT_TYPE).isin(list(negative_types))
        pair = Window.partitionBy(col_user, col_item)
        last_negative = F.max(F.when(negative, F.col(c.EVENT_TIME))).over(pair)
        before = before.withColumn("_neg", last_negative).where(
            F.col("_neg").isNull() | (F.col(c.EVENT_TIME) > F.col("_neg"))
        )
    age_days = (F.lit(as_of).cast("double") - F.col(c.EVENT_TIME).cast("double")) / 86400.0
    decayed = weight_column(weights) * F.pow(F.lit(0.5), age_days / F.lit(half_life_days))
    return (
        before.groupBy(col_user, col_item)
        .agg(
            F.sum(decayed).alias(c.STRENGTH),
            F.count(F.lit(1)).alias(c.N_EVENTS),
            F.max(c.EVENT_TIME).alias(c.LAST_EVENT_TIME),
            F.max(F.col(c.EVENT_TYPE) == "purchase").alias(c.PURCHASED),
        )
        .where(F.col(c.STRENGTH) > 0)
    )


def item_popularity(
    events: DataFrame,
    *,
    as_of: datetime,
    window_days: int,
    weights: Mapping[str, float],
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """Distinct users and summed weight per item in the window before ``as_of``, ranked."""
    start = as_of - timedelta(days=window_days)
    recent = events.where(
        (F.col(c.EVENT_TIME) >= F.lit(start)) & (F.col(c.EVENT_TIME) < F.lit(as_of))
    )
    counted = (
        recent.withColumn("_w", weight_column(weights))
        .where(F.col("_w") > 0)
        .groupBy(col_item)
        .agg(F.countDistinct(col_user).alias(c.N_USERS), F.sum("_w").alias(c.STRENGTH))
    )
    from models.indexing import global_row_number  # a distributed sort, not one partition

    order = [F.desc(c.N_USERS), F.desc(c.STRENGTH), F.asc(col_item)]
    return global_row_number(counted, order, c.RANK)


def item_catalog(items: DataFrame, events: DataFrame, *, as_of: datetime) -> DataFrame:
    """Known catalog items plus items seen only in events (no title, assumed available);
    with the brand, which the content model uses (silver written before it was declared
    reads null)."""
    seen = events.where(F.col(c.EVENT_TIME) < F.lit(as_of)).select(c.ITEM_ID).distinct()
    missing = seen.join(items.select(c.ITEM_ID), c.ITEM_ID, "left_anti").select(
        c.ITEM_ID,
        F.lit(None).cast("string").alias(c.TITLE),
        F.lit(None).cast("string").alias(c.CATEGORY),
        F.lit(None).cast("double").alias(c.PRICE),
        F.lit(True).alias(c.AVAILABLE),
        F.lit(None).cast("string").alias(c.BRAND),
    )
    brand = F.col(c.BRAND) if c.BRAND in items.columns else F.lit(None).cast("string")
    return items.select(
        c.ITEM_ID, c.TITLE, c.CATEGORY, c.PRICE, c.AVAILABLE, brand.alias(c.BRAND)
    ).unionByName(missing)


def with_ds(df: DataFrame, ds: date) -> DataFrame:
    return df.withColumn(c.DS, F.lit(ds))
