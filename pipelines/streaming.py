"""Streaming job: event log -> real-time features in Redis + bronze, until stopped.

    recolake streaming                     # == python -m pipelines.streaming
    recolake streaming --available-now     # process what is in the log, then stop

Reads the event log the API writes (recolake.eventlog): the landing directory (file source,
JSON lines, explicit schema) or the Kafka topic (``RECOLAKE_EVENT_LOG=kafka``). Per
micro-batch (foreachBatch):

1. validates like silver (features.transforms.validate_events, anonymous events allowed);
2. merges the valid events into the Redis documents of recolake.redis_layout (recent,
   affinity per user key and per session subject, trending): every new document is computed
   from the previous one and the batch, then all are written with the batch marker in one
   MULTI/EXEC; a replayed batch finds its marker and writes nothing. Event ids already counted
   (``stream_seen``) are skipped, so a client retry is counted once;
3. appends the raw events to bronze (source_format 'api') and the rejected ones to the
   quarantine, both with Delta's idempotent writes (txnAppId = query id, txnVersion = batch
   id): a replayed batch is not appended twice.

Checkpointed (``settings.stream_checkpoint_dir``): killed at any point and restarted, it
replays the unfinished batch with the same files, so nothing is lost or counted twice.
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
from features.transforms import parse_timestamp
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


class BatchWriter:
    """The foreachBatch function, with what it keeps between batches (Redis client, the item
    categories, the query id)."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.key = settings.require_pseudonymisation_key()
        self.layout = RedisLayout(settings.redis_namespace)
        self.redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self._categories: DataFrame | None = None
        self._categories_loaded = 0.0
        self._query_id: str | None = None

    def query_id(self) -> str:
        """The streaming query's id, stable across restarts from the same checkpoint."""
        if self._query_id is None:
            metadata = Path(self.settings.stream_checkpoint_dir) / "metadata"
            self._query_id = json.loads(metadata.read_text())["id"]
        return self._query_id

    def categories(self) -> DataFrame:
        """item_id -> category from the latest gold.item_catalog (reloaded periodically)."""
        stale = time.monotonic() - self._categories_loaded > self.settings.catalog_refresh_seconds
        if self._categories is None or stale:
            if self._categories is not None:
                self._categories.unpersist()
            if GOLD_ITEM_CATALOG.exists(self.spark, self.settings):
                catalog = GOLD_ITEM_CATALOG.read(self.spark, self.settings)
                latest = catalog.agg(F.max(c.DS)).first()[0]
                catalog = catalog.where(F.col(c.DS) == F.lit(latest))
            else:
                catalog = self.spark.createDataFrame([], GOLD_ITEM_CATALOG.schema)
            self._categories = (
                catalog.select(c.ITEM_ID, c.CATEGORY).where(F.col(c.CATEGORY).isNotNull()).cache()
            )
            self._categories_loaded = time.monotonic()
        return self._categories

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        now = datetime.now(UTC)
        batch = batch.persist()
        try:
            bronze = fs.api_events_to_bronze(batch, now.date(), F.col(SOURCE_FILE_COL))
            split = fs.validate_api_events(
                bronze,
                event_types=self.settings.event_weights,
                key=self.key,
                latest_allowed=now + timedelta(seconds=self.settings.events_max_future_seconds),
            )
            events = fs.subject_events(
                split.valid,
                self.categories(),
                key=self.key,
                weights=self.settings.event_weights,
            ).collect()
            written = self.write_redis(batch_id, events, now.timestamp())
            redis_done = time.perf_counter()
            n_bronze = self.append(BRONZE_EVENTS, bronze, batch_id)
            quarantined = split.quarantined.persist()
            n_bad = self.append(QUARANTINE_EVENTS, quarantined, batch_id)
            if n_bad:
                reasons = quarantined.groupBy(c.REASON).count().collect()
                log.warning(
                    "batch %d: %d event(s) quarantined: %s",
                    batch_id,
                    n_bad,
                    {r[c.REASON]: r["count"] for r in reasons},
                )
            quarantined.unpersist()
            log.info(
                "batch %d: %d event(s) to bronze, %d subject-event(s), redis %s in %.3fs, "
                "total %.3fs",
                batch_id,
                n_bronze,
                len(events),
                "written" if written else "already written (replay)",
                redis_done - started,
                time.perf_counter() - started,
            )
        finally:
            batch.unpersist()

    def append(self, table: LakeTable, df: DataFrame, batch_id: int) -> int:
        """Append idempotently per batch (Delta skips a txnVersion it has committed)."""
        rows = df.count()
        if rows:
            (
                table.conform(df)
                .write.format("delta")
                .mode("append")
                .partitionBy(*table.partition_by)
                .option("txnAppId", f"recolake-streaming-{table.name}-{self.query_id()}")
                .option("txnVersion", batch_id)
                .save(table.path(self.settings))
            )
        return rows

    def write_redis(self, batch_id: int, rows: Sequence[Any], now: float) -> bool:
        """Merge the batch into every touched document and write them all, plus the batch
        marker, in one transaction. False when the batch had already been written."""
        s, layout = self.settings, self.layout
        marker = layout.stream_batch(batch_id, self.query_id())
        if self.redis.exists(marker):
            return False
        unique = {r[fs.SUBJECT] + "\0" + r[c.EVENT_ID]: r for r in rows}.values()
        event_ids = sorted({r[c.EVENT_ID] for r in unique})
        seen_flags = self.redis.mget([layout.stream_seen(e) for e in event_ids]) if unique else []
        seen = {e for e, flag in zip(event_ids, seen_flags, strict=True) if flag}
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
                    r[c.CATEGORY],
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
) -> StreamingQuery:
    """Start the query; the caller waits on it."""
    # Fixed in the checkpoint at the first run: small, the micro-batches are small.
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.stream_shuffle_partitions))
    writer = BatchWriter(spark, settings)
    stream = read_event_log(spark, settings).writeStream.foreachBatch(writer)
    stream = stream.option("checkpointLocation", settings.stream_checkpoint_dir)
    if available_now:
        stream = stream.trigger(availableNow=True)
    else:
        stream = stream.trigger(processingTime=f"{settings.stream_trigger_seconds} seconds")
    return stream.queryName("recolake-streaming").start()


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process everything in the event log, then stop (backfill, tests)",
    )
    configure_logging()
    args = parser.parse_args(argv)
    spark, settings = session_and_settings("recolake-streaming", spark, settings)
    query = start(spark, settings, available_now=args.available_now)
    log.info(
        "streaming %s -> redis + bronze, checkpoint %s",
        settings.landing_dir if settings.event_log == "local" else settings.kafka_topic,
        settings.stream_checkpoint_dir,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    while query.isActive and not stop.is_set():
        query.awaitTermination(1)
    if query.isActive:
        query.stop()
    if query.exception() is not None:
        raise SystemExit(f"streaming query failed: {query.exception()}")


if __name__ == "__main__":
    main()
