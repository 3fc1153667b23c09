"""Bronze: land raw events (and catalog rows) for one logical date, exactly as received.

    spark-submit pipelines/ingest.py --ds 2011-12-09 --format online_retail --events FILE
    recolake ingest --ds 2024-05-01 --events events.csv --items items.csv

A re-run of the same --ds replaces that date's bronze partition instead of appending.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.erasure import drop_erased, erasure_ledger
from features.tables import BRONZE_EVENTS, BRONZE_ITEMS, ERASURE_LEDGER
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake.settings import Settings

log = logging.getLogger("recolake.ingest")

FORMATS = ("generic", "online_retail")


@dataclass(frozen=True)
class IngestResult:
    events: int
    items: int

    def step_counts(self) -> str:
        """What the step's line says (standalone and in the nightly)."""
        return f"events={self.events} items={self.items}"


def read_csv(spark: SparkSession, path: str) -> DataFrame:
    """Every column as a string: bronze keeps values as received (gzip is read transparently)."""
    return (
        spark.read.option("header", True)
        .option("inferSchema", False)
        .option("mode", "PERMISSIVE")
        .option("multiLine", False)
        .option("escape", '"')
        .csv(path)
    )


def _count(df: DataFrame, partition: dict) -> int:
    return df.where(
        (F.col(c.INGEST_DS) == F.lit(partition[c.INGEST_DS]))
        & (F.col(c.SOURCE_FORMAT) == F.lit(partition[c.SOURCE_FORMAT]))
    ).count()


def run(
    spark: SparkSession,
    settings: Settings,
    ds: date,
    events_path: str,
    items_path: str | None = None,
    source_format: str = "generic",
) -> IngestResult:
    if source_format not in FORMATS:
        raise ValueError(f"unknown format {source_format!r}; expected one of {FORMATS}")
    raw_events = read_csv(spark, events_path)
    if source_format == "online_retail":
        events = transforms.online_retail_to_bronze(raw_events, ds)
        items = transforms.online_retail_items_to_bronze(raw_events, ds)
    else:
        events = transforms.generic_events_to_bronze(raw_events, ds)
        items = (
            transforms.generic_items_to_bronze(read_csv(spark, items_path), ds)
            if items_path
            else None
        )
    partition = {c.INGEST_DS: ds, c.SOURCE_FORMAT: source_format}
    # Users erased on request stay erased: a re-ingest of an old export does not bring
    # their events back (features.erasure; the raw id is matched by its pseudonym).
    if ERASURE_LEDGER.exists(spark, settings):
        key = settings.require_pseudonymisation_key()
        events, _ = drop_erased(events, erasure_ledger(spark, settings), key=key)
    BRONZE_EVENTS.overwrite_partitions(events, settings, partition)
    n_events = _count(BRONZE_EVENTS.read(spark, settings), partition)
    n_items = 0
    if items is not None:
        BRONZE_ITEMS.overwrite_partitions(items, settings, partition)
        n_items = _count(BRONZE_ITEMS.read(spark, settings), partition)
    log.info("bronze %s: %d events, %d catalog rows from %s", ds, n_events, n_items, events_path)
    return IngestResult(events=n_events, items=n_items)


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> IngestResult:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", required=True, help="events file (CSV, .gz ok) or folder")
    parser.add_argument("--items", help="items CSV (generic format only)")
    parser.add_argument("--format", choices=FORMATS, default="generic", dest="source_format")
    args = parse(parser, argv)
    spark, settings = session_and_settings("recolake-ingest", spark, settings)
    return run_step(
        "ingest",
        args.ds,
        lambda: run(spark, settings, args.ds, args.events, args.items, args.source_format),
        IngestResult.step_counts,
        spark,
    )


if __name__ == "__main__":
    main()
