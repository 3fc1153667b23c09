"""Publishing the catalog and the item-neighbour tables: real Spark, Delta and Redis."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from features.tables import (
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CF_NEIGHBOURS,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
)
from pipelines import publish
from recolake import publication
from recolake.redis_layout import RedisLayout
from tests.conftest import make_settings

pytestmark = pytest.mark.redis

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
            (DS, "a", "Apple", "fruit", 1.0, True),
            (DS, "b", "Banana", "fruit", 2.0, False),
            (OLD, "z", "Old", "misc", 1.0, True),
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
    layout = RedisLayout(lake.redis_namespace)
    with caplog.at_level(logging.INFO, logger="recolake.publish"):
        items = publish.write_catalog(spark, lake, DS, layout, "v1")
        counts = publish.write_neighbours(spark, lake, DS, layout, "v1")
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
    }
    assert entry(lambda x: layout.items("v1", x), "z") is None
    nbrs = entry(lambda x: layout.neighbours("v1", "co_view", x), "a")
    assert publication.decode_items(nbrs) == [("b", 0.9), ("c", 0.5)]  # rank order
    assert entry(lambda x: layout.neighbours("v1", "bought_together", x), "a") is None

    publication.go_live(
        redis_client,
        layout=layout,
        version="v1",
        buckets=b,
        popular=[("a", 1.0)],
        meta={"model_version": "1"},
        grace_seconds=5,
    )
    assert all(redis_client.ttl(k) == -1 for k in staged)  # same atomic switch


def test_content_kind_read_from_its_own_table(spark, lake, redis_client):
    GOLD_ITEM_CONTENT_NEIGHBOURS.overwrite(
        neighbours_frame(spark, [(DS, "content", "new", "a", 0.7, 1)]), lake
    )
    layout = RedisLayout(lake.redis_namespace)
    counts = publish.write_neighbours(spark, lake, DS, layout, "v2")
    assert counts == {"co_view": 2, "content": 1}
    key = layout.neighbours("v2", "content", layout.bucket_of("new", lake.redis_buckets))
    assert publication.decode_items(redis_client.hget(key, "new")) == [("a", 0.7)]
