"""Nightly: ingest -> silver -> gold -> item-CF, content, ALS -> evaluate -> promote -> publish.

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

from pyspark.sql import SparkSession

from pipelines import content, evaluate, gold, ingest, item_cf, promote, publish, silver, train
from pipelines.common import job_parser, parse, session_and_settings
from recolake.settings import PROJECT_ROOT, Settings

log = logging.getLogger("recolake.nightly")

SAMPLE_EVENTS = str(PROJECT_ROOT / "data" / "sample" / "online_retail_sample.csv.gz")
SAMPLE_DS = date(2011, 12, 9)


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
                f"nightly wall time: {self.seconds:.1f} s",
            ]
        )


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
    ingested = ingest.run(spark, settings, args.ds, args.events, args.items, args.source_format)
    silver_counts = silver.run(spark, settings, args.ds)
    gold_counts = gold.run(spark, settings, args.ds)
    cf_counts = item_cf.run(spark, settings, args.ds)
    content_items = content.run(spark, settings, args.ds)
    trained = train.run(spark, settings, args.ds)
    evaluation = evaluate.run(spark, settings, args.ds)
    promotion = promote.run(settings, args.ds)
    published = publish.run(spark, settings, args.ds)
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
        time.perf_counter() - started,
    )
    print(f"nightly {args.ds}\n{result.report()}", flush=True)
    return result


if __name__ == "__main__":
    main()
