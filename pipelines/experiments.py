"""Experiments: what shoppers did with the recommendations each variant showed on --ds.

    recolake experiments --ds 2026-12-01     # == spark-submit pipelines/experiments.py

Reads silver.impressions (one row per shown item of each logged recommendation list) and
silver.events, credits each view, cart and purchase of a shown item to one impression
(features.experiments: the event's own recommendation_id first, else the subject's last
impression of that item, within ``attribution_window_hours``), and measures per experiment
and variant the impressions *shown on ds*: CTR, conversion and revenue per impression with
95% intervals and two-sided tests against the control (models.experiments). Events up to
the window after ds count, so the figures of ds settle once the lake holds ds + window;
the job replaces its ds partition of gold.experiment_results, so re-running then (or any
time) gives the final figures. Logged to MLflow (run tagged step=experiments) and rendered
to ``<reports_dir>/<ds>/experiments/index.html``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import experiments as fx
from features.tables import GOLD_EXPERIMENT_RESULTS, SILVER_EVENTS, SILVER_IMPRESSIONS
from models.experiments import VariantCounts, VariantResult, experiment_results
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake import tracking
from recolake.settings import Settings

log = logging.getLogger("recolake.experiments")


@dataclass(frozen=True)
class ExperimentsResult:
    ds: date
    results: list[VariantResult]
    run_id: str
    report: Path

    def report_text(self) -> str:
        if not self.results:
            return "no impressions"
        lines = []
        for r in self.results:
            ctr, conversion = r.rates["ctr"], r.rates["conversion"]
            vs = r.vs_control.get("ctr")
            versus = f"  CTR p={vs.p_value:.3g}" if vs and vs.p_value is not None else ""
            lines.append(
                f"{r.counts.experiment}/{r.counts.variant}: {r.counts.impressions} impressions"
                f", CTR {ctr.value:.4f}, conversion {conversion.value:.4f}{versus}"
            )
        return "\n".join(lines)


def _between(df: DataFrame, time_col: str, start: datetime, end: datetime) -> DataFrame:
    """Rows with ``start <= time_col < end``, pruned by event_date partitions when present."""
    if c.EVENT_DATE in df.columns:
        last_day = (end - timedelta(microseconds=1)).date()
        df = df.where(F.col(c.EVENT_DATE).between(F.lit(start.date()), F.lit(last_day)))
    return df.where((F.col(time_col) >= F.lit(start)) & (F.col(time_col) < F.lit(end)))


def measure(
    impressions: DataFrame, events: DataFrame, ds: date, *, window: timedelta, key: bytes
) -> list[VariantCounts]:
    """The per-variant counts of the impressions shown on ``ds``. Impressions from ``window``
    before ds compete for the events too (an event credited to yesterday's list is not
    credited again to today's), and events up to ``window`` after ds are credited."""
    start = datetime(ds.year, ds.month, ds.day)
    end = start + timedelta(days=1)
    shown = _between(impressions, c.IMPRESSION_TIME, start - window, end + window)
    credits = fx.attribute(
        shown,
        fx.creditable_events(_between(events, c.EVENT_TIME, start, end + window), key=key),
        window=window,
    )
    cohort = shown.where(F.col(c.IMPRESSION_TIME) < F.lit(end)).where(
        F.col(c.IMPRESSION_TIME) >= F.lit(start)
    )
    rows = fx.variant_counts(fx.impression_outcomes(cohort, credits)).collect()
    return [
        VariantCounts(
            experiment=r[c.EXPERIMENT],
            variant=r[c.VARIANT],
            impressions=int(r["impressions"]),
            items_shown=int(r["items_shown"]),
            clicks=int(r["clicks"]),
            carts=int(r["carts"]),
            purchases=int(r["purchases"]),
            revenue=float(r[c.REVENUE]),
            revenue_sq=float(r["revenue_sq"]),
            clicked_impressions=int(r["clicked_impressions"]),
            converted_impressions=int(r["converted_impressions"]),
        )
        for r in rows
    ]


def results_frame(
    spark: SparkSession, results: Sequence[VariantResult], ds: date, window_hours: float
) -> DataFrame:
    rows = [
        {**r.as_row(), c.DS: ds, c.ATTRIBUTION_WINDOW_HOURS: float(window_hours)} for r in results
    ]
    schema = GOLD_EXPERIMENT_RESULTS.schema
    return spark.createDataFrame(
        [tuple(row[f] for f in schema.fieldNames()) for row in rows], schema
    )


def metric_name(experiment: str, variant: str, metric: str) -> str:
    """An MLflow metric key (letters, digits, _ - . / and spaces only)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", f"{experiment}.{variant}.{metric}")


def log_to_mlflow(
    settings: Settings, ds: date, results: Sequence[VariantResult], report: Path
) -> str:
    tracking.configure(settings)
    with mlflow.start_run(run_name=f"experiments-{ds}") as run_info:
        mlflow.set_tags({tracking.STEP_TAG: "experiments", "ds": ds.isoformat()})
        mlflow.log_param("attribution_window_hours", settings.attribution_window_hours)
        metrics: dict[str, float] = {}
        for r in results:
            for name, value in r.as_row().items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[metric_name(r.counts.experiment, r.counts.variant, name)] = value
        if metrics:
            mlflow.log_metrics(metrics)
        mlflow.log_dict([r.as_row() for r in results], "experiment_results.json")
        mlflow.log_artifacts(str(report.parent), "experiments")
    return run_info.info.run_id


def run_on(
    spark: SparkSession,
    settings: Settings,
    ds: date,
    impressions: DataFrame,
    events: DataFrame,
) -> ExperimentsResult:
    """Everything after reading the two silver tables: attribute, test, write, log, render."""
    from models.experiments_report import write_experiments_report  # matplotlib: only here

    window = timedelta(hours=settings.attribution_window_hours)
    counts = measure(
        impressions, events, ds, window=window, key=settings.require_pseudonymisation_key()
    )
    results = experiment_results(counts)
    GOLD_EXPERIMENT_RESULTS.overwrite_partition(
        results_frame(spark, results, ds, settings.attribution_window_hours),
        settings,
        c.DS,
        ds,
    )
    out_dir = Path(settings.reports_dir) / ds.isoformat() / "experiments"
    report = write_experiments_report(results, ds, settings.attribution_window_hours, out_dir)
    run_id = log_to_mlflow(settings, ds, results, report)
    result = ExperimentsResult(ds, results, run_id, report)
    log.info("experiments %s:\n%s", ds, result.report_text())
    return result


def run(spark: SparkSession, settings: Settings, ds: date) -> ExperimentsResult:
    impressions = SILVER_IMPRESSIONS.read_or_empty(spark, settings)
    events = SILVER_EVENTS.read_or_empty(spark, settings)
    return run_on(spark, settings, ds, impressions, events)


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> ExperimentsResult:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-experiments", spark, settings)
    result = run_step(
        "experiments",
        args.ds,
        lambda: run(spark, settings, args.ds),
        lambda r: f"variants={len(r.results)}",
        spark,
    )
    print(result.report_text(), flush=True)  # the results themselves, a line per variant
    return result


if __name__ == "__main__":
    main()
