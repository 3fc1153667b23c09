"""Promote: the promotion gate. The candidate becomes champion only if its primary metric on
the evaluation split is not below the champion's configuration's on the same split.

    spark-submit pipelines/promote.py --ds 2011-12-09

Reads the latest `evaluate` run of --ds from MLflow (no Spark work). Otherwise the old
champion stays, and so stays published; either way the evaluation run and the candidate's
model version are tagged ``promoted`` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from pipelines.common import job_parser, parse
from pipelines.evaluate import metric_key, model_ref
from recolake import tracking
from recolake.settings import Settings, get_settings

log = logging.getLogger("recolake.promote")


@dataclass(frozen=True)
class PromotionResult:
    candidate_version: str
    champion_version: str  # after the decision
    promoted: bool
    reason: str
    evaluation_run_id: str


def promotion_decision(new: float, champion: float | None, metric: str) -> tuple[bool, str]:
    """Promote when there is no champion or the new model is at least as good on the same
    split (a tie promotes: same quality, fresher data)."""
    if champion is None:
        return True, "first model: becomes champion"
    if new >= champion:
        return True, f"{metric} {new:.4f} >= champion's {champion:.4f} on the same split"
    return False, f"{metric} {new:.4f} < champion's {champion:.4f} on the same split: kept"


def latest_evaluation(client: MlflowClient, settings: Settings, ds: date):
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{tracking.STEP_TAG} = 'evaluate' and tags.ds = '{ds.isoformat()}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise RuntimeError(f"no evaluation for ds={ds}: run `recolake evaluate --ds {ds}` first")
    return runs[0]


def run(settings: Settings, ds: date) -> PromotionResult:
    client = tracking.configure(settings)
    evaluation = latest_evaluation(client, settings, ds)
    tags, metrics = evaluation.data.tags, evaluation.data.metrics
    candidate = tags["candidate_version"]
    evaluated_champion = tags.get("champion_version") or None
    champion = model_ref(client, settings, settings.champion_alias)
    current = champion.version if champion else None
    if current != evaluated_champion and current != candidate:
        raise RuntimeError(
            f"the champion is v{current} but the evaluation of {ds} compared against "
            f"v{evaluated_champion}: re-run `recolake evaluate --ds {ds}`"
        )
    key = f"{settings.primary_metric}@{settings.eval_k}"
    name = settings.registered_model_name
    if current == candidate:
        promoted, reason = True, f"v{candidate} is already the champion"
    else:
        champion_value = metrics.get(metric_key("champion", key)) if current else None
        if current and champion_value is None:
            raise RuntimeError(
                f"evaluation run {evaluation.info.run_id} lacks the champion's {key}"
            )
        promoted, reason = promotion_decision(metrics[metric_key("als", key)], champion_value, key)
        if promoted:
            client.set_registered_model_alias(name, settings.champion_alias, candidate)
    for tag, value in {
        "promoted": str(promoted).lower(),
        "promotion_reason": reason,
        **({"previous_champion": current} if current else {}),
    }.items():
        client.set_tag(evaluation.info.run_id, tag, value)
        client.set_model_version_tag(name, candidate, tag, value)
    result = PromotionResult(
        candidate, candidate if promoted else str(current), promoted, reason, evaluation.info.run_id
    )
    log.info("promote %s: candidate v%s: %s", ds, candidate, reason)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> PromotionResult:
    """``spark`` is accepted like every job's main() but not needed: the gate is MLflow only."""
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    result = run(settings or get_settings(), args.ds)
    print(
        f"promote {args.ds}: candidate v{result.candidate_version} "
        f"{'promoted' if result.promoted else 'not promoted'}: {result.reason}",
        flush=True,
    )
    return result


if __name__ == "__main__":
    main()
