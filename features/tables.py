"""Every lake table declared once: name, layer, keys, schema, partitioning, owner job.

Jobs read and write through these declarations (as Feast declares feature views), so a
table's path, schema and write semantics live in exactly one place. Writes are idempotent:
``overwrite_partition`` replaces one logical date, ``upsert`` MERGEs on the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from features import columns as c
from recolake.settings import Settings


class SchemaMismatchError(ValueError):
    """A frame does not match the declared schema of the table it is written to."""


@dataclass(frozen=True)
class LakeTable:
    name: str
    layer: str
    keys: tuple[str, ...]
    schema: T.StructType
    partition_by: tuple[str, ...]
    owner_job: str
    description: str

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    def path(self, settings: Settings) -> str:
        return f"{settings.lake_root.rstrip('/')}/{self.layer}/{self.name}"

    def exists(self, spark: SparkSession, settings: Settings) -> bool:
        return DeltaTable.isDeltaTable(spark, self.path(settings))

    def read(
        self, spark: SparkSession, settings: Settings, version: int | None = None
    ) -> DataFrame:
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(settings))

    def read_or_empty(self, spark: SparkSession, settings: Settings) -> DataFrame:
        if self.exists(spark, settings):
            return self.read(spark, settings)
        return spark.createDataFrame([], self.schema)

    def version(self, spark: SparkSession, settings: Settings) -> int | None:
        """The current Delta version (for lineage in MLflow), or None if not created yet."""
        if not self.exists(spark, settings):
            return None
        history = DeltaTable.forPath(spark, self.path(settings)).history(1)
        return int(history.select("version").first()[0])

    def conform(self, df: DataFrame) -> DataFrame:
        """Select the declared columns in order; fail clearly on missing or mistyped ones."""
        actual = {f.name: f.dataType for f in df.schema.fields}
        problems = []
        for field in self.schema.fields:
            if field.name not in actual:
                problems.append(f"missing column {field.name!r}")
            elif actual[field.name] != field.dataType:
                problems.append(
                    f"column {field.name!r} is {actual[field.name].simpleString()}, "
                    f"declared {field.dataType.simpleString()}"
                )
        if problems:
            raise SchemaMismatchError(f"{self.qualified_name}: " + "; ".join(problems))
        return df.select(*self.schema.fieldNames())

    def ensure(self, spark: SparkSession, settings: Settings) -> None:
        """Create the empty table with its declared schema and partitioning if absent."""
        if self.exists(spark, settings):
            return
        (
            spark.createDataFrame([], self.schema)
            .write.format("delta")
            .partitionBy(*self.partition_by)
            .mode("ignore")
            .save(self.path(settings))
        )

    def overwrite_partition(
        self, df: DataFrame, settings: Settings, partition_column: str, value: date | str
    ) -> None:
        """Replace exactly one logical-date partition: a re-run replaces, never appends."""
        self.overwrite_partitions(df, settings, {partition_column: value})

    def overwrite_partitions(
        self, df: DataFrame, settings: Settings, values: dict[str, date | str]
    ) -> None:
        """Replace exactly the partition given by ``values`` (e.g. ds and kind)."""
        unknown = set(values) - set(self.partition_by)
        if unknown:
            raise ValueError(f"{self.qualified_name} is not partitioned by {sorted(unknown)}")
        condition = " AND ".join(
            f"{col} = DATE'{v.isoformat()}'" if isinstance(v, date) else f"{col} = '{v}'"
            for col, v in values.items()
        )
        (
            self.conform(df)
            .write.format("delta")
            .mode("overwrite")
            .partitionBy(*self.partition_by)
            .option("replaceWhere", condition)
            .option("mergeSchema", "true")  # added declared columns (schema evolution)
            .save(self.path(settings))
        )

    def overwrite(self, df: DataFrame, settings: Settings) -> None:
        (
            self.conform(df)
            .write.format("delta")
            .mode("overwrite")
            .partitionBy(*self.partition_by)
            .option("mergeSchema", "true")  # added declared columns (schema evolution)
            .save(self.path(settings))
        )

    def upsert(
        self, spark: SparkSession, df: DataFrame, settings: Settings, *, update: bool = True
    ) -> dict[str, int]:
        """MERGE on the declared keys: new keys inserted, existing keys updated (or left
        alone with ``update=False``, for immutable facts such as events). Returns Delta's
        operation metrics (numTargetRowsInserted, ...)."""
        if not self.keys:
            raise ValueError(f"{self.qualified_name} declares no keys to merge on")
        self.ensure(spark, settings)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in self.keys)
        table = DeltaTable.forPath(spark, self.path(settings))
        before = self.version(spark, settings)
        merge = table.alias("t").merge(self.conform(df).alias("s"), condition)
        merge = merge.withSchemaEvolution()  # added declared columns (schema evolution)
        if update:
            merge = merge.whenMatchedUpdateAll()
        merge.whenNotMatchedInsertAll().execute()
        last = table.history(1).select("version", "operationMetrics").first()
        if last["version"] == before:  # nothing to change: Delta made no commit
            return {"numTargetRowsInserted": 0, "numTargetRowsUpdated": 0}
        return {k: int(v) for k, v in (last["operationMetrics"] or {}).items() if v.isdigit()}


# Schema evolution: a nullable column added to a declaration reaches an existing table on
# its next write (Delta's mergeSchema / MERGE withSchemaEvolution; older rows read null).
# Only declared columns can appear, since every write goes through conform(); declare
# added columns last, where Delta appends them to an existing table.


def _schema(*fields: tuple[str, T.DataType, bool]) -> T.StructType:
    return T.StructType([T.StructField(n, t, nullable) for n, t, nullable in fields])


_S, _D, _TS, _L, _DBL, _I, _B = (
    T.StringType(),
    T.DateType(),
    T.TimestampType(),
    T.LongType(),
    T.DoubleType(),
    T.IntegerType(),
    T.BooleanType(),
)

_INGEST_META = (
    (c.SOURCE_FORMAT, _S, False),
    (c.SOURCE_FILE, _S, True),
    (c.INGESTED_AT, _TS, False),
    (c.INGEST_DS, _D, False),
)

BRONZE_EVENTS = LakeTable(
    name="events",
    layer="bronze",
    keys=(),
    schema=_schema(
        (c.EVENT_ID, _S, True),
        *((f, _S, True) for f in c.RAW_EVENT_FIELDS),
        *_INGEST_META,
        (c.RECOMMENDATION_ID, _S, True),  # added for experiments: last (schema evolution)
    ),
    # By source too: a batch re-ingest of a date replaces its own file's rows and never the
    # events the streaming job appended for that date (source_format 'api').
    partition_by=(c.INGEST_DS, c.SOURCE_FORMAT),
    owner_job="pipelines.ingest",
    description="Raw events exactly as received (strings), with ingestion metadata.",
)

BRONZE_ITEMS = LakeTable(
    name="items",
    layer="bronze",
    keys=(),
    schema=_schema(
        *((f, _S, True) for f in c.RAW_ITEM_FIELDS if f not in (c.BRAND, c.ATTRIBUTES)),
        *_INGEST_META,
        (c.BRAND, _S, True),  # added later: last (schema evolution)
        (c.ATTRIBUTES, _S, True),
    ),
    partition_by=(c.INGEST_DS, c.SOURCE_FORMAT),
    owner_job="pipelines.ingest",
    description="Raw catalog rows as received (strings), with ingestion metadata.",
)

SILVER_EVENTS = LakeTable(
    name="events",
    layer="silver",
    keys=(c.USER_KEY, c.EVENT_ID),  # event ids are per user (transforms.dedupe_by_event_id)
    schema=_schema(
        (c.EVENT_ID, _S, False),
        (c.USER_KEY, _S, False),
        (c.ITEM_ID, _S, False),
        (c.EVENT_TYPE, _S, False),
        (c.EVENT_TIME, _TS, False),
        (c.SESSION_ID, _S, True),
        (c.QUANTITY, _I, True),
        (c.PRICE, _DBL, True),
        (c.SOURCE_FORMAT, _S, False),
        (c.INGEST_DS, _D, False),
        (c.EVENT_DATE, _D, False),
        # The list the event came from (POST /v1/events' optional field), for attribution.
        (c.RECOMMENDATION_ID, _S, True),
    ),
    partition_by=(c.EVENT_DATE,),
    owner_job="pipelines.silver",
    description="Typed, deduplicated events; user ids pseudonymised (HMAC-SHA256).",
)

BRONZE_IMPRESSIONS = LakeTable(
    name="impressions",
    layer="bronze",
    keys=(),
    schema=_schema(*((f, _S, True) for f in c.RAW_IMPRESSION_FIELDS), *_INGEST_META),
    partition_by=(c.INGEST_DS,),
    owner_job="pipelines.streaming",
    description="The lists the API served (event-log impression records) as received: "
    "strings, items as their JSON, raw user ids; with ingestion metadata.",
)

SILVER_IMPRESSIONS = LakeTable(
    name="impressions",
    layer="silver",
    keys=(c.RECOMMENDATION_ID, c.POSITION),  # a replayed or retried record never doubles
    schema=_schema(
        (c.RECOMMENDATION_ID, _S, False),
        (c.USER_KEY, _S, True),
        (c.SESSION_ID, _S, True),  # as silver.events has it
        (c.SUBJECT, _S, False),  # onlinestore user_subject(user_key) / session_subject(...)
        (c.EXPERIMENT, _S, True),
        (c.VARIANT, _S, False),
        (c.ENDPOINT, _S, False),
        (c.ITEM_ID, _S, False),
        (c.POSITION, _I, False),
        (c.SOURCE, _S, True),
        (c.IMPRESSION_TIME, _TS, False),
        (c.EVENT_DATE, _D, False),
    ),
    partition_by=(c.EVENT_DATE,),
    owner_job="pipelines.silver",
    description="One row per shown item of every served list (1-based position), with the "
    "real-time subject it was served to; user ids pseudonymised. Read by the attribution job.",
)

QUARANTINE_EVENTS = LakeTable(
    name="events_quarantine",
    layer="silver",
    keys=(),
    schema=_schema(
        (c.EVENT_ID, _S, True),
        (c.USER_KEY, _S, True),
        *((f, _S, True) for f in c.RAW_EVENT_FIELDS if f != c.USER_ID),
        (c.SOURCE_FORMAT, _S, False),
        (c.SOURCE_FILE, _S, True),
        (c.REASON, _S, False),
        (c.INGEST_DS, _D, False),
    ),
    partition_by=(c.INGEST_DS,),
    owner_job="pipelines.silver",
    description="Rejected events with the reason; raw user id replaced by its key.",
)

SILVER_ITEMS = LakeTable(
    name="items",
    layer="silver",
    keys=(c.ITEM_ID,),
    schema=_schema(
        (c.ITEM_ID, _S, False),
        (c.TITLE, _S, True),
        (c.CATEGORY, _S, True),
        (c.PRICE, _DBL, True),
        (c.AVAILABLE, _B, False),
        (c.INGEST_DS, _D, False),
        (c.BRAND, _S, True),  # added later: last (schema evolution)
    ),
    partition_by=(),
    owner_job="pipelines.silver",
    description="Current catalog, one row per item (latest ingest wins).",
)

GOLD_USER_ITEM_STRENGTH = LakeTable(
    name="user_item_strength",
    layer="gold",
    keys=(c.DS, c.USER_KEY, c.ITEM_ID),
    schema=_schema(
        (c.DS, _D, False),
        (c.USER_KEY, _S, False),
        (c.ITEM_ID, _S, False),
        (c.STRENGTH, _DBL, False),
        (c.N_EVENTS, _L, False),
        (c.LAST_EVENT_TIME, _TS, False),
        (c.PURCHASED, _B, False),
    ),
    partition_by=(c.DS,),
    owner_job="pipelines.gold",
    description="Implicit feedback per user and item as of ds: weighted, time-decayed.",
)

GOLD_ITEM_POPULARITY = LakeTable(
    name="item_popularity",
    layer="gold",
    keys=(c.DS, c.ITEM_ID),
    schema=_schema(
        (c.DS, _D, False),
        (c.ITEM_ID, _S, False),
        (c.N_USERS, _L, False),
        (c.STRENGTH, _DBL, False),
        (c.RANK, _I, False),
    ),
    partition_by=(c.DS,),
    owner_job="pipelines.gold",
    description="Item popularity over the recent window as of ds (distinct users, strength).",
)

GOLD_ITEM_CATALOG = LakeTable(
    name="item_catalog",
    layer="gold",
    keys=(c.DS, c.ITEM_ID),
    schema=_schema(
        (c.DS, _D, False),
        (c.ITEM_ID, _S, False),
        (c.TITLE, _S, True),
        (c.CATEGORY, _S, True),
        (c.PRICE, _DBL, True),
        (c.AVAILABLE, _B, False),
        (c.BRAND, _S, True),  # added later: last (schema evolution)
    ),
    partition_by=(c.DS,),
    owner_job="pipelines.gold",
    description="Catalog snapshot as of ds: silver items plus items only seen in events.",
)


def _top_shares(name: str) -> T.ArrayType:
    """array<struct<name, share>>, largest share first (gold.user_profile's affinities)."""
    return T.ArrayType(
        T.StructType([T.StructField(name, _S, False), T.StructField(c.SHARE, _DBL, False)]),
        False,
    )


GOLD_USER_PROFILE = LakeTable(
    name="user_profile",
    layer="gold",
    keys=(c.DS, c.USER_KEY),
    schema=_schema(
        (c.DS, _D, False),
        (c.USER_KEY, _S, False),
        (c.N_EVENTS, _L, False),
        (c.LAST_EVENT_TIME, _TS, False),
        (c.DAYS_SINCE_LAST_EVENT, _I, False),
        (c.LAST_PURCHASE_TIME, _TS, True),
        (c.DAYS_SINCE_LAST_PURCHASE, _I, True),
        (c.FREQUENCY, _L, False),
        (c.MONETARY, _DBL, True),
        (c.R_SCORE, _I, True),
        (c.F_SCORE, _I, True),
        (c.M_SCORE, _I, True),
        (c.SEGMENT, _S, False),
        (c.TOP_CATEGORIES, _top_shares(c.CATEGORY), False),
        (c.TOP_BRANDS, _top_shares(c.BRAND), False),
        (c.MEDIAN_PRICE, _DBL, True),
        (c.PRICE_BAND, _I, True),
        (c.PREFERRED_HOURS, T.ArrayType(_I, False), False),
    ),
    partition_by=(c.DS,),
    owner_job="pipelines.gold",
    description="One row per user with events before the end of ds (features/profile.py): "
    "recency, frequency and monetary value with 1-5 quantile scores and a segment, category "
    "and brand affinity (top shares of strength), price band, preferred hours (UTC).",
)

USER_INDEX = LakeTable(
    name="als_user_index",
    layer="gold",
    keys=(c.DS, c.USER_KEY),
    schema=_schema((c.DS, _D, False), (c.USER_KEY, _S, False), (c.USER_IDX, _I, False)),
    partition_by=(c.DS,),
    owner_job="pipelines.train",
    description="ALS integer id of each user key, per training date.",
)

ITEM_INDEX = LakeTable(
    name="als_item_index",
    layer="gold",
    keys=(c.DS, c.ITEM_ID),
    schema=_schema((c.DS, _D, False), (c.ITEM_ID, _S, False), (c.ITEM_IDX, _I, False)),
    partition_by=(c.DS,),
    owner_job="pipelines.train",
    description="ALS integer id of each item, per training date.",
)

_NEIGHBOUR_SCHEMA = _schema(
    (c.DS, _D, False),
    (c.KIND, _S, False),
    (c.ITEM_ID, _S, False),
    (c.NEIGHBOUR_ID, _S, False),
    (c.SCORE, _DBL, False),
    (c.RANK, _I, False),
)

GOLD_ITEM_CF_NEIGHBOURS = LakeTable(
    name="item_cf_neighbours",
    layer="gold",
    keys=(c.DS, c.KIND, c.ITEM_ID, c.NEIGHBOUR_ID),
    schema=_NEIGHBOUR_SCHEMA,
    partition_by=(c.DS, c.KIND),
    owner_job="pipelines.item_cf",
    description="Top-N item-item neighbours from co-occurrence: kind 'co_view' (user "
    "histories) and 'bought_together' (baskets/sessions), normalised scores.",
)

GOLD_ITEM_CONTENT_NEIGHBOURS = LakeTable(
    name="item_content_neighbours",
    layer="gold",
    keys=(c.DS, c.KIND, c.ITEM_ID, c.NEIGHBOUR_ID),
    schema=_NEIGHBOUR_SCHEMA,
    partition_by=(c.DS, c.KIND),
    owner_job="pipelines.content",
    description="Top-N content-similar items (TF-IDF over title, category, brand); kind 'content'.",
)


GOLD_ITEM_CONTENT_TERMS = LakeTable(
    name="item_content_terms",
    layer="gold",
    keys=(c.DS, c.TERM),
    schema=_schema(
        (c.DS, _D, False),
        (c.TERM, _S, False),
        (c.IDF, _DBL, False),
        (
            c.ITEMS,
            T.ArrayType(
                T.StructType(
                    [T.StructField(c.ITEM_ID, _S, False), T.StructField(c.WEIGHT, _DBL, False)]
                ),
                False,
            ),
            False,
        ),
    ),
    partition_by=(c.DS,),
    owner_job="pipelines.content",
    description="The content model's vocabulary: each term's idf and the items with its largest "
    "TF-IDF weights (published so the API scores a new item's text: PUT /v1/items).",
)


ERASURE_LEDGER = LakeTable(
    name="erased_users",
    layer="silver",
    keys=(c.USER_KEY,),
    schema=_schema(
        (c.USER_KEY, _S, False),
        (c.ERASED_AT, _TS, False),
        (c.ERASURE_SOURCE, _S, False),
    ),
    partition_by=(),
    owner_job="pipelines.forget",
    description="Users forgotten on request (pseudonymised key only: never the raw id): "
    "every job drops their events stamped at or before erased_at, so a backfill or re-run "
    "cannot bring them back.",
)


GOLD_EXPERIMENT_RESULTS = LakeTable(
    name="experiment_results",
    layer="gold",
    keys=(c.DS, c.EXPERIMENT, c.VARIANT),
    schema=_schema(
        (c.DS, _D, False),
        (c.EXPERIMENT, _S, False),
        (c.VARIANT, _S, False),
        (c.CONTROL_VARIANT, _S, False),
        (c.IS_CONTROL, _B, False),
        *((name, _L, False) for name in c.EXPERIMENT_COUNTS),
        (c.REVENUE, _DBL, False),
        *(
            (f"{rate}{suffix}", _DBL, True)
            for rate in c.EXPERIMENT_RATES
            for suffix in ("", "_low", "_high", "_diff", "_p_value")
        ),
        (c.ATTRIBUTION_WINDOW_HOURS, _DBL, False),
    ),
    partition_by=(c.DS,),
    owner_job="pipelines.experiments",
    description="Per experiment and variant, the impressions shown on ds and what shoppers "
    "did with them (views, carts, purchases credited within the attribution window): rates "
    "with 95% intervals, difference and two-sided p-value against the control.",
)


ALL_TABLES = (
    BRONZE_EVENTS,
    BRONZE_ITEMS,
    SILVER_EVENTS,
    QUARANTINE_EVENTS,
    SILVER_ITEMS,
    BRONZE_IMPRESSIONS,
    SILVER_IMPRESSIONS,
    GOLD_USER_ITEM_STRENGTH,
    GOLD_ITEM_POPULARITY,
    GOLD_ITEM_CATALOG,
    GOLD_USER_PROFILE,
    USER_INDEX,
    ITEM_INDEX,
    GOLD_ITEM_CF_NEIGHBOURS,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_ITEM_CONTENT_TERMS,
    GOLD_EXPERIMENT_RESULTS,
    ERASURE_LEDGER,
)
