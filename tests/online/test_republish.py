"""`recolake republish` picks the date to publish again from the lake (Redis may have lost
everything, its publication meta included): the newest ds of gold.item_popularity."""

from __future__ import annotations

from datetime import date

import pytest

from features.tables import GOLD_ITEM_POPULARITY
from recolake.cli import latest_built_ds

pytestmark = pytest.mark.spark


def test_latest_built_ds_is_the_newest_popularity_partition(spark, settings):
    assert latest_built_ds(spark, settings) is None  # no lake yet: nothing to republish
    rows = [
        (date(2024, 5, 1), "a", 3, 1.0, 1),
        (date(2024, 5, 3), "a", 4, 2.0, 1),
        (date(2024, 5, 2), "b", 2, 1.0, 1),
    ]
    frame = spark.createDataFrame(rows, GOLD_ITEM_POPULARITY.schema)
    frame.write.format("delta").partitionBy("ds").save(GOLD_ITEM_POPULARITY.path(settings))
    assert latest_built_ds(spark, settings) == date(2024, 5, 3)
