"""RECOLAKE_EVENT_LOG=kafka end to end: POST /v1/events -> topic on a real broker -> the
streaming job's Kafka source (spark-sql-kafka from ./jars) -> Redis features + bronze,
exactly once, and again after a restart from the checkpoints (only the new events); and the
supervisor's lag check over the topic (committed checkpoint offsets vs the broker's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from pyspark.sql import functions as F

from features import columns as c
from features.tables import BRONZE_EVENTS, GOLD_ITEM_CATALOG, QUARANTINE_EVENTS
from pipelines import streaming
from recolake import stream_supervisor as sup
from recolake.onlinestore import KeyLayout, session_subject, user_subject
from recolake.privacy import pseudonymise
from recolake.settings import PROJECT_ROOT
from tests.conftest import TEST_KEY, make_settings

KEY = TEST_KEY.encode()
LAYOUT = KeyLayout("recolake")
AUTH = {"Authorization": "Bearer tok"}


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def recent_ids(redis_client, subject: str) -> list[str]:
    payload = redis_client.get(LAYOUT.recent(subject))
    return [e["event_id"] for e in json.loads(payload)] if payload else []


def run_available_now(spark, settings) -> None:
    """The job with --available-now, in this process: both queries drain the topic, then
    stop."""
    queries = streaming.start(spark, settings, available_now=True)
    for query in queries:
        query.awaitTermination(180)
        assert not query.isActive, f"{query.name} still running after 180 s"
        assert query.exception() is None, query.exception()


def run_cli_available_now(settings, tmp_path) -> None:
    """`python -m pipelines.streaming --available-now` configured the way an operator does
    it: RECOLAKE_EVENT_LOG=kafka and friends in the environment."""
    env = {
        **os.environ,
        "RECOLAKE_EVENT_LOG": "kafka",
        "RECOLAKE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RECOLAKE_KAFKA_TOPIC": settings.kafka_topic,
        "RECOLAKE_LAKE_ROOT": settings.lake_root,
        "RECOLAKE_REDIS_URL": settings.redis_url,
        "RECOLAKE_PSEUDONYMISATION_KEY": TEST_KEY,
        "RECOLAKE_STREAM_CHECKPOINT_DIR": settings.stream_checkpoint_dir,
        "RECOLAKE_SPARK_DRIVER_MEMORY": "1g",
        "RECOLAKE_SPARK_SHUFFLE_PARTITIONS": "2",
    }
    log = tmp_path / "streaming.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.streaming", "--available-now"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    assert done.returncode == 0, log.read_text()[-3000:]


# --------------------------------------------------------------------------- the lag check


def offset_log(checkpoint, batch: int, sources: list[dict | None]) -> None:
    """<checkpoint>/offsets/<batch> as Spark writes it: version, metadata, one line per
    source ('-' for a source without offsets)."""
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    lines = ["v1", json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 0, "conf": {}})]
    lines += [json.dumps(s) if s is not None else "-" for s in sources]
    (checkpoint / "offsets" / str(batch)).write_text("\n".join(lines))


def commit(checkpoint, batch: int) -> None:
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_kafka_offsets_of_the_last_committed_batch_and_the_backlog(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert sup.kafka_committed_offsets(ckpt, "events") == {}  # never started
    offset_log(ckpt, 0, [{"events": {"0": 5, "1": 2}}])
    assert sup.kafka_committed_offsets(ckpt, "events") == {}  # planned, not committed
    commit(ckpt, 0)
    offset_log(ckpt, 1, [None, {"other": {"0": 1}}, {"events": {"0": 9, "1": 4}}])
    assert sup.kafka_committed_offsets(ckpt, "events") == {0: 5, 1: 2}
    commit(ckpt, 1)
    assert sup.kafka_committed_offsets(ckpt, "events") == {0: 9, 1: 4}
    assert sup.kafka_committed_offsets(ckpt, "absent") == {}
    # (low, high) watermarks: high is the next offset the broker will write.
    watermarks = {0: (0, 9), 1: (0, 7), 2: (3, 5), 3: (0, 0)}
    assert sup.kafka_backlog({0: 9, 1: 4}, watermarks) == {1: (4, 3), 2: (3, 2)}
    # Retention deleted what the job had not read: from the low watermark on.
    assert sup.kafka_backlog({0: 2}, {0: (6, 8)}) == {0: (6, 2)}
    assert sup.kafka_backlog({0: 9}, {0: (0, 9)}) == {}


@pytest.fixture
def kafka_stream(tmp_path, redis_server, kafka_broker, kafka_topic, spark):
    settings = make_settings(
        tmp_path,
        redis_server.url,
        api_token="tok",
        event_log="kafka",
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        kafka_topic=kafka_topic,
        stream_checkpoint_dir=str(tmp_path / "checkpoint"),
    )
    catalog = spark.createDataFrame(
        [(date(2024, 1, 1), "shoe-1", "Red shoe", "shoes", 10.0, True, None)],
        GOLD_ITEM_CATALOG.schema,
    )
    GOLD_ITEM_CATALOG.overwrite(catalog, settings)
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    yield settings
    spark.conf.set("spark.sql.shuffle.partitions", partitions)  # start() sets it


@pytest.mark.kafka
@pytest.mark.spark
@pytest.mark.redis
@pytest.mark.slow
def test_kafka_events_to_redis_and_bronze_exactly_once_across_restart(
    kafka_stream, kafka_broker, spark, redis_client, kafka_api, tmp_path
):
    from confluent_kafka import Producer

    settings = kafka_stream
    api = kafka_api(settings)
    now = datetime.now(UTC)
    first = {
        "event_id": "first",
        "user_id": "alice",
        "session_id": "sess",
        "item_id": "shoe-1",
        "event_type": "add_to_cart",
        "timestamp": iso(now),
    }
    anonymous = {**first, "event_id": "anon", "user_id": None, "session_id": "anon-sess"}
    posts = [first, first, anonymous]  # `first` twice: a client retry
    posts += [
        {**first, "event_id": f"v{n}", "item_id": f"item-{n}", "event_type": "view"}
        | {"timestamp": iso(now + timedelta(seconds=1 + n))}
        for n in range(3)
    ]
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for event in posts:
            body = {k: v for k, v in event.items() if v is not None}
            assert client.post("/v1/events", json=body, headers=AUTH).status_code == 202
    # What the API never writes but a topic can hold: not JSON, and an unknown event type.
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(settings.kafka_topic, key=b"junk", value=b"not json {")
    producer.produce(
        settings.kafka_topic,
        key=b"odd",
        value=json.dumps({**first, "event_id": "odd", "event_type": "teleport"}).encode(),
    )
    assert producer.flush(10) == 0

    run_available_now(spark, settings)

    alice = user_subject(pseudonymise("alice", KEY))
    assert recent_ids(redis_client, alice) == ["v2", "v1", "v0", "first"]
    assert recent_ids(redis_client, session_subject("sess", KEY)) == ["v2", "v1", "v0", "first"]
    assert recent_ids(redis_client, session_subject("anon-sess", KEY)) == ["anon"]
    # The supervisor's check (Kafka mode): both queries read the topic to its end.
    assert sup.check_lag(settings) == {"redis": 0.0, "lake": 0.0}
    affinity = json.loads(redis_client.get(LAYOUT.affinity(alice)))
    assert affinity["categories"] == {"shoes": pytest.approx(3.0, rel=1e-3)}  # retry: once
    assert affinity["session_categories"] == {"shoes": 1}
    assert json.loads(redis_client.get(LAYOUT.trending))[0][0] == "shoe-1"

    def bronze_counts() -> dict[str | None, int]:
        bronze = BRONZE_EVENTS.read(spark, settings).where(F.col(c.SOURCE_FORMAT) == "api")
        return {r[c.EVENT_ID]: r["count"] for r in bronze.groupBy(c.EVENT_ID).count().collect()}

    # Bronze keeps every message once, the retry as received (silver dedupes by event_id);
    # the junk message is a row of nulls there, found by its topic/partition@offset.
    assert bronze_counts() == {"first": 2, "anon": 1, "v0": 1, "v1": 1, "v2": 1, "odd": 1, None: 1}
    sources = [r[c.SOURCE_FILE] for r in BRONZE_EVENTS.read(spark, settings).collect()]
    assert all(s.startswith(f"kafka:{settings.kafka_topic}/") for s in sources), sources[:3]
    assert len(set(sources)) == len(sources)  # partition@offset: one per message
    reasons = sorted(
        (r[c.EVENT_ID] or "", r[c.REASON])
        for r in QUARANTINE_EVENTS.read(spark, settings).collect()
    )
    assert reasons == [("", "missing_user_id"), ("odd", "unknown_event_type")]

    # Restart from the checkpoints, as a new process configured by environment variables:
    # only what arrived since is read, nothing twice.
    later = {**first, "event_id": "later", "timestamp": iso(now + timedelta(seconds=10))}
    assert httpx.post(f"{api.url}/v1/events", json=later, headers=AUTH).status_code == 202
    posted = time.time()
    # Not read yet: both queries lag by the age of that message; far past the limit, alert.
    lags = sup.query_lags(settings)
    assert set(lags) == {"redis", "lake"}
    assert all(0.0 < lag < time.time() - posted + 5 for lag in lags.values()), lags
    with pytest.raises(sup.StreamBehindError, match=r"behind: lake query 36\d\d s, redis"):
        sup.check_lag(settings, now=posted + 3600)
    run_cli_available_now(settings, tmp_path)
    assert sup.query_lags(settings) == {"redis": 0.0, "lake": 0.0}
    assert recent_ids(redis_client, alice) == ["later", "v2", "v1", "v0", "first"]
    affinity = json.loads(redis_client.get(LAYOUT.affinity(alice)))
    assert affinity["session_categories"] == {"shoes": 2}
    counts = bronze_counts()
    assert counts.pop("later") == 1
    assert counts == {"first": 2, "anon": 1, "v0": 1, "v1": 1, "v2": 1, "odd": 1, None: 1}
    assert QUARANTINE_EVENTS.read(spark, settings).count() == 2
