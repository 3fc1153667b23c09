"""The live catalog's lake side: PUT /v1/items -> event log -> streaming job (--available-now)
-> bronze.items (source_format 'api') -> silver.items, so the nightly sees live updates; and the
content job's terms -> publish -> what PUT scores a new item's text with."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import httpx
import pytest
from pyspark.sql import functions as F

from features import columns as c
from features.tables import (
    BRONZE_EVENTS,
    BRONZE_ITEMS,
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_ITEM_CONTENT_TERMS,
    QUARANTINE_EVENTS,
    SILVER_ITEMS,
)
from tests.conftest import make_settings


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.redis
def test_an_item_update_reaches_bronze_and_silver_items_and_is_never_an_event(
    tmp_path, spark, redis_server, api_server_factory
):
    from pipelines import silver, streaming
    from tests.online.conftest import publish_sample

    settings = make_settings(
        tmp_path,
        redis_server.url,
        api_token="tok",
        stream_checkpoint_dir=str(tmp_path / "checkpoint"),
        stream_lake_trigger_seconds=1,
    )
    publish_sample(redis_server.url, settings)
    api = api_server_factory(settings)
    auth = {"Authorization": "Bearer tok"}
    item = {
        "title": "Trail boot",
        "category": "shoes",
        "brand": "Acme",
        "price": 89.5,
        "available": False,
        "attributes": {"colour": "brown"},
    }
    put = httpx.put(f"{api.url}/v1/items/boot-2", json=item, headers=auth)
    assert put.status_code == 200, put.text
    event = {
        "user_id": "alice",
        "item_id": "boot",
        "event_type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    posted = httpx.post(f"{api.url}/v1/events", json=event, headers=auth)
    assert posted.status_code == 202, posted.text

    queries = streaming.start(spark, settings, available_now=True)
    for query in queries:
        query.awaitTermination(180)
        assert not query.isActive and query.exception() is None, query.exception()

    rows = BRONZE_ITEMS.read(spark, settings).collect()
    assert len(rows) == 1
    row = rows[0]
    assert (row[c.ITEM_ID], row[c.TITLE], row[c.BRAND], row[c.SOURCE_FORMAT]) == (
        "boot-2",
        "Trail boot",
        "Acme",
        "api",
    )
    assert (row[c.PRICE], row[c.AVAILABLE], row[c.ATTRIBUTES]) == (
        "89.5",
        "false",
        '{"colour":"brown"}',
    )
    # the event is an event, the item record is not (nor quarantined as a bad one)
    assert [r[c.ITEM_ID] for r in BRONZE_EVENTS.read(spark, settings).collect()] == ["boot"]
    assert QUARANTINE_EVENTS.read_or_empty(spark, settings).count() == 0

    silver.run(spark, settings, datetime.now(UTC).date())
    got = SILVER_ITEMS.read(spark, settings).where(F.col(c.ITEM_ID) == "boot-2").collect()
    assert [(r[c.TITLE], r[c.BRAND], r[c.PRICE], r[c.AVAILABLE]) for r in got] == [
        ("Trail boot", "Acme", 89.5, False)
    ]


@pytest.mark.spark
@pytest.mark.redis
def test_content_terms_are_published_and_score_a_new_item_like_the_nightly(
    tmp_path, spark, redis_server
):
    """content.run writes gold.item_content_terms next to the neighbours, publish writes them
    under the version, and the API's scorer gives a new item with an existing item's text
    that item's nightly neighbours (plus the item itself, its twin)."""
    import redis.asyncio as aioredis

    from pipelines import content, publish
    from recolake.onlinestore import KeyLayout
    from recolake.onlinestore.batch import BatchWriter
    from recolake.onlinestore.catalog import CatalogEntry, content_neighbours

    ds = date(2024, 1, 1)
    settings = make_settings(tmp_path, redis_server.url, neighbours_top_n=3)
    rows = [
        ("1", "White heart holder", "home", "Acme"),
        ("2", "Red heart holder", "home", None),
        ("3", "Paisley bag", "bags", "Acme"),
        ("4", "Jumbo paisley bag", "bags", None),
        ("5", "Garden gnome", "garden", "Globex"),
        ("6", "Gnome hat", "garden", None),
    ]
    catalog = spark.createDataFrame(
        [(ds, i, t, cat, 1.0, True, b) for i, t, cat, b in rows], GOLD_ITEM_CATALOG.schema
    )
    GOLD_ITEM_CATALOG.overwrite(catalog, settings)
    content.run(spark, settings, ds)
    terms = GOLD_ITEM_CONTENT_TERMS.read(spark, settings).where(F.col(c.DS) == F.lit(ds))
    assert terms.where(F.col(c.TERM) == "brand_acme").count() == 1
    nightly = {
        r[c.NEIGHBOUR_ID]: r[c.SCORE]
        for r in GOLD_ITEM_CONTENT_NEIGHBOURS.read(spark, settings)
        .where(F.col(c.ITEM_ID) == "2")
        .collect()
    }
    assert nightly

    writer = BatchWriter.from_settings(settings, "v1")
    assert publish.write_content_terms(spark, settings, ds, writer) == terms.count()

    async def score() -> dict[str, list[tuple[str, float]]]:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        twin = CatalogEntry("new", title="Red heart holder", category="home")
        try:
            return await content_neighbours(
                client,
                KeyLayout(settings.redis_namespace),
                "v1",
                settings.redis_buckets,
                [twin],
                top_n=4,
            )
        finally:
            await client.aclose()

    got = dict(asyncio.run(score())["new"])
    assert got.pop("2") == pytest.approx(1.0)  # the same text: cosine 1
    assert {i: v for i, v in got.items() if v >= 0.05} == pytest.approx(nightly, abs=1e-5)
