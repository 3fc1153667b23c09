"""The streaming job: pure merges, the Spark transforms on tiny frames, and one real run as a
subprocess (API -> landing dir -> Spark -> Redis + bronze) that kills itself (SIGKILL, fault
injection) inside a batch and is restarted from its checkpoint: every counter exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import columns as c
from features import streaming as fs
from features.tables import BRONZE_EVENTS, GOLD_ITEM_CATALOG, QUARANTINE_EVENTS
from recolake import onlinestore
from recolake.eventlog import LocalEventLog
from recolake.onlinestore import KeyLayout, user_subject
from recolake.onlinestore.stream import decode_progress
from recolake.privacy import pseudonymise
from recolake.settings import PROJECT_ROOT
from tests.conftest import TEST_KEY, make_settings

KEY = TEST_KEY.encode()
LAYOUT = KeyLayout("recolake")


def session_subject(session_id: str) -> str:
    return onlinestore.session_subject(session_id, KEY)


def user(user_id: str) -> str:
    return user_subject(pseudonymise(user_id, KEY))


def ev(event_id: str, item: str, ts: float, category: str | None = "c", weight: float = 1.0):
    return fs.Event(event_id, item, "view", ts, category, weight)


# --------------------------------------------------------------------------- pure merges


def test_merge_recent_newest_first_bounded_and_without_repeats():
    previous = fs.merge_recent([], [ev("a", "i1", 10), ev("b", "i2", 20)], 3)
    assert [e["item_id"] for e in previous] == ["i2", "i1"]
    merged = fs.merge_recent(previous, [ev("a", "i1", 10), ev("c", "i3", 30), ev("d", "i4", 5)], 3)
    assert [e["event_id"] for e in merged] == ["c", "b", "a"]  # 'a' once, 'd' fell off
    assert fs.merge_recent(merged, [ev("c", "i3", 30)], 3) == merged  # replay: same value


def test_merge_affinity_decays_and_session_window_resets():
    day = 86400.0
    first = fs.merge_affinity(
        None,
        [ev("a", "i1", 0.0, "shoes", 2.0)],
        as_of=0.0,
        half_life_seconds=day,
        session_gap_seconds=1800,
    )
    assert first["items"] == {"i1": 2.0} and first["session_categories"] == {"shoes": 1}
    later = fs.merge_affinity(
        first,
        [ev("b", "i2", day, "hats", 1.0)],
        as_of=day,
        half_life_seconds=day,
        session_gap_seconds=1800,
    )
    assert later["items"] == {"i1": 1.0, "i2": 1.0}  # one half-life later: 2 -> 1
    assert later["categories"] == {"shoes": 1.0, "hats": 1.0}
    assert later["session_categories"] == {"hats": 1}  # a day's gap ended the session


def test_merge_trending_slides_the_window():
    state = fs.merge_trending(
        None, [ev("a", "old", 0.0), ev("b", "new", 3000.0)], now=3000.0, window_seconds=3600
    )
    assert fs.trending_list(state, 10) == [["new", 1.0], ["old", 1.0]]
    state = fs.merge_trending(state, [ev("c", "new", 4000.0)], now=4000.0, window_seconds=3600)
    assert fs.trending_list(state, 10) == [["new", 2.0]]  # 'old' slid out of the window


# --------------------------------------------------------------------------- Spark transforms


@pytest.mark.spark
def test_api_events_validated_and_fanned_out_to_subjects(spark):
    rows = [
        ("e1", "alice", "i1", "view", "2024-05-01T10:00:00.000Z", "s1", None, None),
        ("e2", None, "i2", "purchase", "2024-05-01T10:01:00.000Z", "s2", "2", "1.5"),
        ("e3", "bob", "i1", "teleport", "2024-05-01T10:02:00.000Z", None, None, None),
        ("e4", None, "i1", "view", "2024-05-01T10:03:00.000Z", None, None, None),
    ]
    raw = spark.createDataFrame(rows, fs.EVENT_LOG_SCHEMA)
    bronze = fs.api_events_to_bronze(raw, date(2024, 5, 1), F.lit("f.jsonl"))
    assert BRONZE_EVENTS.conform(bronze).count() == 4
    split = fs.validate_api_events(
        bronze, event_types={"view": 1.0, "purchase": 5.0}, key=KEY, latest_allowed=datetime.now()
    )
    reasons = {r[c.EVENT_ID]: r[c.REASON] for r in split.quarantined.collect()}
    assert reasons == {"e3": "unknown_event_type", "e4": "missing_user_id"}
    QUARANTINE_EVENTS.conform(split.quarantined)
    out = fs.realtime_events(split.valid, key=KEY, weights={"view": 1.0, "purchase": 5.0})
    got = sorted((r[fs.SUBJECT], r[fs.PRIMARY], r[c.EVENT_ID], r[fs.WEIGHT]) for r in out.collect())
    # Prefixed subjects, the session hmac the Python side computes, and the primary subject
    # (user if known, else session) that scopes the event id.
    assert got == sorted(
        [
            (user("alice"), user("alice"), "e1", 1.0),
            (session_subject("s1"), user("alice"), "e1", 1.0),
            (session_subject("s2"), session_subject("s2"), "e2", 5.0),  # anonymous
        ]
    )
    ts = {r[c.EVENT_ID]: r[fs.TS] for r in out.collect()}
    assert ts["e1"] == datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()


@pytest.mark.spark
def test_stream_side_validation_uses_the_batch_clock(spark):
    """On the stream the latest allowed time is a Column on the query's clock (planned once,
    evaluated per micro-batch), not a datetime fixed when the plan was built."""
    now = datetime.now(UTC)
    rows = [
        ("ok", "alice", "i1", "view", (now - timedelta(minutes=1)).isoformat(), None, None, None),
        ("soon", "alice", "i1", "view", (now + timedelta(minutes=4)).isoformat(), None, None, None),
        ("late", "alice", "i1", "view", (now + timedelta(minutes=6)).isoformat(), None, None, None),
        ("anon", None, "i2", "view", now.isoformat(), "s1", None, None),
    ]
    bronze = fs.api_events_to_bronze(
        spark.createDataFrame(rows, fs.EVENT_LOG_SCHEMA), F.current_date(), F.lit("f.jsonl")
    )
    annotated = fs.annotate_api_events(
        bronze,
        event_types={"view": 1.0},
        key=KEY,
        latest_allowed=F.timestamp_add("SECOND", F.lit(300), F.current_timestamp()),
    )
    reasons = {r[c.EVENT_ID]: r[c.REASON] for r in annotated.collect()}
    assert reasons == {"ok": None, "soon": None, "late": "timestamp_after_ds", "anon": None}
    keys = {r[c.EVENT_ID]: r[c.USER_KEY] for r in annotated.collect()}
    assert keys["anon"] is None and keys["ok"] == pseudonymise("alice", KEY)


@pytest.mark.spark
@pytest.mark.redis
def test_the_redis_query_writes_through_the_stream_writer_on_a_cluster_too(
    spark, store_url, tmp_path
):
    """The Redis query's whole Spark side (validation, fan-out, collect, StreamWriter) on a
    static frame, against a single node and a 3-master Cluster (no cross-slot MULTI)."""
    from pipelines.streaming import SOURCE_FILE_COL, RedisWriter

    settings = make_settings(tmp_path, store_url, stream_checkpoint_dir=str(tmp_path / "ckpt"))
    checkpoint = tmp_path / "ckpt" / "redis"
    checkpoint.mkdir(parents=True)
    (checkpoint / "metadata").write_text('{"id":"query-1"}')
    now = datetime.now(UTC)
    rows = [
        ("e1", "alice", "i1", "purchase", iso(now), "s1", None, None, "f1"),
        ("e1", "bob", "i1", "view", iso(now), None, None, None, "f1"),  # bob's own e1
        ("e2", None, "i2", "view", iso(now), "s2", None, None, "f1"),
        ("e3", "carol", "i2", "teleport", iso(now), None, None, None, "f1"),  # invalid
    ]
    source = T.StructField(SOURCE_FILE_COL, T.StringType())
    schema = T.StructType([*fs.EVENT_LOG_SCHEMA.fields, source])
    writer = RedisWriter(spark, settings, str(checkpoint))
    try:
        batch = writer.prepare(spark.createDataFrame(rows, schema))
        writer(batch, 0)
        writer(batch, 0)  # a replay of the complete batch
        writer(writer.prepare(spark.createDataFrame(rows[1:2], schema)), 1)  # a retry
        client = writer.redis
        assert json.loads(client.get(LAYOUT.trending)) == [["i1", 6.0], ["i2", 1.0]]
        assert recent_ids(client, user("alice")) == recent_ids(client, user("bob")) == ["e1"]
        assert recent_ids(client, session_subject("s1")) == ["e1"]
        assert recent_ids(client, session_subject("s2")) == ["e2"]
        assert recent_ids(client, user("carol")) == []
        # Each batch's progress for the API's /metrics, under the query's name.
        progress = decode_progress(client.hgetall(LAYOUT.stream_progress))
        assert set(progress) == {"redis"}
        last = progress["redis"]
        assert last.batch_id == 1 and last.rows == 1  # the retry: bob's e1, one subject
        assert last.newest_event_at == pytest.approx(now.timestamp(), abs=0.001)
        assert 0 < last.duration_seconds < 60 and 0 <= last.lag_seconds < 60
    finally:
        writer.redis.close()


@pytest.mark.spark
@pytest.mark.redis
def test_the_lake_query_reports_its_progress(spark, redis_server, redis_client, tmp_path):
    """The lake query's batch progress for /metrics: the log's rows, and the input lag from
    the newest event time not ahead of the clock (a far-future, quarantined event is not it)."""
    from features.transforms import parse_timestamp
    from pipelines.streaming import SOURCE_FILE_COL, LakeWriter

    settings = make_settings(
        tmp_path, redis_server.url, stream_checkpoint_dir=str(tmp_path / "ckpt")
    )
    checkpoint = tmp_path / "ckpt" / "lake"
    checkpoint.mkdir(parents=True)
    (checkpoint / "metadata").write_text('{"id":"lake-1"}')
    now = datetime.now(UTC)
    newest = now - timedelta(seconds=20)
    events = [
        ("e1", "alice", "i1", "view", iso(now - timedelta(seconds=40))),
        ("e2", "bob", "i2", "purchase", iso(newest)),
        ("e3", "carol", "i2", "view", "2999-01-01T00:00:00Z"),  # ahead of the clock
    ]
    schema = T.StructType(
        [*fs.LOG_RECORD_SCHEMA.fields, T.StructField(SOURCE_FILE_COL, T.StringType())]
    )
    keys = (c.EVENT_ID, c.USER_ID, c.ITEM_ID, c.EVENT_TYPE, c.TIMESTAMP)
    records = [{**dict(zip(keys, e, strict=True)), SOURCE_FILE_COL: "f1"} for e in events]
    rows = [tuple(r.get(f) for f in schema.fieldNames()) for r in records]
    batch = spark.createDataFrame(rows, schema).withColumn(
        "_event_ts", parse_timestamp(F.col(c.TIMESTAMP))
    )
    writer = LakeWriter(spark, settings, str(checkpoint))
    try:
        writer(batch, 0)
    finally:
        if writer._progress_redis is not None:
            writer._progress_redis.close()
    progress = decode_progress(redis_client.hgetall(LAYOUT.stream_progress))
    assert set(progress) == {"lake"}
    lake = progress["lake"]
    assert lake.batch_id == 0 and lake.rows == 3
    assert lake.newest_event_at == pytest.approx(newest.timestamp(), abs=0.001)
    assert 20 <= lake.lag_seconds < 80 and lake.duration_seconds > 0


# --------------------------------------------------------------------------- the real job


class StreamingJob:
    """`python -m pipelines.streaming` as a subprocess, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.streaming"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"streaming job exited: {self.log.read_text()[-3000:]}")


