"""Gold: feature tables as of the end of --ds (strength, popularity, catalog, user profiles).

    spark-submit pipelines/gold.py --ds 2011-12-09

Each table is partitioned by ds and a run replaces only its own date, so a backfill of a
past date rebuilds that date's state without touching others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import SparkSession

from features import profile, transforms
from features.tables import (
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_POPULARITY,
    GOLD_USER_ITEM_STRENGTH,
    GOLD_USER_PROFILE,
    SILVER_EVENTS,
    SILVER_ITEMS,
)
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.gold")


@dataclass(frozen=True)
class GoldCounts:
    user_item_pairs: int
    popular_items: int
    catalog_items: int
    profiles: int = 0

    def step_counts(self) -> str:
        """What the step's line says (standalone and in the nightly)."""
        return (
            f"pairs={self.user_item_pairs} popular={self.popular_items} "
            f"items={self.catalog_items} profiles={self.profiles}"
        )


def run(spark: SparkSession, settings: Settings, ds: date) -> GoldCounts:
    as_of = transforms.end_of_day(ds)
    events = SILVER_EVENTS.read(spark, settings)
    strength = transforms.user_item_strength(
        events,
        as_of=as_of,
        weights=settings.event_weights,
        half_life_days=settings.decay_half_life_days,
        negative_types=settings.negative_event_types,
    )
    popularity = transforms.item_popularity(
        events,
        as_of=as_of,
        window_days=settings.popularity_window_days,
        weights=settings.event_weights,
    )
    catalog = transforms.item_catalog(
        SILVER_ITEMS.read_or_empty(spark, settings), events, as_of=as_of
    )
    for table, df in (
        (GOLD_USER_ITEM_STRENGTH, strength),
        (GOLD_ITEM_POPULARITY, popularity),
        (GOLD_ITEM_CATALOG, catalog),
    ):
        table.overwrite_partition(transforms.with_ds(df, ds), settings, "ds", ds)
    # The profile reads the strength and catalog just written (not recomputed from events).
    day = f"ds = DATE'{ds}'"
    profiles = profile.user_profile(
        events,
        GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(day),
        GOLD_ITEM_CATALOG.read(spark, settings).where(day),
        ds=ds,
        top_n=settings.profile_top_n,
    )
    GOLD_USER_PROFILE.overwrite_partition(transforms.with_ds(profiles, ds), settings, "ds", ds)
    counts = GoldCounts(
        *(
            t.read(spark, settings).where(day).count()
            for t in (
                GOLD_USER_ITEM_STRENGTH,
                GOLD_ITEM_POPULARITY,
                GOLD_ITEM_CATALOG,
                GOLD_USER_PROFILE,
            )
        )
    )
    log.info("gold %s: %s", ds, counts)
    return counts


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> GoldCounts:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-gold", spark, settings)
    return run_step(
        "gold", args.ds, lambda: run(spark, settings, args.ds), GoldCounts.step_counts, spark
    )


if __name__ == "__main__":
    main()
