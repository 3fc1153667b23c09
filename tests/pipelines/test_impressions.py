"""Impressions in the lake: the event log's impression records -> bronze.impressions ->
silver.impressions (tiny frames), events' recommendation_id kept through silver, the schema
change reaching tables written before it, and one real run: API -> event log -> streaming
job (--available-now) -> silver."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import columns as c
from features import streaming as fs
from features import transforms
from features.tables import (
    BRONZE_EVENTS,
    BRONZE_IMPRESSIONS,
    QUARANTINE_EVENTS,
    SILVER_EVENTS,
    SILVER_IMPRESSIONS,
)
from recolake.eventlog import Impression, ImpressionItem
from recolake.onlinestore import session_subject, user_subject
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY, make_settings

KEY = TEST_KEY.encode()
WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
DS = date(2026, 12, 1)


def shown(rec: str, user: str | None, session: str | None, items: list[str]) -> dict:
    return Impression(
        recommendation_id=rec,
        user_id=user,
        session_id=session,
        experiment="exp-1",
        variant="b",
        endpoint="recommendations",
        items=tuple(ImpressionItem(i, n, "als") for n, i in enumerate(items, start=1)),
        model_version="7",
        publication="v7",
        timestamp="2026-12-01T10:00:00.000Z",
    ).as_record()


def read_log(spark, tmp_path, records: list[dict]):
    """The records as the streaming job reads a landed file (LOG_RECORD_SCHEMA, strings)."""
    path = tmp_path / "log" / "events-1.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return spark.read.schema(fs.LOG_RECORD_SCHEMA).json(str(path.parent))


EVENT = {
    "event_id": "e1",
    "user_id": "alice",
    "item_id": "i2",
    "event_type": "view",
    "timestamp": "2026-12-01T10:01:00.000Z",
    "recommendation_id": "rec-1",
}


@pytest.mark.spark
def test_impression_records_become_one_silver_row_per_shown_item_once(spark, tmp_path):
    records = [
        shown("rec-1", "alice", "s1", ["i1", "i2", "i3"]),
        shown("rec-2", None, "s2", ["i3", "i4"]),
        shown("rec-1", "alice", "s1", ["i1", "i2", "i3"]),  # a replay of the same record
        {**shown("rec-3", None, None, ["i1"])},  # neither user nor session: dropped
        {**shown("", "bob", None, ["i1"])},  # no recommendation id: dropped
        EVENT,
    ]
    raw = read_log(spark, tmp_path, records)
    bronze = fs.api_impressions_to_bronze(fs.impression_records(raw), DS, F.lit("f.jsonl"))
    assert BRONZE_IMPRESSIONS.conform(bronze).count() == 5  # the event is not an impression
    items = json.loads(bronze.where(F.col(c.RECOMMENDATION_ID) == "rec-2").first()[c.ITEMS])
    assert items == [
        {"item_id": "i3", "position": 1, "source": "als"},
        {"item_id": "i4", "position": 2, "source": "als"},
    ]  # bronze keeps the list as its JSON text
    # The Kafka source parses each message with from_json and the same schema: the same text.
    message = spark.createDataFrame([(json.dumps(records[1]),)], "value string")
    parsed = message.select(F.from_json("value", fs.LOG_RECORD_SCHEMA).alias("r")).first().r
    assert json.loads(parsed[c.ITEMS]) == items and parsed["record"] == "impression"
    silver = SILVER_IMPRESSIONS.conform(transforms.silver_impressions(bronze, key=KEY))
    got = sorted(
        (r[c.RECOMMENDATION_ID], r[c.POSITION], r[c.ITEM_ID], r[c.SUBJECT], r[c.USER_KEY])
        for r in silver.collect()
    )
    alice = pseudonymise("alice", KEY)
    assert got == [
        ("rec-1", 1, "i1", user_subject(alice), alice),
        ("rec-1", 2, "i2", user_subject(alice), alice),
        ("rec-1", 3, "i3", user_subject(alice), alice),
        ("rec-2", 1, "i3", session_subject("s2", KEY), None),
        ("rec-2", 2, "i4", session_subject("s2", KEY), None),
    ]
    row = silver.where(F.col(c.RECOMMENDATION_ID) == "rec-2").first()
    assert (row[c.SESSION_ID], row[c.VARIANT], row[c.EXPERIMENT], row[c.ENDPOINT]) == (
        "s2",
        "b",
        "exp-1",
        "recommendations",
    )
    assert row[c.IMPRESSION_TIME] == datetime(2026, 12, 1, 10)
    assert row[c.EVENT_DATE] == DS


@pytest.mark.spark
def test_events_keep_their_recommendation_id_and_impressions_are_never_events(spark, tmp_path):
    raw = read_log(
        spark,
        tmp_path,
        [
            EVENT,
            {**EVENT, "event_id": "e2", "recommendation_id": None},
            shown("r", "a", None, ["x"]),
        ],
    )
    bronze = fs.api_events_to_bronze(fs.event_records(raw), DS, F.lit("f.jsonl"))
    assert BRONZE_EVENTS.conform(bronze).count() == 2
    split = fs.validate_api_events(
        bronze, event_types=WEIGHTS, key=KEY, latest_allowed=datetime(2026, 12, 2)
    )
    assert split.quarantined.count() == 0  # the impression is not a bad event
    valid = SILVER_EVENTS.conform(split.valid)
    assert {r[c.EVENT_ID]: r[c.RECOMMENDATION_ID] for r in valid.collect()} == {
        "e1": "rec-1",
        "e2": None,
    }
    # The Redis query's side: only events are fanned out to subjects.
    realtime = fs.realtime_events(split.valid, key=KEY, weights=WEIGHTS)
    assert sorted(r[c.EVENT_ID] for r in realtime.collect()) == ["e1", "e2"]
    # A too long recommendation id is the same rejection as any too long id.
    long = fs.api_events_to_bronze(
        spark.createDataFrame([{**EVENT, "recommendation_id": "r" * 300}]), DS, F.lit("f")
    )
    reasons = fs.validate_api_events(
        long, event_types=WEIGHTS, key=KEY, latest_allowed=datetime(2026, 12, 2)
    ).quarantined
    assert [r[c.REASON] for r in reasons.collect()] == ["id_too_long"]


def without_recommendation_id(table) -> T.StructType:
    return T.StructType([f for f in table.schema.fields if f.name != c.RECOMMENDATION_ID])


def row_of(table, schema: T.StructType, **values) -> tuple:
    return tuple(values.get(f.name) for f in schema.fields)


@pytest.mark.spark
def test_tables_written_before_the_column_existed_gain_it(spark, settings):
    """silver.events and bronze.events created without recommendation_id (an existing lake):
    the next MERGE / partition overwrite adds the column; older rows read null."""
    old = without_recommendation_id(SILVER_EVENTS)
    event = dict(
        user_key="k",
        item_id="i",
        event_type="view",
        event_time=datetime(2026, 12, 1),
        source_format="api",
        ingest_ds=DS,
        event_date=DS,
    )
    spark.createDataFrame([row_of(SILVER_EVENTS, old, event_id="e0", **event)], old).write.format(
        "delta"
    ).partitionBy(*SILVER_EVENTS.partition_by).save(SILVER_EVENTS.path(settings))
    new = spark.createDataFrame(
        [
            row_of(
                SILVER_EVENTS, SILVER_EVENTS.schema, event_id="e1", recommendation_id="r9", **event
            )
        ],
        SILVER_EVENTS.schema,
    )
    assert SILVER_EVENTS.upsert(spark, new, settings, update=False)["numTargetRowsInserted"] == 1
    rows = SILVER_EVENTS.read(spark, settings).collect()
    assert {r[c.EVENT_ID]: r[c.RECOMMENDATION_ID] for r in rows} == {"e0": None, "e1": "r9"}

    old = without_recommendation_id(BRONZE_EVENTS)
    raw = dict(source_format="api", ingested_at=datetime(2026, 12, 1))
    spark.createDataFrame(
        [row_of(BRONZE_EVENTS, old, event_id="b0", ingest_ds=DS, **raw)], old
    ).write.format("delta").partitionBy(*BRONZE_EVENTS.partition_by).save(
        BRONZE_EVENTS.path(settings)
    )
    later = DS + timedelta(days=1)
    new = spark.createDataFrame(
        [
            row_of(
                BRONZE_EVENTS,
                BRONZE_EVENTS.schema,
                event_id="b1",
                ingest_ds=later,
                recommendation_id="r8",
                **raw,
            )
        ],
        BRONZE_EVENTS.schema,
    )
    BRONZE_EVENTS.overwrite_partitions(new, settings, {c.INGEST_DS: later, c.SOURCE_FORMAT: "api"})
    rows = BRONZE_EVENTS.read(spark, settings).collect()
    assert {r[c.EVENT_ID]: r[c.RECOMMENDATION_ID] for r in rows} == {"b0": None, "b1": "r8"}


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.redis
def test_a_served_list_and_an_event_citing_it_reach_silver(
    tmp_path, spark, redis_server, redis_client, api_server_factory
):
    from pipelines import silver, streaming
    from tests.online.conftest import publish_sample

    settings = make_settings(
        tmp_path,
        redis_server.url,
        api_token="tok",
        landing_dir=str(tmp_path / "landing"),
        stream_checkpoint_dir=str(tmp_path / "checkpoint"),
        stream_lake_trigger_seconds=1,
    )
    publish_sample(redis_server.url, settings)
    api = api_server_factory(settings)

    served = httpx.get(f"{api.url}/v1/recommendations/alice", params={"session_id": "s1", "k": 3})
    assert served.status_code == 200, served.text
    body = served.json()
    rec_id = body["recommendation_id"]
    # Durable before the answer: the impression is in a landed file already.
    landed = [
        json.loads(line)
        for f in (tmp_path / "landing").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert [r["recommendation_id"] for r in landed if r.get("record") == "impression"] == [rec_id]
    anonymous = httpx.get(f"{api.url}/v1/recommendations", params={"session_id": "s9"}).json()

    clicked = body["items"][1]["item_id"]
    event = {
        "event_id": "click-1",
        "user_id": "alice",
        "session_id": "s1",
        "item_id": clicked,
        "event_type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
        "recommendation_id": rec_id,
    }
    posted = httpx.post(f"{api.url}/v1/events", json=event, headers={"Authorization": "Bearer tok"})
    assert posted.status_code == 202, posted.text

    queries = streaming.start(spark, settings, available_now=True)
    for query in queries:
        query.awaitTermination(180)
        assert not query.isActive and query.exception() is None, query.exception()
    today = datetime.now(UTC).date()
    silver.run(spark, settings, today)

    rows = SILVER_IMPRESSIONS.read(spark, settings).collect()
    mine = sorted(
        (r for r in rows if r[c.RECOMMENDATION_ID] == rec_id), key=lambda r: r[c.POSITION]
    )
    assert [(r[c.POSITION], r[c.ITEM_ID]) for r in mine] == [
        (n, item["item_id"]) for n, item in enumerate(body["items"], start=1)
    ]
    alice = pseudonymise("alice", KEY)
    assert {(r[c.SUBJECT], r[c.USER_KEY], r[c.SESSION_ID], r[c.VARIANT]) for r in mine} == {
        (user_subject(alice), alice, "s1", body["variant"])
    }
    theirs = [r for r in rows if r[c.RECOMMENDATION_ID] == anonymous["recommendation_id"]]
    assert len(theirs) == len(anonymous["items"]) > 0
    assert {r[c.SUBJECT] for r in theirs} == {session_subject("s9", KEY)}
    assert len(rows) == len(mine) + len(theirs)

    events = SILVER_EVENTS.read(spark, settings).collect()
    assert [(r[c.EVENT_ID], r[c.ITEM_ID], r[c.RECOMMENDATION_ID]) for r in events] == [
        ("click-1", clicked, rec_id)
    ]
    assert QUARANTINE_EVENTS.read_or_empty(spark, settings).count() == 0  # no impression there
    # A re-run of silver (and a replayed bronze) doubles nothing.
    silver.run(spark, settings, today)
    assert SILVER_IMPRESSIONS.read(spark, settings).count() == len(rows)
