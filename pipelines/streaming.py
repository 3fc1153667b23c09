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
  valid events into the real-time documents (recent and affinity per user subject and per
  session subject, trending) through recolake.onlinestore.StreamWriter: pipelined writes, no
  cross-slot transaction, so it runs against a Redis Cluster (``redis+cluster://``) too, and
  exactly once under a crash mid-batch (each document records the last batch applied to it;
  the batch marker is written last). An event already counted (per primary subject and
  event id) is skipped, so a client retry is counted once and changes nothing.
- ``lake`` (every ``stream_lake_trigger_seconds``): appends the raw events to bronze
  (source_format 'api', so the nightly silver sees them) and the rejected ones, with their
  reason, to the quarantine, with Delta's idempotent writes (txnAppId = query id,
  txnVersion = batch id): a replayed batch is not appended twice.

The log also carries the API's impression records (``"record": "impression"``,
recolake.eventlog.Impression): the lake query appends them to bronze.impressions (the same
idempotent way; silver builds silver.impressions from there), the Redis query drops them;
they never become events or quarantine rows. Its catalog item records (``"record": "item"``,
PUT /v1/items) go the same way to bronze.items (source_format 'api'), where the nightly's
silver takes the latest row per item.

Killed at any point (SIGKILL) and restarted, each query replays its unfinished batch with the
same input, so nothing is lost or counted twice.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from redis.exceptions import RedisError

from features import columns as c
from features import streaming as fs
from features.tables import (
    BRONZE_EVENTS,
    BRONZE_IMPRESSIONS,
    BRONZE_ITEMS,
    GOLD_ITEM_CATALOG,
    QUARANTINE_EVENTS,
    LakeTable,
)
from features.transforms import SilverSplit, parse_timestamp, valid_events
from pipelines.common import parse, session_and_settings
from recolake.onlinestore import KeyLayout, RedisTimeouts, connect
from recolake.onlinestore.stream import TS, StreamProgress, StreamWriter, write_progress
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
            F.from_json(F.col("value").cast("string"), fs.LOG_RECORD_SCHEMA).alias("e"),
            F.format_string("kafka:%s/%d@%d", "topic", "partition", "offset").alias(
                SOURCE_FILE_COL
            ),
        ).select("e.*", SOURCE_FILE_COL)
    else:
        Path(settings.landing_dir).mkdir(parents=True, exist_ok=True)
        events = (
            spark.readStream.format("json")
            .schema(fs.LOG_RECORD_SCHEMA)
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
        self.name = Path(checkpoint).name  # the query's name in start(): redis, lake
        self._progress_redis = None

    def prepare(self, events: DataFrame) -> DataFrame:
        """What the query streams into the writer: the event log rows as they are."""
        return events

    def query_id(self) -> str:
        """The streaming query's id, stable across restarts from the same checkpoint (so a
        fresh checkpoint, whose batch ids start at 0 again, is not taken for a replay)."""
        if self._query_id is None:
            self._query_id = json.loads((Path(self.checkpoint) / "metadata").read_text())["id"]
        return self._query_id

    def report(self, batch_id: int, started: float, rows: int, newest: float | None) -> None:
        """The batch's duration, end and input lag into Redis for the API's /metrics
        (recolake.onlinestore.stream.StreamProgress); best effort: the batch is done."""
        progress = StreamProgress(
            batch_id, time.perf_counter() - started, time.time(), rows, newest
        )
        try:
            if self._progress_redis is None:  # short timeouts: never holds a lake batch up
                self._progress_redis = connect(
                    self.settings.redis_url, RedisTimeouts.for_api(self.settings)
                )
            layout = KeyLayout(self.settings.redis_namespace)
            write_progress(self._progress_redis, layout, self.name, progress)
        except (RedisError, OSError) as exc:
            log.warning("%s batch %d: progress not written: %s", self.name, batch_id, exc)


class LakeWriter(_Writer):
    """Raw events to bronze, rejected ones to the quarantine, idempotently per batch."""

    def validate(self, batch: DataFrame, now: datetime) -> tuple[DataFrame, SilverSplit]:
        events = fs.event_records(batch)
        bronze = fs.api_events_to_bronze(events, now.date(), F.col(SOURCE_FILE_COL))
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
            now = datetime.now(UTC)
            bronze, split = self.validate(batch, now)
            self.append(BRONZE_EVENTS, bronze, batch_id)
            impressions = fs.api_impressions_to_bronze(
                fs.impression_records(batch), now.date(), F.col(SOURCE_FILE_COL)
            )
            if not impressions.isEmpty():
                self.append(BRONZE_IMPRESSIONS, impressions, batch_id)
            items = fs.api_items_to_bronze(
                fs.item_records(batch), now.date(), F.col(SOURCE_FILE_COL)
            )
            if not items.isEmpty():
                self.append(BRONZE_ITEMS, items, batch_id)
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
            ts = F.col("_event_ts")
            rows, newest = batch.agg(
                F.count(F.lit(1)), F.max(F.when(ts <= F.current_timestamp(), ts).cast("double"))
            ).first()
            log.info("lake batch %d: in %.3fs", batch_id, time.perf_counter() - started)
            self.report(batch_id, started, rows, newest)
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
            .option("mergeSchema", "true")  # declared columns added since (tables.py)
            .save(table.path(self.settings))
        )


class RedisWriter(_Writer):
    """Valid events merged into the real-time documents in Redis."""

    def __init__(self, spark: SparkSession, settings: Settings, checkpoint: str) -> None:
        super().__init__(spark, settings, checkpoint)
        self.redis = connect(settings.redis_url, RedisTimeouts.for_jobs(settings))
        self.writer = StreamWriter.from_settings(self.redis, settings)
        self._progress_redis = self.redis  # its batches wait on this client anyway
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
        bronze = fs.api_events_to_bronze(
            fs.event_records(events), F.current_date(), F.col(SOURCE_FILE_COL)
        )
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
        rows = [r.asDict() for r in batch.collect()]
        outcome = self.writer.write_batch(
            self.query_id(), batch_id, rows, time.time(), self.categories()
        )
        if outcome.replay_of_complete_batch:
            what = "already written (replay)"
        else:
            what = f"{outcome.new_events} new, {outcome.already_seen} seen, {outcome.writes} writes"
        log.info(
            "redis batch %d: %d subject-event(s), %s in %.3fs",
            batch_id,
            len(rows),
            what,
            time.perf_counter() - started,
        )
        self.report(batch_id, started, len(rows), max((r[TS] for r in rows), default=None))


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
    args = parse(parser, argv)
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
