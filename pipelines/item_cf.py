"""Item-item CF: 'co_view' (user histories) and 'bought_together' (baskets) neighbours.

    spark-submit pipelines/item_cf.py --ds 2011-12-09

Writes gold.item_cf_neighbours for --ds (both kinds); a re-run replaces that date.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.tables import GOLD_ITEM_CF_NEIGHBOURS, GOLD_USER_ITEM_STRENGTH, SILVER_EVENTS
from models.item_cf import cap_groups, co_occurrence_neighbours
from pipelines.common import job_parser, parse, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.item_cf")


@dataclass(frozen=True)
class ItemCFCounts:
    co_view: int
    bought_together: int


def run(spark: SparkSession, settings: Settings, ds: date) -> ItemCFCounts:
    as_of = transforms.end_of_day(ds)
    top_n, support = settings.neighbours_top_n, settings.cf_min_support
    histories = cap_groups(
        GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(ds)),
        col_group=c.USER_KEY,
        col_order=c.STRENGTH,
        max_items=settings.cf_max_items_per_group,
    )
    baskets = cap_groups(
        SILVER_EVENTS.read(spark, settings)
        .where(
            (F.col(c.EVENT_TIME) < F.lit(as_of))
            & F.col(c.SESSION_ID).isNotNull()
            & F.col(c.EVENT_TYPE).isin("purchase", "add_to_cart")
        )
        .groupBy(c.SESSION_ID, c.ITEM_ID)
        .agg(F.max(c.EVENT_TIME).alias("_t")),
        col_group=c.SESSION_ID,
        col_order="_t",
        max_items=settings.cf_max_items_per_group,
    )
    frames = {
        "co_view": co_occurrence_neighbours(
            histories, col_group=c.USER_KEY, top_n=top_n, min_support=support
        ),
        "bought_together": co_occurrence_neighbours(
            baskets, col_group=c.SESSION_ID, top_n=top_n, min_support=support
        ),
    }
    counts = {}
    for kind, df in frames.items():
        out = transforms.with_ds(df.withColumn(c.KIND, F.lit(kind)), ds)
        GOLD_ITEM_CF_NEIGHBOURS.overwrite_partitions(out, settings, {c.DS: ds, c.KIND: kind})
        counts[kind] = (
            GOLD_ITEM_CF_NEIGHBOURS.read(spark, settings)
            .where((F.col(c.DS) == F.lit(ds)) & (F.col(c.KIND) == kind))
            .select(c.ITEM_ID)
            .distinct()
            .count()
        )
    result = ItemCFCounts(**counts)
    log.info("item_cf %s: items with neighbours %s", ds, result)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> ItemCFCounts:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-item-cf", spark, settings)
    return run(spark, settings, args.ds)


if __name__ == "__main__":
    main()
