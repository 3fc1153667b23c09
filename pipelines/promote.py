"""Promote: the promotion gate. It judges what shoppers get: the candidate becomes champion
only if its served blend (the model ``served`` of the evaluation: the API's ranker replayed
with the candidate's ALS and the weights chosen on validation) scores at least the champion's
served blend on the primary metric, on the same split.

    spark-submit pipelines/promote.py --ds 2011-12-09

Reads the latest `evaluate` run of --ds from MLflow and its typed document (the
``evaluation.json`` artifact, recolake.evaluation_document); no Spark work. Otherwise the old
champion stays, and so stays published; either way the evaluation run and the candidate's
model version are tagged ``promoted`` with the reason, and the run's document and report are
re-logged with the decision in them.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from pipelines.common import job_parser, parse, run_step
from pipelines.evaluate import model_ref
from recolake import tracking
from recolake.evaluation_document import (
    ARTIFACT,
    SERVED,
    DocumentError,
    EvaluationDocument,
    Promotion,
)
from recolake.settings import Settings, get_settings

log = logging.getLogger("recolake.promote")


@dataclass(frozen=True)
class PromotionResult:
    candidate_version: str
    champion_version: str  # after the decision
    promoted: bool
    reason: str
    evaluation_run_id: str

    def step_counts(self) -> str:
        """What the step's line says (the nightly's summary gives the reason)."""
        verdict = "promoted" if self.promoted else "not promoted"
        return f"candidate=v{self.candidate_version} {verdict}"


def promotion_decision(new: float, champion: float | None, metric: str) -> tuple[bool, str]:
    """``new``, ``champion``: the served blends' ``metric`` on the same split. Promote when
    there is no champion or the candidate's is at least as good (a tie promotes: same
    quality, fresher data). NaN (nothing measured) never promotes over a champion."""
    if champion is None:
        return True, "first model: becomes champion"
    where = f"on the same split ({SERVED} blends)"
    if new >= champion:
        return True, f"{SERVED} {metric} {new:.4f} >= champion's {champion:.4f} {where}"
    return False, f"{SERVED} {metric} {new:.4f} < champion's {champion:.4f} {where}: kept"


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


def gate_values(document: EvaluationDocument, settings: Settings) -> tuple[float, float | None]:
    """(the candidate's served primary metric, the champion's or None without a champion),
    from the document; a RuntimeError naming what is missing when it lacks them."""
    key = f"{settings.primary_metric}@{settings.eval_k}"
    where = f"the evaluation of {document.ds}"
    if document.primary_metric != key:
        raise RuntimeError(
            f"{where} measured {document.primary_metric} but the gate is configured for {key}: "
            f"re-run `recolake evaluate --ds {document.ds}`"
        )
    try:
        return document.primary(SERVED), document.champion_served()
    except DocumentError as exc:
        raise RuntimeError(f"the gate judges the {SERVED} blend, but {exc}") from exc


def evaluation_document(client: MlflowClient, run_id: str) -> EvaluationDocument:
    try:
        return EvaluationDocument.from_mlflow(client, run_id)
    except (DocumentError, ValueError) as exc:  # absent, or not a valid document
        raise RuntimeError(f"evaluation run {run_id}: no valid {ARTIFACT}: {exc}") from exc


def record_decision(client: MlflowClient, run_id: str, document: EvaluationDocument) -> None:
    """The decided document and its report, re-logged to the evaluation run (the report's
    promotion section then shows the decision)."""
    from models.report import write_report  # matplotlib: only here

    client.log_dict(run_id, document.to_dict(), ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(document, Path(tmp) / "report")
        client.log_artifacts(run_id, str(report.parent), "report")


def run(settings: Settings, ds: date) -> PromotionResult:
    client = tracking.configure(settings)
    evaluation = latest_evaluation(client, settings, ds)
    document = evaluation_document(client, evaluation.info.run_id)
    candidate = document.candidate.version
    evaluated_champion = document.champion.version if document.champion else None
    champion = model_ref(client, settings, settings.champion_alias)
    current = champion.version if champion else None
    if current != evaluated_champion and current != candidate:
        raise RuntimeError(
            f"the champion is v{current} but the evaluation of {ds} compared against "
            f"v{evaluated_champion}: re-run `recolake evaluate --ds {ds}`"
        )
    name = settings.registered_model_name
    new = champion_value = None
    if current == candidate:
        promoted, reason = True, f"v{candidate} is already the champion"
    else:
        new, champion_value = gate_values(document, settings)
        promoted, reason = promotion_decision(new, champion_value, document.primary_metric)
        if promoted:
            client.set_registered_model_alias(name, settings.champion_alias, candidate)
    for tag, value in {
        "promoted": str(promoted).lower(),
        "promotion_reason": reason,
        **({"previous_champion": current} if current else {}),
    }.items():
        client.set_tag(evaluation.info.run_id, tag, value)
        client.set_model_version_tag(name, candidate, tag, value)
    decided = document.model_copy(
        update={
            "promotion": Promotion(
                metric=document.primary_metric,
                candidate_version=candidate,
                candidate=new,
                champion_version=evaluated_champion,
                champion=champion_value,
                promoted=promoted,
                reason=reason,
            )
        }
    )
    record_decision(client, evaluation.info.run_id, decided)
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
    return run_step(
        "promote",
        args.ds,
        lambda: run(settings or get_settings(), args.ds),
        lambda r: f"{r.step_counts()}: {r.reason}",
    )


if __name__ == "__main__":
    main()
