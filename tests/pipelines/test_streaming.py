"""The streaming job: pure merges, the Spark transforms on tiny frames, and one real run as a
subprocess (API -> landing dir -> Spark -> Redis + bronze) that is SIGKILLed mid-stream and
restarted from its checkpoint."""

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

from features import columns as c
from features import streaming as fs
from features.tables import BRONZE_EVENTS, GOLD_ITEM_CATALOG, QUARANTINE_EVENTS
from recolake.eventlog import LocalEventLog
from recolake.privacy import pseudonymise, session_subject
from recolake.redis_layout import RedisLayout
from recolake.settings import PROJECT_ROOT
from tests.conftest import TEST_KEY, make_settings

KEY = TEST_KEY.encode()
LAYOUT = RedisLayout("recolake")


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
    got = sorted((r[fs.SUBJECT], r[c.EVENT_ID], r[fs.WEIGHT]) for r in out.collect())
    assert got == sorted(
        [
            (pseudonymise("alice", KEY), "e1", 1.0),
            (session_subject("s1", KEY), "e1", 1.0),
            (session_subject("s2", KEY), "e2", 5.0),  # anonymous: session subject only
        ]
    )
    ts = {r[c.EVENT_ID]: r[fs.TS] for r in out.collect()}
    assert ts["e1"] == datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()


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
        [(date(2024, 1, 1), "shoe-1", "Red shoe", "shoes", 10.0, True)], GOLD_ITEM_CATALOG.schema
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
        "RECOLAKE_SPARK_DRIVER_MEMORY": "1g",
        "RECOLAKE_SPARK_SHUFFLE_PARTITIONS": "2",
    }
    job = StreamingJob(env, tmp_path / "streaming.log")
    yield settings, job
    job.stop()


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
    alice = pseudonymise("alice", KEY)
    wait_for(lambda: recent_ids(redis_client, alice) == ["first"], job)
    assert recent_ids(redis_client, session_subject("sess", KEY)) == ["first"]
    affinity = json.loads(redis_client.get(LAYOUT.affinity(alice)))
    assert affinity["categories"] == {"shoes": pytest.approx(3.0, rel=1e-3)}
    assert affinity["session_categories"] == {"shoes": 1}
    assert json.loads(redis_client.get(LAYOUT.trending))[0][0] == "shoe-1"

    # Freshness once warm: POST returned -> item in the user's recent list.
    delays = []
    for n in range(5):
        fresh = {**event, "event_id": f"fresh-{n}", "user_id": f"fresh-user-{n}"}
        assert httpx.post(f"{api.url}/v1/events", json=fresh, headers=headers).status_code == 202
        posted = time.perf_counter()
        subject = pseudonymise(f"fresh-user-{n}", KEY)
        wait_for(lambda s=subject: recent_ids(redis_client, s), job, timeout=60)
        delays.append(time.perf_counter() - posted)
    print(f"POST -> redis recent: {[round(d, 3) for d in delays]} s")

    # 2. A client retry (same event_id, later file) is counted once downstream.
    log = LocalEventLog(settings.landing_dir)
    log.append([event])
    log.append([{**event, "event_id": "after-retry", "timestamp": iso(now + timedelta(seconds=1))}])
    wait_for(lambda: "after-retry" in recent_ids(redis_client, alice), job)
    assert recent_ids(redis_client, alice) == ["after-retry", "first"]
    affinity = json.loads(redis_client.get(LAYOUT.affinity(alice)))
    assert affinity["session_categories"] == {"shoes": 2}  # not 3: the retry counted once

    # 3. SIGKILL mid-stream, restart from the checkpoint: nothing lost, nothing twice.
    files, per_file = 24, 10
    expected = []
    for f in range(files):
        batch = [
            {
                "event_id": f"k{f:02d}-{i}",
                "user_id": "kill",
                "item_id": f"item-{i}",
                "event_type": "view",
                "timestamp": iso(now + timedelta(seconds=2 + f)),
            }
            for i in range(per_file)
        ]
        log.append(batch)
        expected += [e["event_id"] for e in batch]
    kill = pseudonymise("kill", KEY)
    wait_for(lambda: recent_ids(redis_client, kill), job)  # some batches done, not all
    assert len(recent_ids(redis_client, kill)) < len(expected)
    job.kill()
    restarted = time.perf_counter()
    before = len(recent_ids(redis_client, kill))
    job.start()
    wait_for(lambda: len(recent_ids(redis_client, kill)) > before, job)
    print(f"restart -> next batch in Redis: {time.perf_counter() - restarted:.1f} s")
    wait_for(lambda: len(recent_ids(redis_client, kill)) >= len(expected), job)
    got = recent_ids(redis_client, kill)
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))

    posted = ["first", *(f"fresh-{n}" for n in range(5)), "after-retry", *expected]
    bronze = BRONZE_EVENTS.read(spark, settings).where(F.col(c.SOURCE_FORMAT) == "api")
    deadline = time.monotonic() + 120  # the lake query runs on its own trigger
    while bronze.count() < len(posted) + 1 and time.monotonic() < deadline:
        time.sleep(1)
    job.stop()
    counts = {r[c.EVENT_ID]: r["count"] for r in bronze.groupBy(c.EVENT_ID).count().collect()}
    assert sorted(counts) == sorted(posted)
    assert counts["first"] == 2  # bronze keeps the raw retry; silver dedupes by event_id
    assert all(n == 1 for e, n in counts.items() if e != "first")
