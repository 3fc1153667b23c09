"""Silver: validate, type, deduplicate and pseudonymise one date's bronze events.

    spark-submit pipelines/silver.py --ds 2011-12-09

Bad rows go to the quarantine table with a reason; every input row is accounted for:
input = new silver rows + rows already in silver + quarantined + duplicates.

The same date's bronze impressions (the lists the API served) become silver.impressions,
one row per shown item, merged on (recommendation_id, position): a re-run adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.erasure import drop_erased, erasure_ledger
from features.tables import (
    BRONZE_EVENTS,
    BRONZE_IMPRESSIONS,
    BRONZE_ITEMS,
    QUARANTINE_EVENTS,
    SILVER_EVENTS,
    SILVER_IMPRESSIONS,
    SILVER_ITEMS,
)
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.silver")

#: Events may be stamped up to this long after the end of --ds (clock skew) before they
#: are quarantined as coming from the future.
FUTURE_TOLERANCE = timedelta(hours=1)


@dataclass(frozen=True)
class SilverCounts:
    input: int
    silver: int
    quarantined: int
    duplicates: int
    silver_inserted: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    erased: int = 0  # events of users erased on request (features.erasure): dropped

    def step_counts(self) -> str:
        """What the step's line says (standalone and in the nightly)."""
        reasons = ",".join(f"{k}={v}" for k, v in sorted(self.quarantine_reasons.items()))
        return (
            f"input={self.input} silver={self.silver} quarantined={self.quarantined}"
            + (f" ({reasons})" if reasons else "")
            + f" duplicates={self.duplicates} erased={self.erased}"
        )

    def balanced(self) -> bool:
        return self.input == self.silver + self.quarantined + self.duplicates + self.erased

    def report(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantine_reasons.items()))
        return (
            f"input={self.input} silver={self.silver} quarantined={self.quarantined} "
            f"duplicates={self.duplicates} erased={self.erased} "
            f"(new in silver: {self.silver_inserted}; "
            f"quarantine reasons: {reasons or 'none'})"
        )


def run(spark: SparkSession, settings: Settings, ds: date) -> SilverCounts:
    key = settings.require_pseudonymisation_key()
    bronze = BRONZE_EVENTS.read(spark, settings).where(F.col(c.INGEST_DS) == F.lit(ds)).cache()
    split = transforms.validate_events(
        bronze,
        event_types=settings.event_weights,
        key=key,
        latest_allowed=transforms.end_of_day(ds) + FUTURE_TOLERANCE,
    )
    ledger = erasure_ledger(spark, settings)
    kept, erased = drop_erased(split.valid, ledger, key=key)
    valid, id_duplicates = transforms.dedupe_by_event_id(kept.cache())
    quarantined, erased_quarantined = drop_erased(split.quarantined, ledger, key=key)
    quarantined = quarantined.cache()

    metrics = SILVER_EVENTS.upsert(spark, valid, settings, update=False)
    QUARANTINE_EVENTS.overwrite_partition(quarantined, settings, c.INGEST_DS, ds)
    reasons = {r[c.REASON]: r["count"] for r in quarantined.groupBy(c.REASON).count().collect()}
    counts = SilverCounts(
        input=bronze.count(),
        silver=valid.count(),
        quarantined=sum(reasons.values()),
        duplicates=split.exact_duplicates.count() + id_duplicates.count(),
        erased=erased.count() + erased_quarantined.count(),
        silver_inserted=metrics.get("numTargetRowsInserted", 0),
        quarantine_reasons=reasons,
    )
    if BRONZE_ITEMS.exists(spark, settings):
        items = BRONZE_ITEMS.read(spark, settings).where(F.col(c.INGEST_DS) == F.lit(ds))
        SILVER_ITEMS.upsert(spark, transforms.silver_items(items), settings)
    silver_impressions(spark, settings, ds)
    for df in (bronze, kept, quarantined):
        df.unpersist()
    if not counts.balanced():
        raise AssertionError(f"silver {ds}: rows unaccounted for: {counts.report()}")
    log.info("silver %s: %s", ds, counts.report())
    return counts


def silver_impressions(spark: SparkSession, settings: Settings, ds: date) -> int:
    """bronze.impressions ingested on ``ds`` -> silver.impressions (MERGE, inserts only):
    the number of new rows."""
    if not BRONZE_IMPRESSIONS.exists(spark, settings):
        return 0
    bronze = BRONZE_IMPRESSIONS.read(spark, settings).where(F.col(c.INGEST_DS) == F.lit(ds))
    rows = transforms.silver_impressions(bronze, key=settings.require_pseudonymisation_key())
    metrics = SILVER_IMPRESSIONS.upsert(spark, rows, settings, update=False)
    inserted = metrics.get("numTargetRowsInserted", 0)
    log.info("silver %s: impressions: %d new shown-item row(s)", ds, inserted)
    return inserted


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> SilverCounts:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-silver", spark, settings)
    return run_step(
        "silver", args.ds, lambda: run(spark, settings, args.ds), SilverCounts.step_counts, spark
    )


if __name__ == "__main__":
    main()
