"""Item-item CF: 'co_view' (user histories) and 'bought_together' (baskets) neighbours.

    spark-submit pipelines/item_cf.py --ds 2011-12-09

Writes gold.item_cf_neighbours for --ds (both kinds, one commit); a re-run replaces that date.
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
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.item_cf")


@dataclass(frozen=True)
class ItemCFCounts:
    co_view: int
    bought_together: int

    def step_counts(self) -> str:
        """What the step's line says (standalone and in the nightly)."""
        return f"co_view={self.co_view} bought_together={self.bought_together}"


def run(spark: SparkSession, settings: Settings, ds: date) -> ItemCFCounts:
    as_of = transforms.end_of_day(ds)
    frames = history_and_basket_neighbours(
        GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(ds)),
        SILVER_EVENTS.read(spark, settings).where(F.col(c.EVENT_TIME) < F.lit(as_of)),
        top_n=settings.neighbours_top_n,
        min_support=settings.cf_min_support,
        max_items=settings.cf_max_items_per_group,
    )
    # Both kinds in one write (one Delta commit replacing the date) and one read back.
    out = None
    for kind, df in frames.items():
        part = df.withColumn(c.KIND, F.lit(kind))
        out = part if out is None else out.unionByName(part)
    GOLD_ITEM_CF_NEIGHBOURS.overwrite_partition(transforms.with_ds(out, ds), settings, c.DS, ds)
    written = (
        GOLD_ITEM_CF_NEIGHBOURS.read(spark, settings)
        .where(F.col(c.DS) == F.lit(ds))
        .groupBy(c.KIND)
        .agg(F.countDistinct(c.ITEM_ID).alias("n"))
        .collect()
    )
    counts = {kind: 0 for kind in frames} | {r[c.KIND]: r["n"] for r in written}
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
    return run_step(
        "item_cf", args.ds, lambda: run(spark, settings, args.ds), ItemCFCounts.step_counts, spark
    )


if __name__ == "__main__":
    main()
