"""The right to erasure, end to end on real Spark/Delta/Redis and the running API: after
DELETE /v1/users/{id} and `recolake forget --pending`, no table (read as raw parquet files,
so neither time travel nor an unvacuumed file can hide it), landing file or Redis key holds
the user; their recommendations are the anonymous fallback; a re-ingest of the old export
keeps them out. Plus the ledger filter on tiny frames."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
import redis as redis_lib

from features import columns as c
from features.erasure import drop_erased
from features.tables import (
    BRONZE_EVENTS,
    ERASURE_LEDGER,
    GOLD_USER_ITEM_STRENGTH,
    GOLD_USER_PROFILE,
    SILVER_EVENTS,
    USER_INDEX,
)
from features.transforms import with_ds
from models.als import Indexes
from pipelines import forget, gold, ingest, silver
from recolake.erasure import ErasureRequests
from recolake.onlinestore import KeyLayout, user_subject
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import PROFILE_FIELDS
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY, make_settings
from tests.pipelines.test_generic_import import write_shop

DS = date(2024, 5, 31)
WRITE_TOKEN = "write-token-for-tests"
KEY = TEST_KEY.encode()


@pytest.mark.spark
def test_the_ledger_drops_only_events_at_or_before_the_erasure(spark):
    events = spark.createDataFrame(
        [
            ("e1", "gone", datetime(2024, 1, 1)),
            ("e2", "gone", datetime(2024, 3, 1)),  # after the erasure: new activity
            ("e3", "kept", datetime(2024, 1, 1)),
        ],
        "event_id string, user_key string, event_time timestamp",
    )
    ledger = spark.createDataFrame(
        [("gone", datetime(2024, 2, 1))], "user_key string, erased_at timestamp"
    )
    kept, dropped = drop_erased(events, ledger, key=KEY)
    assert sorted(r.event_id for r in kept.collect()) == ["e2", "e3"]
    assert [r.event_id for r in dropped.collect()] == ["e1"]
    assert kept.columns == events.columns

    raw = spark.createDataFrame(  # bronze: raw id matched by its pseudonym, raw time parsed
        [("alice", "2024-01-01 10:00:00"), ("alice", "not a time"), ("bob", "2024-01-01")],
        "user_id string, timestamp string",
    )
    ledger = spark.createDataFrame(
        [(pseudonymise("alice", KEY), datetime(2024, 2, 1))],
        "user_key string, erased_at timestamp",
    )
    kept, _ = drop_erased(raw, ledger, key=KEY)
    assert [r.user_id for r in kept.collect()] == ["bob"]


def raw_rows(spark, table, settings):
    """Every row in every data file of the table's folder, referenced by the Delta log or
    not (what time travel could still read before VACUUM)."""
    root = Path(table.path(settings))
    files = [p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts]
    return spark.read.parquet(*map(str, files)).collect() if files else []


def holds(row, user_id: str, user_key: str) -> bool:
    values = row.asDict()
    return values.get(c.USER_ID) == user_id or values.get(c.USER_KEY) == user_key


@pytest.mark.spark
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_forgotten_user_is_gone_everywhere_and_stays_gone(
    spark, tmp_path, redis_server, redis_client, api_server_factory
):
    """(``redis_client`` empties the session's Redis first: other tests' publications would
    count as publications looked at.)"""
    events_csv, items_csv, users, _ = write_shop(tmp_path, users=24, items=40, seed=7)
    settings = make_settings(
        tmp_path,
        redis_url=redis_server.url,
        api_token=WRITE_TOKEN,
        erasure_vacuum_retention_hours=0,
        landing_dir=str(tmp_path / "landing"),
        erasure_requests_dir=str(tmp_path / "erasure"),
    )
    victim, other = users[1], users[2]
    victim_key, other_key = pseudonymise(victim, KEY), pseudonymise(other, KEY)

    def build_lake() -> None:
        ingest.run(spark, settings, DS, str(events_csv), str(items_csv), "generic")
        silver.run(spark, settings, DS)

    build_lake()
    gold.run(spark, settings, DS)
    strength = GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(f"ds = '{DS}'")
    indexes = Indexes.build(strength)
    USER_INDEX.overwrite_partition(with_ds(indexes.users, DS), settings, "ds", DS)
    assert USER_INDEX.read(spark, settings).where(f"user_key = '{victim_key}'").count() == 1
    profiles = GOLD_USER_PROFILE.read(spark, settings).where(f"ds = '{DS}'")
    assert profiles.where(f"user_key = '{victim_key}'").count() == 1  # gold built it

    # The event log still holds a file with the victim's and another user's events.
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = [
        {"event_id": "l1", "user_id": victim, "item_id": "i1", "event_type": "view"},
        {"event_id": "l2", "user_id": other, "item_id": "i2", "event_type": "view"},
    ]
    (landing / "events-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    # Redis: a live publication with both users' lists and their real-time documents.
    layout = KeyLayout(settings.redis_namespace)
    writer = BatchWriter(
        url=redis_server.url, layout=layout, version="v1", buckets=settings.redis_buckets
    )
    writer.write_user_lists([(victim_key, [("SKU-00000/b", 0.9)]), (other_key, [("ü-1", 0.8)])])
    writer.write_catalog([("SKU-00000/b", "A", "x", True), ("ü-1", "B", "x", True)])
    profile = {f: None for f in PROFILE_FIELDS} | {"ds": DS.isoformat(), "segment": "new"}
    writer.write_user_profiles([(victim_key, profile), (other_key, profile)])
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    writer.go_live(
        client=client,
        popular=[("p1", 3.0), ("p2", 2.0)],
        meta={"ds": DS.isoformat()},
        grace_seconds=5,
    )
    for u in (victim_key, other_key):
        recent = [{"item_id": "ü-1", "event_type": "view", "ts": 1.0}]
        client.set(layout.recent(user_subject(u)), json.dumps(recent))
        client.set(layout.affinity(user_subject(u)), json.dumps({"categories": {"x": 1.0}}))

    api = api_server_factory(settings)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        before = http.get(f"/v1/recommendations/{victim}").json()
        assert {i["source"] for i in before["items"]} != {"popular"}
        stranger = http.get("/v1/recommendations/never-seen-before").json()

        assert http.delete(f"/v1/users/{victim}").status_code == 401
        denied = http.delete(f"/v1/users/{victim}", headers={"Authorization": "Bearer no"})
        assert denied.status_code == 403
        auth = {"Authorization": f"Bearer {WRITE_TOKEN}"}
        done = http.delete(f"/v1/users/{victim}", headers=auth)
        assert done.status_code == 202, done.text
        assert done.json()["online"] == {
            "realtime_keys": 2,
            "published_lists": 1,
            "publications": 1,
        }
        after = http.get(f"/v1/recommendations/{victim}").json()
        # the anonymous fallback, item for item
        assert after["items"] == stranger["items"] and after["recent"] == []
        assert http.get(f"/v1/recommendations/{other}").json()["recent"] == ["ü-1"]

    pending = ErasureRequests(settings.erasure_requests_dir).pending()
    assert [r.user_key for r in pending] == [victim_key]  # durable, pseudonymised only
    assert victim not in pending[0].path.read_text()

    result = forget.run_pending(spark, settings)
    assert result.users == 1 and result.deleted_rows["bronze.events"] > 0
    assert (
        result.deleted_rows["silver.events"] > 0 and result.deleted_rows["gold.als_user_index"] == 1
    )
    assert not ErasureRequests(settings.erasure_requests_dir).pending()

    for table in forget.user_tables():
        if table.exists(spark, settings):
            rows = raw_rows(spark, table, settings)
            assert not [r for r in rows if holds(r, victim, victim_key)], table.qualified_name
    kept = [r[c.USER_KEY] for r in raw_rows(spark, GOLD_USER_PROFILE, settings)]
    assert victim_key not in kept and other_key in kept  # the profile row went with the user
    others = raw_rows(spark, SILVER_EVENTS, settings)
    assert any(r[c.USER_KEY] == other_key for r in others)  # only the victim went
    assert [r[c.USER_KEY] for r in ERASURE_LEDGER.read(spark, settings).collect()] == [victim_key]

    landed = (landing / "events-1.jsonl").read_text()
    assert victim not in landed and other in landed

    for key in client.scan_iter():
        kind = client.type(key)
        value = (
            (json.dumps(client.hgetall(key)) if kind == "hash" else str(client.get(key)))
            if kind in ("hash", "string")
            else ""
        )
        assert victim_key not in key and victim_key not in value, key
        assert victim not in key and victim not in value, key

    # A re-run of the old date's ingest and silver does not bring them back.
    build_lake()
    bronze = BRONZE_EVENTS.read(spark, settings)
    assert bronze.where(f"user_id = '{other}'").count() > 0
    assert bronze.where(f"user_id = '{victim}'").count() == 0
    assert SILVER_EVENTS.read(spark, settings).where(f"user_key = '{victim_key}'").count() == 0
    client.close()


@pytest.mark.spark
def test_retention_deletes_only_bronze_older_than_the_window(spark, tmp_path):
    from pipelines import retention

    settings = make_settings(tmp_path, bronze_retention_days=30, erasure_vacuum_retention_hours=0)
    fields = BRONZE_EVENTS.schema.fieldNames()

    def rows(ds: date, n: int):
        values = {
            c.USER_ID: "u",
            c.ITEM_ID: "i",
            c.EVENT_TYPE: "view",
            c.SOURCE_FORMAT: "generic",
            c.INGESTED_AT: datetime(2024, 1, 1),
            c.INGEST_DS: ds,
        }
        return [tuple(values.get(f, f"{f}-{k}") for f in fields) for k in range(n)]

    old, recent = date(2024, 1, 1), date(2024, 3, 1)
    frame = spark.createDataFrame(rows(old, 2) + rows(recent, 3), BRONZE_EVENTS.schema)
    BRONZE_EVENTS.overwrite(frame, settings)
    result = retention.run(spark, settings, date(2024, 3, 15))
    assert result.before == date(2024, 2, 14)
    assert result.deleted_rows["bronze.events"] == 2
    left = raw_rows(spark, BRONZE_EVENTS, settings)  # vacuumed: not even in old files
    assert sorted({r[c.INGEST_DS] for r in left}) == [recent] and len(left) == 3