def wait_for(predicate, job: StreamingJob, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        job.check_alive()
        time.sleep(0.05)
    raise AssertionError(f"timed out; job log tail:\n{job.log.read_text()[-3000:]}")


def recent_ids(redis_client, subject: str) -> list[str]:
    payload = redis_client.get(LAYOUT.recent(subject))
    return [e["event_id"] for e in json.loads(payload)] if payload else []


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


KILL_ITEMS, KILL_FILES, KILL_PER_FILE = 10, 24, 10
KILL_TYPES = ("view", "add_to_cart", "purchase")
#: Kill the job after this many Redis writes of its first batch (4 files of 10 events for one
#: user and 3 sessions: 40 seen markers, 8 documents, 2 trending keys): after the seen markers
#: and the first documents, i.e. inside the batch, with some documents merged and some not.
KILL_AFTER_WRITES = 43


def kill_category(i: int) -> str:
    return f"cat-{i % 4}"


@pytest.fixture
def stream_env(tmp_path, redis_server, spark):
    settings = make_settings(
        tmp_path,
        redis_server.url,
        api_token="tok",
        landing_dir=str(tmp_path / "landing"),
        stream_checkpoint_dir=str(tmp_path / "checkpoint"),
        recent_n=500,
    )
    catalog = spark.createDataFrame(
        [
            (date(2024, 1, 1), "shoe-1", "Red shoe", "shoes", 10.0, True, None),
            *(
                (date(2024, 1, 1), f"item-{i}", f"Item {i}", kill_category(i), 1.0, True, None)
                for i in range(KILL_ITEMS)
            ),
        ],
        GOLD_ITEM_CATALOG.schema,
    )
    GOLD_ITEM_CATALOG.overwrite(catalog, settings)
    env = {
        **os.environ,
        "RECOLAKE_LAKE_ROOT": settings.lake_root,
        "RECOLAKE_REDIS_URL": settings.redis_url,
        "RECOLAKE_PSEUDONYMISATION_KEY": TEST_KEY,
        "RECOLAKE_LANDING_DIR": settings.landing_dir,
        "RECOLAKE_STREAM_CHECKPOINT_DIR": settings.stream_checkpoint_dir,
        "RECOLAKE_STREAM_MAX_FILES_PER_TRIGGER": "4",
        "RECOLAKE_STREAM_LAKE_TRIGGER_SECONDS": "1",
        "RECOLAKE_RECENT_N": "500",
        # No decay worth the name: affinity scores are sums of weights, so a double count shows.
        "RECOLAKE_AFFINITY_HALF_LIFE_HOURS": "1e9",
        "RECOLAKE_SPARK_DRIVER_MEMORY": "1g",
        "RECOLAKE_SPARK_SHUFFLE_PARTITIONS": "2",
    }
    job = StreamingJob(env, tmp_path / "streaming.log")
    yield settings, job
    job.stop()


def doc(redis_client, key: str):
    payload = redis_client.get(key)
    return json.loads(payload) if payload else None


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.redis
def test_api_to_redis_and_bronze_exactly_once_across_sigkill(
    stream_env, spark, redis_client, api_server_factory
):
    settings, job = stream_env
    api = api_server_factory(settings)
    job.start()
    now = datetime.now(UTC)

    # 1. POST -> Redis: recent (user and session), category affinity, trending.
    event = {
        "event_id": "first",
        "user_id": "alice",
        "session_id": "sess",
        "item_id": "shoe-1",
        "event_type": "add_to_cart",
        "timestamp": iso(now),
    }
    headers = {"Authorization": "Bearer tok"}
    assert httpx.post(f"{api.url}/v1/events", json=event, headers=headers).status_code == 202
    alice = user("alice")
    wait_for(lambda: recent_ids(redis_client, alice) == ["first"], job)
    assert recent_ids(redis_client, session_subject("sess")) == ["first"]
    affinity = doc(redis_client, LAYOUT.affinity(alice))
    assert affinity["categories"] == {"shoes": pytest.approx(3.0, rel=1e-3)}
    assert affinity["session_categories"] == {"shoes": 1}
    assert doc(redis_client, LAYOUT.trending) == [["shoe-1", 3.0]]

    # Freshness once warm: POST returned -> item in the user's recent list.
    delays = []
    for n in range(5):
        fresh = {**event, "event_id": f"fresh-{n}", "user_id": f"fresh-user-{n}"}
        assert httpx.post(f"{api.url}/v1/events", json=fresh, headers=headers).status_code == 202
        posted = time.perf_counter()
        subject = user(f"fresh-user-{n}")
        wait_for(lambda s=subject: recent_ids(redis_client, s), job, timeout=60)
        delays.append(time.perf_counter() - posted)
    print(f"POST -> redis recent: {[round(d, 3) for d in delays]} s")
    # fresh-n reuse the session "sess" but are other users' events: counted, each once.
    assert doc(redis_client, LAYOUT.trending) == [["shoe-1", 18.0]]

    # 2. A client retry (same event_id, later file), alone in its batch, changes nothing; the
    # same event_id from another user is another event.
    log = LocalEventLog(settings.landing_dir)

    def documents() -> dict:
        """Every real-time document (strings; the progress hash for /metrics moves per
        batch by design and is left out)."""
        keys = redis_client.keys(f"{LAYOUT.namespace}:rt:*")
        return {k: redis_client.get(k) for k in keys if redis_client.type(k) == "string"}

    before = documents()
    retry = log.append([event])
    wait_for(lambda: retry.name in sup_committed(settings), job)
    after = documents()
    assert {k: v for k, v in after.items() if ":rt:batch:" not in k} == {
        k: v for k, v in before.items() if ":rt:batch:" not in k
    }  # trending too (it was rebuilt from empty: one retry wiped it for every visitor)
    log.append([{**event, "user_id": "bob", "session_id": None}])
    log.append([{**event, "event_id": "after-retry", "timestamp": iso(now + timedelta(seconds=1))}])
    wait_for(lambda: "after-retry" in recent_ids(redis_client, alice), job)
    assert recent_ids(redis_client, alice) == ["after-retry", "first"]
    assert recent_ids(redis_client, user("bob")) == ["first"]
    affinity = doc(redis_client, LAYOUT.affinity(alice))
    assert affinity["session_categories"] == {"shoes": 2}  # not 3: the retry counted once
    trending_before_kill = dict(doc(redis_client, LAYOUT.trending))
    assert trending_before_kill == {"shoe-1": 24.0}  # 8 distinct events x add_to_cart (3)

    # 3. The job dies (SIGKILL, from the fault setting) inside a batch; restarted without it
    # from the checkpoint: nothing lost, nothing counted twice.
    job.stop()
    weights = settings.event_weights
    expected_ids = []
    trending = dict(trending_before_kill)
    items: dict[str, float] = {}
    session_counts: dict[str, dict[str, int]] = {}
    for f in range(KILL_FILES):
        batch = []
        for i in range(KILL_PER_FILE):
            kind = KILL_TYPES[(f + i) % 3]
            batch.append(
                {
                    "event_id": f"k{f:02d}-{i}",
                    "user_id": "kill",
                    "session_id": f"ks-{i % 3}",
                    "item_id": f"item-{i}",
                    "event_type": kind,
                    "timestamp": iso(now + timedelta(seconds=2 + f)),
                }
            )
            trending[f"item-{i}"] = trending.get(f"item-{i}", 0.0) + weights[kind]
            items[f"item-{i}"] = items.get(f"item-{i}", 0.0) + weights[kind]
            for who in ("kill", f"ks-{i % 3}"):
                counts = session_counts.setdefault(who, {})
                counts[kill_category(i)] = counts.get(kill_category(i), 0) + 1
        log.append(batch)
        expected_ids += [e["event_id"] for e in batch]
    kill = user("kill")
    job.env = {**job.env, "RECOLAKE_STREAM_FAULT_KILL_AFTER_WRITES": str(KILL_AFTER_WRITES)}
    job.start()
    assert job.process is not None
    assert job.process.wait(240) == -signal.SIGKILL, job.log.read_text()[-3000:]
    # It died inside its first batch: some documents merged, the batch not complete.
    sessions = [session_subject(f"ks-{j}") for j in range(3)]
    merged = [s for s in (kill, *sessions) if redis_client.exists(LAYOUT.affinity(s))]
    assert 0 < len(merged) < 4, merged
    job.env = {k: v for k, v in job.env.items() if k != "RECOLAKE_STREAM_FAULT_KILL_AFTER_WRITES"}
    restarted = time.perf_counter()
    job.start()
    wait_for(lambda: len(recent_ids(redis_client, kill)) >= len(expected_ids), job)
    took = time.perf_counter() - restarted
    print(f"restart -> all {len(expected_ids)} events in Redis: {took:.1f} s")
    got = recent_ids(redis_client, kill)
    assert sorted(got) == sorted(expected_ids) and len(got) == len(set(got))
    # The counters a replay would double (or a lost write would short).
    wait_for(lambda: dict(doc(redis_client, LAYOUT.trending)) == trending, job, timeout=30)
    affinity = doc(redis_client, LAYOUT.affinity(kill))
    assert affinity["items"] == pytest.approx(items, rel=1e-6)
    assert affinity["session_categories"] == session_counts["kill"]
    for j, subject in enumerate(sessions):
        assert (
            doc(redis_client, LAYOUT.affinity(subject))["session_categories"]
            == (session_counts[f"ks-{j}"])
        )
        assert len(recent_ids(redis_client, subject)) == len(
            [e for e in expected_ids if int(e.split("-")[1]) % 3 == j]
        )

    posted = ["first", *(f"fresh-{n}" for n in range(5)), "after-retry", *expected_ids]
    bronze = BRONZE_EVENTS.read(spark, settings).where(F.col(c.SOURCE_FORMAT) == "api")
    deadline = time.monotonic() + 120  # the lake query runs on its own trigger
    while bronze.count() < len(posted) + 2 and time.monotonic() < deadline:
        time.sleep(1)
    job.stop()
    counts = {r[c.EVENT_ID]: r["count"] for r in bronze.groupBy(c.EVENT_ID).count().collect()}
    assert sorted(counts) == sorted(posted)
    assert counts["first"] == 3  # bronze keeps the raw retry and bob's; silver dedupes
    assert all(n == 1 for e, n in counts.items() if e != "first")


def sup_committed(settings) -> set[str]:
    """Landed files the Redis query has committed (the supervisor's reading of its checkpoint)."""
    from recolake.stream_supervisor import committed_files

    return committed_files(Path(settings.stream_checkpoint_dir) / "redis")
