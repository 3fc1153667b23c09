"""Lake table declarations: schema enforcement and idempotent writes on real Delta tables."""

from __future__ import annotations

from datetime import date

import pytest

from features.tables import ALL_TABLES, GOLD_ITEM_POPULARITY, SILVER_ITEMS, SchemaMismatchError

pytestmark = pytest.mark.spark


def popularity(spark, ds, items):
    return spark.createDataFrame(
        [(ds, item, 1, 1.0, rank + 1) for rank, item in enumerate(items)],
        "ds date, item_id string, n_users bigint, strength double, rank int",
    )


def test_every_table_declares_its_owner_and_a_unique_path(settings):
    paths = [t.path(settings) for t in ALL_TABLES]
    assert len(set(paths)) == len(paths)
    for table in ALL_TABLES:
        assert table.owner_job.startswith("pipelines.")
        assert set(table.partition_by) <= set(table.schema.fieldNames())
        assert set(table.keys) <= set(table.schema.fieldNames())


def test_overwrite_partition_replaces_only_its_date(spark, settings):
    d1, d2 = date(2024, 1, 1), date(2024, 1, 2)
    GOLD_ITEM_POPULARITY.overwrite_partition(popularity(spark, d1, ["a", "b"]), settings, "ds", d1)
    GOLD_ITEM_POPULARITY.overwrite_partition(popularity(spark, d2, ["c"]), settings, "ds", d2)
    GOLD_ITEM_POPULARITY.overwrite_partition(popularity(spark, d1, ["x"]), settings, "ds", d1)
    rows = GOLD_ITEM_POPULARITY.read(spark, settings).collect()
    assert sorted((str(r.ds), r.item_id) for r in rows) == [
        ("2024-01-01", "x"),
        ("2024-01-02", "c"),
    ]


def test_wrong_schema_is_refused_with_the_column_named(spark, settings):
    bad = spark.createDataFrame(
        [(date(2024, 1, 1), "a", "1")], "ds date, item_id string, n_users string"
    )
    with pytest.raises(SchemaMismatchError, match=r"n_users.*string.*bigint"):
        GOLD_ITEM_POPULARITY.overwrite_partition(bad, settings, "ds", date(2024, 1, 1))
    assert not GOLD_ITEM_POPULARITY.exists(spark, settings)


def test_upsert_inserts_then_updates_without_duplicates(spark, settings):
    schema = (
        "item_id string, title string, category string, price double, available boolean, "
        "ingest_ds date, brand string"
    )
    first = spark.createDataFrame([("i1", "A", "c", 1.0, True, date(2024, 1, 1), None)], schema)
    second = spark.createDataFrame(
        [
            ("i1", "A2", "c", 2.0, False, date(2024, 1, 2), "b"),
            ("i2", "B", "c", 3.0, True, date(2024, 1, 2), None),
        ],
        schema,
    )
    assert SILVER_ITEMS.upsert(spark, first, settings)["numTargetRowsInserted"] == 1
    metrics = SILVER_ITEMS.upsert(spark, second, settings)
    assert (metrics["numTargetRowsInserted"], metrics["numTargetRowsUpdated"]) == (1, 1)
    rows = {r.item_id: r for r in SILVER_ITEMS.read(spark, settings).collect()}
    assert set(rows) == {"i1", "i2"} and rows["i1"].title == "A2"
    assert SILVER_ITEMS.version(spark, settings) == 2  # create, merge, merge
