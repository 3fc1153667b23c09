"""Streaming job: event log -> real-time features in Redis + bronze, until stopped.

    recolake streaming                     # == python -m pipelines.streaming
    recolake streaming --available-now     # process what is in the log, then stop

Reads the event log the API writes (recolake.eventlog): the landing directory (file source,
JSON lines, explicit schema, watermark on event time) or the Kafka topic
(``RECOLAKE_EVENT_LOG=kafka``), with two queries, each with its own checkpoint under
``settings.stream_checkpoint_dir``:

- ``redis`` (every ``stream_trigger_seconds``): validates like silver
  (features.transforms.annotate_events, on the stream itself so it is planned once;
  anonymous session events allowed) and merges the
  valid events into the Redis documents of recolake.redis_layout (recent and affinity per
  user key and per session subject, trending). Every new document is computed from the
  previous one and the batch, then all are written with the batch marker in one MULTI/EXEC:
  a replayed batch finds its marker and writes nothing. Event ids already counted
  (``stream_seen``) are skipped, so a client retry is counted once.
- ``lake`` (every ``stream_lake_trigger_seconds``): appends the raw events to bronze
  (source_format 'api', so the nightly silver sees them) and the rejected ones, with their
  reason, to the quarantine, with Delta's idempotent writes (txnAppId = query id,
  txnVersion = batch id): a replayed batch is not appended twice.

Killed at any point (SIGKILL) and restarted, each query replays its unfinished batch with the
same input, so nothing is lost or counted twice.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from features import columns as c
from features import streaming as fs
from features.tables import BRONZE_EVENTS, GOLD_ITEM_CATALOG, QUARANTINE_EVENTS, LakeTable
from features.transforms import SilverSplit, parse_timestamp, valid_events
from pipelines.common import configure_logging, session_and_settings
from recolake.redis_layout import RedisLayout
from recolake.settings import Settings

log = logging.getLogger("recolake.streaming")
SOURCE_FILE_COL = "_source_file"


def read_event_log(spark: SparkSession, settings: Settings) -> DataFrame:
    """The event log as a stream of event-log rows (strings) plus where each came from, with
    a watermark on event time."""
    if settings.event_log == "kafka":
        raw = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
            .option("subscribe", settings.kafka_topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", settings.stream_max_files_per_trigger * 100)
            .load()
        )
        events = raw.select(
            F.from_json(F.col("value").cast("string"), fs.EVENT_LOG_SCHEMA).alias("e"),
            F.format_string("kafka:%s/%d@%d", "topic", "partition", "offset").alias(
                SOURCE_FILE_COL
            ),
        ).select("e.*", SOURCE_FILE_COL)
    else:
        Path(settings.landing_dir).mkdir(parents=True, exist_ok=True)
        events = (
            spark.readStream.format("json")
            .schema(fs.EVENT_LOG_SCHEMA)
            .option("maxFilesPerTrigger", settings.stream_max_files_per_trigger)
            .option("mode", "PERMISSIVE")
            .load(settings.landing_dir)
            .select("*", F.col("_metadata.file_path").alias(SOURCE_FILE_COL))
        )
    return events.withColumn("_event_ts", parse_timestamp(F.col(c.TIMESTAMP))).withWatermark(
        "_event_ts", settings.stream_watermark
    )


class _Writer:
    """A foreachBatch function and what it keeps between batches."""

    def __init__(self, spark: SparkSession, settings: Settings, checkpoint: str) -> None:
        self.spark = spark
        self.settings = settings
        self.checkpoint = checkpoint
        self.key = settings.require_pseudonymisation_key()
        self._query_id: str | None = None

    def prepare(self, events: DataFrame) -> DataFrame:
        """What the query streams into the writer: the event log rows as they are."""
        return events

    def query_id(self) -> str:
        """The streaming query's id, stable across restarts from the same checkpoint (so a
        fresh checkpoint, whose batch ids start at 0 again, is not taken for a replay)."""
        if self._query_id is None:
            self._query_id = json.loads((Path(self.checkpoint) / "metadata").read_text())["id"]
        return self._query_id


class LakeWriter(_Writer):
    """Raw events to bronze, rejected ones to the quarantine, idempotently per batch."""

    def validate(self, batch: DataFrame, now: datetime) -> tuple[DataFrame, SilverSplit]:
        bronze = fs.api_events_to_bronze(batch, now.date(), F.col(SOURCE_FILE_COL))
        split = fs.validate_api_events(
            bronze,
            event_types=self.settings.event_weights,
            key=self.key,
            latest_allowed=now + timedelta(seconds=self.settings.events_max_future_seconds),
        )
        return bronze, split

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        batch = batch.persist()
        try:
            bronze, split = self.validate(batch, datetime.now(UTC))
            self.append(BRONZE_EVENTS, bronze, batch_id)
            quarantined = split.quarantined.persist()
            if not quarantined.isEmpty():
                self.append(QUARANTINE_EVENTS, quarantined, batch_id)
                reasons = quarantined.groupBy(c.REASON).count().collect()
                log.warning(
                    "batch %d: quarantined %s",
                    batch_id,
                    {r[c.REASON]: r["count"] for r in reasons},
                )
            quarantined.unpersist()
            log.info("lake batch %d: in %.3fs", batch_id, time.perf_counter() - started)
        finally:
            batch.unpersist()

    def append(self, table: LakeTable, df: DataFrame, batch_id: int) -> None:
        """Append; Delta skips a (txnAppId, txnVersion) it has already committed."""
        (
            table.conform(df)
            .write.format("delta")
            .mode("append")
            .partitionBy(*table.partition_by)
            .option("txnAppId", f"recolake-streaming-{table.name}-{self.query_id()}")
            .option("txnVersion", batch_id)
            .save(table.path(self.settings))
        )


class RedisWriter(_Writer):
    """Valid events merged into the real-time documents in Redis."""

    def __init__(self, spark: SparkSession, settings: Settings, checkpoint: str) -> None:
        super().__init__(spark, settings, checkpoint)
        self.layout = RedisLayout(settings.redis_namespace)
        self.redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self._categories: dict[str, str] | None = None
        self._categories_loaded = 0.0

    def categories(self) -> dict[str, str]:
        """item_id -> category from the latest gold.item_catalog, reloaded every
        ``catalog_refresh_seconds``. Held in the driver, which merges each batch in Python
        anyway: a lookup there costs nothing per batch, where a join in Spark cost a broadcast
        job per micro-batch (~0.15 s). About 150 B per item (1M items: ~150 MB)."""
        stale = time.monotonic() - self._categories_loaded > self.settings.catalog_refresh_seconds
        if self._categories is None or stale:
            categories: dict[str, str] = {}
            if GOLD_ITEM_CATALOG.exists(self.spark, self.settings):
                catalog = GOLD_ITEM_CATALOG.read(self.spark, self.settings)
                latest = catalog.agg(F.max(c.DS)).first()[0]
                rows = (
                    catalog.where(F.col(c.DS) == F.lit(latest))
                    .where(F.col(c.CATEGORY).isNotNull())
                    .select(c.ITEM_ID, c.CATEGORY)
                    .toLocalIterator()
                )
                names: dict[str, str] = {}  # one string object per category name
                for row in rows:
                    category = row[c.CATEGORY]
                    categories[row[c.ITEM_ID]] = names.setdefault(category, category)
            self._categories = categories
            self._categories_loaded = time.monotonic()
        return self._categories

    def prepare(self, events: DataFrame) -> DataFrame:
        """Validation and the subject fan-out on the stream itself, so Spark plans them once
        for the query: built per micro-batch in Python they took most of each batch's time
        (benchmarks/freshness.py). Rejected events are the lake query's business."""
        bronze = fs.api_events_to_bronze(events, F.current_date(), F.col(SOURCE_FILE_COL))
        annotated = fs.annotate_api_events(
            bronze,
            event_types=self.settings.event_weights,
            key=self.key,
            latest_allowed=F.timestamp_add(
                "SECOND", F.lit(self.settings.events_max_future_seconds), F.current_timestamp()
            ),
        )
        return fs.realtime_events(
            valid_events(annotated), key=self.key, weights=self.settings.event_weights
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        events = batch.collect()
        written = self.write_redis(batch_id, events, time.time())
        log.info(
            "redis batch %d: %d subject-event(s) %s in %.3fs",
            batch_id,
            len(events),
            "written" if written else "already written (replay)",
            time.perf_counter() - started,
        )

    def write_redis(self, batch_id: int, rows: Sequence[Any], now: float) -> bool:
        """Merge the batch (rows of features.streaming.realtime_events) into every touched
        document and write them all, plus the batch marker, in one transaction; an event id
        repeated within the batch counts once. False when the batch had already been
        written."""
        s, layout = self.settings, self.layout
        marker = layout.stream_batch(batch_id, self.query_id())
        if self.redis.exists(marker):
            return False
        unique = {r[fs.SUBJECT] + "\0" + r[c.EVENT_ID]: r for r in rows}.values()
        event_ids = sorted({r[c.EVENT_ID] for r in unique})
        seen_flags = self.redis.mget([layout.stream_seen(e) for e in event_ids]) if unique else []
        seen = {e for e, flag in zip(event_ids, seen_flags, strict=True) if flag}
        categories = self.categories()
        by_subject: dict[str, list[fs.Event]] = defaultdict(list)
        for r in unique:
            if r[c.EVENT_ID] in seen:
                continue
            by_subject[r[fs.SUBJECT]].append(
                fs.Event(
                    r[c.EVENT_ID],
                    r[c.ITEM_ID],
                    r[c.EVENT_TYPE],
                    float(r[fs.TS]),
                    categories.get(r[c.ITEM_ID]),
                    float(r[fs.WEIGHT]),
                )
            )
        subjects = sorted(by_subject)
        keys = [k for sub in subjects for k in (layout.recent(sub), layout.affinity(sub))]
        current = self.redis.mget([*keys, layout.trending_state]) if keys else [None]
        pipe = self.redis.pipeline(transaction=True)
        for i, subject in enumerate(subjects):
            recent_doc, affinity_doc = current[2 * i], current[2 * i + 1]
            events = by_subject[subject]
            recent = fs.merge_recent(json.loads(recent_doc or "[]"), events, s.recent_n)
            affinity = fs.merge_affinity(
                json.loads(affinity_doc) if affinity_doc else None,
                events,
                as_of=now,
                half_life_seconds=s.affinity_half_life_hours * 3600,
                session_gap_seconds=s.session_window_minutes * 60,
            )
            pipe.set(layout.recent(subject), json.dumps(recent, separators=(",", ":")))
            pipe.set(layout.affinity(subject), json.dumps(affinity, separators=(",", ":")))
        all_events = [e for sub in subjects for e in by_subject[sub]]
        distinct = {e.event_id: e for e in all_events}.values()  # user + session rows: once
        state = fs.merge_trending(
            json.loads(current[-1]) if current[-1] else None,
            distinct,
            now=now,
            window_seconds=s.trending_window_minutes * 60,
        )
        pipe.set(layout.trending_state, json.dumps(state, separators=(",", ":")))
        pipe.set(
            layout.trending,
            json.dumps(fs.trending_list(state, s.trending_top_n), separators=(",", ":")),
        )
        for event_id in {e.event_id for e in all_events}:
            pipe.set(layout.stream_seen(event_id), 1, ex=s.stream_dedupe_ttl_seconds)
        pipe.set(marker, int(now), ex=s.stream_dedupe_ttl_seconds)
        pipe.execute()
        return True


def start(
    spark: SparkSession, settings: Settings, *, available_now: bool = False
) -> list[StreamingQuery]:
    """Start the two queries over the event log, each with its own checkpoint: Redis (every
    ``stream_trigger_seconds``: freshness) and the lake (every ``stream_lake_trigger_seconds``:
    fewer, larger Delta commits, and never in the way of the Redis path)."""
    # Fixed in the checkpoint at the first run: small, the micro-batches are small.
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.stream_shuffle_partitions))
    root = settings.stream_checkpoint_dir.rstrip("/")
    queries = []
    for name, writer_class, seconds in (
        ("redis", RedisWriter, settings.stream_trigger_seconds),
        ("lake", LakeWriter, settings.stream_lake_trigger_seconds),
    ):
        checkpoint = f"{root}/{name}"
        writer = writer_class(spark, settings, checkpoint)
        stream = (
            writer.prepare(read_event_log(spark, settings))
            .writeStream.foreachBatch(writer)
            .option("checkpointLocation", checkpoint)
            .queryName(f"recolake-streaming-{name}")
        )
        if available_now:
            stream = stream.trigger(availableNow=True)
        else:
            stream = stream.trigger(processingTime=f"{seconds} seconds")
        queries.append(stream.start())
    return queries


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="recolake streaming", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process everything in the event log, then stop (backfill, tests)",
    )
    configure_logging()
    args = parser.parse_args(argv)
    spark, settings = session_and_settings("recolake-streaming", spark, settings)
    queries = start(spark, settings, available_now=args.available_now)
    log.info(
        "streaming %s -> redis + bronze, checkpoints under %s",
        settings.landing_dir if settings.event_log == "local" else settings.kafka_topic,
        settings.stream_checkpoint_dir,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    while all(q.isActive for q in queries) and not stop.is_set():
        queries[0].awaitTermination(0.5)
    if args.available_now:  # each stops by itself once the log is drained
        for query in queries:
            query.awaitTermination()
    for query in queries:
        if query.isActive:
            query.stop()
    failed = [f"{q.name}: {q.exception()}" for q in queries if q.exception() is not None]
    if failed:
        raise SystemExit("streaming query failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
