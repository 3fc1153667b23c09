"""Publishing the catalog and the item-neighbour tables, and the servability check that keeps a
broken import from going live: real Spark, Delta and Redis."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from features.tables import (
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CF_NEIGHBOURS,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_ITEM_POPULARITY,
)
from pipelines import publish
from recolake.onlinestore import KeyLayout
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import decode_items
from tests.conftest import make_settings

pytestmark = [pytest.mark.spark, pytest.mark.redis]

DS = date(2024, 5, 1)
OLD = date(2024, 4, 30)


def neighbours_frame(spark, rows):
    return spark.createDataFrame(
        [(ds, kind, item, nbr, float(score), rank) for ds, kind, item, nbr, score, rank in rows],
        GOLD_ITEM_CF_NEIGHBOURS.schema,
    )


@pytest.fixture
def lake(spark, tmp_path, redis_server):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    catalog = spark.createDataFrame(
        [
            (DS, "a", "Apple", "fruit", None, True, None),  # no price in the catalog
            (DS, "b", "Banana", "fruit", 2.5, False, None),
            (OLD, "z", "Old", "misc", 1.0, True, None),
        ],
        GOLD_ITEM_CATALOG.schema,
    )
    GOLD_ITEM_CATALOG.overwrite(catalog, settings)
    GOLD_ITEM_CF_NEIGHBOURS.overwrite(
        neighbours_frame(
            spark,
            [
                (DS, "co_view", "a", "c", 0.5, 2),  # written out of rank order on purpose
                (DS, "co_view", "a", "b", 0.9, 1),
                (DS, "co_view", "b", "a", 0.9, 1),
                (OLD, "bought_together", "a", "z", 1.0, 1),  # other ds: not published
            ],
        ),
        settings,
    )
    return settings


def test_catalog_and_neighbours_published_under_the_version(spark, lake, redis_client, caplog):
    layout = KeyLayout(lake.redis_namespace)
    writer = BatchWriter.from_settings(lake, "v1")
    with caplog.at_level(logging.INFO, logger="recolake.publish"):
        items = publish.write_catalog(spark, lake, DS, writer)
        counts = publish.write_neighbours(spark, lake, DS, writer)
    assert items == 2
    assert counts == {"co_view": 2}
    # absent table and absent kind are skipped with a log line, not an error
    assert "gold.item_content_neighbours does not exist" in caplog.text
    assert "no bought_together neighbours" in caplog.text

    b = lake.redis_buckets
    staged = [k for k in layout.version_keys("v1", b) if redis_client.exists(k)]
    assert staged and all(redis_client.ttl(k) > 0 for k in staged)  # staging TTL until live

    def entry(key_of, item):
        return redis_client.hget(key_of(layout.bucket_of(item, b)), item)

    assert json.loads(entry(lambda x: layout.items("v1", x), "b")) == {
        "title": "Banana",
        "category": "fruit",
        "available": False,
        "price": 2.5,
    }
    assert "price" not in json.loads(entry(lambda x: layout.items("v1", x), "a"))
    assert entry(lambda x: layout.items("v1", x), "z") is None
    nbrs = entry(lambda x: layout.neighbours("v1", "co_view", x), "a")
    assert decode_items(nbrs) == [("b", 0.9), ("c", 0.5)]  # rank order
    assert entry(lambda x: layout.neighbours("v1", "bought_together", x), "a") is None

    writer.go_live(popular=[("a", 1.0)], meta={"model_version": "1"}, grace_seconds=5)
    assert all(redis_client.ttl(k) == -1 for k in staged)  # same atomic switch


def test_content_kind_read_from_its_own_table(spark, lake, redis_client):
    GOLD_ITEM_CONTENT_NEIGHBOURS.overwrite(
        neighbours_frame(spark, [(DS, "content", "new", "a", 0.7, 1)]), lake
    )
    layout = KeyLayout(lake.redis_namespace)
    counts = publish.write_neighbours(spark, lake, DS, BatchWriter.from_settings(lake, "v2"))
    assert counts == {"co_view": 2, "content": 1}
    key = layout.neighbours("v2", "content", layout.bucket_of("new", lake.redis_buckets))
    assert decode_items(redis_client.hget(key, "new")) == [("a", 0.7)]


# --- servability: a broken import never goes live ------------------------------------------


def shop(spark, settings, available: list[bool | None], popular_ids: list[str]) -> None:
    """gold.item_catalog with one row per flag (items i0, i1, ...) and gold.item_popularity
    ranking ``popular_ids`` for DS."""
    GOLD_ITEM_CATALOG.overwrite(
        spark.createDataFrame(
            [(DS, f"i{n}", f"T{n}", "cat", 1.0, a, None) for n, a in enumerate(available)],
            GOLD_ITEM_CATALOG.schema,
        ),
        settings,
    )
    GOLD_ITEM_POPULARITY.overwrite(
        spark.createDataFrame(
            [
                (DS, item, len(popular_ids) - r, float(r), r + 1)
                for r, item in enumerate(popular_ids)
            ],
            GOLD_ITEM_POPULARITY.schema,
        ),
        settings,
    )


def test_purchased_sets_published_as_positions_and_read_back(spark, tmp_path, redis_server):
    """gold strength's purchases -> each user's purchased set (item-index positions, the
    newest first up to purchased_max_items) -> Redis -> the API's Reader, in its snapshot."""
    import asyncio
    from datetime import datetime
    from types import SimpleNamespace

    from features.tables import GOLD_USER_ITEM_STRENGTH
    from recolake.onlinestore import connect_async
    from recolake.onlinestore.codecs import index_width
    from recolake.onlinestore.reader import Reader

    settings = make_settings(tmp_path, redis_url=redis_server.url, purchased_max_items=2)
    t = [datetime(2024, 4, d) for d in (1, 2, 3, 4)]
    rows = [
        (DS, "u1", "a", 5.0, 1, t[0], True),
        (DS, "u1", "b", 5.0, 1, t[2], True),
        (DS, "u1", "c", 5.0, 1, t[3], True),  # u1's newest two: c, b
        (DS, "u1", "d", 1.0, 1, t[3], False),  # viewed only
        (DS, "u2", "x", 5.0, 1, t[1], True),  # not in the model's index: left out
        (DS, "u3", "a", 1.0, 1, t[1], False),
        (OLD, "u3", "b", 5.0, 1, t[0], True),  # another day
    ]
    GOLD_USER_ITEM_STRENGTH.overwrite(
        spark.createDataFrame(rows, GOLD_USER_ITEM_STRENGTH.schema), settings
    )
    index = ["a", "b", "c", "d"]
    items = spark.createDataFrame(list(enumerate(index)), "item_idx int, item_id string")
    writer = BatchWriter.from_settings(settings, "vp")
    blocks = writer.write_item_index(index)
    width = index_width(len(index))
    written = publish.write_purchased(
        spark, settings, DS, OLD, SimpleNamespace(items=items), writer, width
    )
    assert written == 1  # u1 only: u2's item is unknown to the index, u3 bought nothing on DS
    writer.go_live(popular=[], meta={}, grace_seconds=5, index_blocks=blocks, index_width=width)

    async def read():
        reader = Reader(connect_async(settings.redis_url), KeyLayout(settings.redis_namespace))
        out = {u: (await reader.snapshot(u, [])).purchased for u in ("u1", "u2", "nobody")}
        await reader.client.aclose()
        return out

    assert asyncio.run(read()) == {"u1": {"b", "c"}, "u2": frozenset(), "nobody": frozenset()}
    # each day's sets are that day's purchases (write_purchased falls back to the model's)
    fallback = publish.purchased_sets(
        GOLD_USER_ITEM_STRENGTH.read(spark, settings).where("ds = '2024-04-30'"), items, 5
    ).collect()
    assert [(r["user_key"], r["positions"]) for r in fallback] == [("u3", [1])]


