"""Nightly: forget, ingest, silver, gold, item-CF, content, ALS, evaluate, promote, publish.

    spark-submit pipelines/nightly.py --ds 2011-12-09 --format online_retail --events FILE
    recolake nightly            # the bundled sample, as `make demo` runs it

Airflow runs the same steps as separate tasks; this entry point is for a single command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import mlflow
from pyspark.sql import SparkSession

from pipelines import (
    content,
    evaluate,
    forget,
    gold,
    ingest,
    item_cf,
    promote,
    publish,
    silver,
    train,
)
from pipelines.common import job_parser, parse, session_and_settings
from recolake import logs, tracking
from recolake.settings import PROJECT_ROOT, Settings
from recolake.timing import StepTimer

log = logging.getLogger("recolake.nightly")

SAMPLE_EVENTS = str(PROJECT_ROOT / "data" / "sample" / "online_retail_sample.csv.gz")
SAMPLE_DS = date(2011, 12, 9)
#: The nightly's steps, in order: each is timed (StepTimer) and logged as step_seconds.<step>.
STEPS = [
    "forget",
    "ingest",
    "silver",
    "gold",
    "item_cf",
    "content",
    "train",
    "evaluate",
    "promote",
    "publish",
]


@dataclass(frozen=True)
class NightlyResult:
    ingest: ingest.IngestResult
    silver: silver.SilverCounts
    gold: gold.GoldCounts
    item_cf: item_cf.ItemCFCounts
    content_items: int
    train: train.TrainResult
    evaluation: evaluate.EvaluationResult
    promotion: promote.PromotionResult
    publish: publish.PublishResult
    seconds: float
    step_seconds: dict[str, float]  # wall time of every step, in order
    timing_run_id: str  # the MLflow run (tag step=nightly) holding step_seconds.<step>
    step_report: str = ""

    def summary(self) -> str:
        """What the nightly did, in a screenful (the step lines printed as it went come
        before it): rows, every model on the hold-out in three metrics against popularity,
        the gate, the publication. ``--verbose`` prints ``report()`` instead."""
        doc = self.evaluation.document
        k = doc["k"]
        columns = [f"ndcg@{k}", f"recall@{k}", f"hit_rate@{k}"]
        models = self.evaluation.metrics
        width = max([len(m) for m in models] + [5])
        lines = [
            f"rows: input={self.silver.input} silver={self.silver.silver} "
            f"quarantined={self.silver.quarantined} duplicates={self.silver.duplicates}",
            f"models on the hold-out ({self.evaluation.evaluated_users} users):",
            f"  {'model':<{width}}  " + "  ".join(f"{col:>11}" for col in columns),
        ]
        for name, values in models.items():
            cells = "  ".join(f"{values.get(col, float('nan')):>11.4f}" for col in columns)
            lines.append(f"  {name:<{width}}  {cells}")
        served, popular = models.get("served", {}), models.get("popularity", {})
        if served.get(columns[0]) is not None and popular.get(columns[0]):
            ratio = served[columns[0]] / popular[columns[0]]
            lines.append(f"served blend: {ratio:.2f}x popularity on {columns[0]}")
        lines += [
            f"ALS v{self.train.model_version}: {self.train.params.as_dict()} "
            f"({len(self.train.trials)} tuning trials in MLflow)",
            f"promotion: {self.promotion.reason}",
            f"published {self.publish.version}: model v{self.publish.model_version}, "
            f"{self.publish.users} users, {self.publish.popular} popular items",
            f"report: {self.evaluation.report}",
            f"nightly {doc['ds']}: {self.seconds:.1f} s",
        ]
        return "\n".join(lines)

    def report(self) -> str:
        return "\n".join(
            [
                f"rows: {self.silver.report()}",
                f"gold: {self.gold}",
                f"neighbours: {self.item_cf}, content items={self.content_items}",
                f"metrics@k (time-based hold-out):\n{self.evaluation.report_text()}",
                f"ALS candidate v{self.train.model_version}, {self.train.report()}",
                f"promotion: {self.promotion.reason}",
                f"published version {self.publish.version}: model v{self.publish.model_version}, "
                f"{self.publish.users} users, {self.publish.popular} popular items",
                f"steps:\n{self.step_report}",
                f"nightly wall time: {self.seconds:.1f} s",
            ]
        )


def log_timing(settings: Settings, ds: date, timer: StepTimer, seconds: float) -> str:
    """The step times as metrics of an MLflow run tagged step=nightly (one per nightly)."""
    tracking.configure(settings)
    with mlflow.start_run(run_name=f"nightly-{ds}") as run:
        mlflow.set_tags({tracking.STEP_TAG: "nightly", "ds": ds.isoformat()})
        timer.log_to_mlflow()
        mlflow.log_metric("nightly_seconds", seconds)
    return run.info.run_id


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> NightlyResult:
    parser = job_parser(__doc__.splitlines()[0], ds_default=SAMPLE_DS)
    parser.add_argument("--events", default=SAMPLE_EVENTS)
    parser.add_argument("--items")
    parser.add_argument(
        "--format", choices=ingest.FORMATS, default="online_retail", dest="source_format"
    )
    args = parse(parser, argv)
    started = time.perf_counter()
    spark, settings = session_and_settings("recolake-nightly", spark, settings)
    timer = StepTimer(spark, echo=True)
    ds = args.ds
    with timer.step("forget") as step:  # the API's erasure requests, before anything reads
        erased = forget.run_pending(spark, settings)
        step.counts = f"users={erased.users}"
    with timer.step("ingest") as step:
        ingested = ingest.run(spark, settings, ds, args.events, args.items, args.source_format)
        step.counts = ingested.step_counts()
    with timer.step("silver") as step:
        silver_counts = silver.run(spark, settings, ds)
        step.counts = silver_counts.step_counts()
    with timer.step("gold") as step:
        gold_counts = gold.run(spark, settings, ds)
        step.counts = gold_counts.step_counts()
    with timer.step("item_cf") as step:
        cf_counts = item_cf.run(spark, settings, ds)
        step.counts = cf_counts.step_counts()
    with timer.step("content") as step:
        content_items = content.run(spark, settings, ds)
        step.counts = content.step_counts(content_items)
    with timer.step("train") as step:
        trained = train.run(spark, settings, ds, keep_validation_fit=True)
        step.counts = trained.step_counts()
    with timer.step("evaluate") as step:
        evaluation = evaluate.run(spark, settings, ds, validation_fit=trained.validation_fit)
        step.counts = f"models={len(evaluation.metrics)} users={evaluation.evaluated_users}" + (
            f" reused={','.join(evaluation.reused)}" if evaluation.reused else ""
        )
    with timer.step("promote") as step:
        promotion = promote.run(settings, ds)
        step.counts = promotion.step_counts()
    with timer.step("publish") as step:
        published = publish.run(spark, settings, ds)
        step.counts = published.step_counts()
    seconds = time.perf_counter() - started
    timing_run = log_timing(settings, ds, timer, seconds)
    result = NightlyResult(
        ingested,
        silver_counts,
        gold_counts,
        cf_counts,
        content_items,
        trained,
        evaluation,
        promotion,
        published,
        seconds,
        timer.seconds,
        timing_run,
        timer.report(),
    )
    if logs.is_verbose():
        print(f"nightly {args.ds}\n{result.report()}", flush=True)
    else:
        print(result.summary(), flush=True)
    return result


if __name__ == "__main__":
    main()
