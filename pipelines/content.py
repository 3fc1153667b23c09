"""Content model: TF-IDF item-item neighbours from the catalog as of --ds.

    spark-submit pipelines/content.py --ds 2011-12-09

Writes gold.item_content_neighbours (kind 'content') and gold.item_content_terms (each term's
idf and top items: what publish hands the API to score new items) for --ds; a re-run replaces
that date.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.tables import (
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_ITEM_CONTENT_TERMS,
)
from models.content import content_model
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.content")


def run(spark: SparkSession, settings: Settings, ds: date) -> int:
    """Returns the number of items that got content neighbours."""
    catalog = GOLD_ITEM_CATALOG.read(spark, settings).where(F.col(c.DS) == F.lit(ds))
    if catalog.isEmpty():
        raise RuntimeError(f"gold.item_catalog has no rows for ds={ds}: run gold first")
    neighbours, terms = content_model(
        catalog, top_n=settings.neighbours_top_n, per_term=settings.content_terms_per_term
    )
    out = transforms.with_ds(neighbours.withColumn(c.KIND, F.lit("content")), ds)
    GOLD_ITEM_CONTENT_NEIGHBOURS.overwrite_partitions(out, settings, {c.DS: ds, c.KIND: "content"})
    GOLD_ITEM_CONTENT_TERMS.overwrite_partition(transforms.with_ds(terms, ds), settings, c.DS, ds)
    items = (
        GOLD_ITEM_CONTENT_NEIGHBOURS.read(spark, settings)
        .where(F.col(c.DS) == F.lit(ds))
        .select(c.ITEM_ID)
        .distinct()
        .count()
    )
    log.info("content %s: %d items with content neighbours", ds, items)
    return items


def step_counts(items: int) -> str:
    """What the step's line says (standalone and in the nightly)."""
    return f"items={items}"


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> int:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-content", spark, settings)
    return run_step("content", args.ds, lambda: run(spark, settings, args.ds), step_counts, spark)


if __name__ == "__main__":
    main()