def test_servability_counts_what_the_api_filter_removes(spark):
    catalog = spark.createDataFrame(
        [("a", True), ("b", False), ("c", None), ("d", False)], "item_id string, available boolean"
    )
    popular = spark.createDataFrame([("b",), ("c",), ("new",)], "item_id string")
    health = publish.servability(catalog, popular)
    # null availability is available; an item missing from the catalog is served too
    assert health == publish.Servability(
        catalog_items=4, unavailable=2, popular=3, popular_available=2
    )
    assert health.problems(0.5, 2) == []
    assert len(health.problems(0.4, 3)) == 2


def test_publish_refuses_a_mostly_unavailable_catalog_and_keeps_serving(
    spark, tmp_path, redis_server, redis_client
):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    ids = [f"i{n}" for n in range(20)]
    shop(spark, settings, [n < 5 for n in range(20)], ids)  # 15 of 20 unavailable
    layout = KeyLayout(settings.redis_namespace)
    good = BatchWriter.from_settings(settings, "good")
    good.write_user_lists([("u", [("i0", 1.0)])])
    good.go_live(popular=[("i0", 1.0)], meta={"model_version": "1"}, grace_seconds=5)

    with pytest.raises(publish.NotServableError) as failure:
        publish.run(spark, settings, DS)
    message = str(failure.value)
    assert "15 of 20 catalog items are unavailable" in message
    assert "only 5 of the 20 popular items are available" in message
    # nothing was staged, the last good publication still serves
    assert redis_client.get(layout.live) == "good"
    assert sorted(redis_client.keys(f"{settings.redis_namespace}:pub:*")) == sorted(
        k for k in layout.version_keys("good", settings.redis_buckets) if redis_client.exists(k)
    )


def test_short_popular_list_refused_unless_allowed(spark, tmp_path, caplog):
    settings = make_settings(tmp_path)
    # 3 of 12 unavailable (25%: fine), but they are the whole popular list but one
    shop(spark, settings, [n >= 3 for n in range(12)], ["i0", "i1", "i2", "i3"])
    with pytest.raises(publish.NotServableError, match="only 1 of the 4 popular items"):
        publish.check_servable(spark, settings, DS)

    allowed = settings.model_copy(update={"publish_allow_degraded": True})
    with caplog.at_level(logging.WARNING, logger="recolake.publish"):
        health = publish.check_servable(spark, allowed, DS)
    assert health.popular_available == 1
    assert "only 1 of the 4 popular items are available" in caplog.text


def test_the_documented_shape_passes(spark, tmp_path):
    """Half unavailable is not 'most' (the default share is 0.5, exclusive)."""
    settings = make_settings(tmp_path)
    shop(spark, settings, [n % 2 == 0 for n in range(20)], [f"i{n}" for n in range(0, 20, 2)])
    health = publish.check_servable(spark, settings, DS)
    assert (health.unavailable, health.popular_available) == (10, 10)
