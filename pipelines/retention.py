"""Retention: raw data is kept no longer than ``bronze_retention_days``.

    spark-submit pipelines/retention.py --ds 2011-12-09
    recolake retention --ds 2011-12-09

Deletes the bronze rows (events, catalog rows, impressions: every bronze table) ingested
before ``--ds`` minus ``bronze_retention_days`` (by ``ingest_ds``, the partition column, so
whole files go), then VACUUMs with ``erasure_vacuum_retention_hours``, which also removes
the files an earlier `recolake forget` rewrote once they are older than that. Landing files
of the event log are pruned by the streaming DAG (``landing_retention_hours``). Silver and
gold keep what the models need (pseudonymised); their history is bounded by the models'
windows, not by this job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features.tables import ALL_TABLES
from pipelines.common import job_parser, parse, run_step, session_and_settings
from pipelines.forget import DELTA_MIN_RETENTION_HOURS
from recolake.settings import Settings

log = logging.getLogger("recolake.retention")


@dataclass(frozen=True)
class RetentionResult:
    before: date
    deleted_rows: dict[str, int] = field(default_factory=dict)


def run(spark: SparkSession, settings: Settings, ds: date) -> RetentionResult:
    before = ds - timedelta(days=settings.bronze_retention_days)
    retention = settings.erasure_vacuum_retention_hours
    if retention < DELTA_MIN_RETENTION_HOURS:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    deleted: dict[str, int] = {}
    for table in ALL_TABLES:
        if table.layer != "bronze" or c.INGEST_DS not in table.schema.fieldNames():
            continue
        if not table.exists(spark, settings):
            continue
        delta = DeltaTable.forPath(spark, table.path(settings))
        version = delta.history(1).select("version").first()[0]
        delta.delete(F.col(c.INGEST_DS) < F.lit(before))
        last = delta.history(1).select("version", "operationMetrics").first()
        metrics = last["operationMetrics"] or {}
        deleted[table.qualified_name] = (
            int(metrics.get("numDeletedRows", "0") or 0) if last["version"] != version else 0
        )
        delta.vacuum(retention)
    result = RetentionResult(before, deleted)
    log.info("retention %s: bronze rows ingested before %s deleted: %s", ds, before, deleted)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> RetentionResult:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-retention", spark, settings)
    return run_step(
        "retention",
        args.ds,
        lambda: run(spark, settings, args.ds),
        lambda r: f"before={r.before} deleted={r.deleted_rows}",
        spark,
    )


if __name__ == "__main__":
    main()
