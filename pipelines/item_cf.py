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
from models.item_cf import history_and_basket_neighbours
from pipelines.common import job_parser, parse, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.item_cf")


@dataclass(frozen=True)
class ItemCFCounts:
    co_view: int
    bought_together: int


def run(spark: SparkSession, settings: Settings, ds: date) -> ItemCFCounts:
    as_of = transforms.end_of_day(ds)
    frames = history_and_basket_neighbours(
        GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(ds)),
        SILVER_EVENTS.read(spark, settings).where(F.col(c.EVENT_TIME) < F.lit(as_of)),
        top_n=settings.neighbours_top_n,
        min_support=settings.cf_min_support,
        max_items=settings.cf_max_items_per_group,
    )
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
