"""Evaluate: every model on the same time-based hold-out -> JSON, MLflow and an HTML report.

    spark-submit pipelines/evaluate.py --ds 2011-12-09 [--output PATH.json]
    recolake evaluate --ds 2011-12-09 --output metrics.json

Measures, on the last ``holdout_days`` before the end of --ds (each model trained on what
came before): the ALS candidate (the version `train` registered under the candidate alias,
re-fitted on the training part with its chosen parameters), the champion's configuration
when it differs, item-item CF, content, the four popularity/trending baselines and the
offline hybrid, whose weights are chosen on the ``validation_days`` before the hold-out.
Writes ``{"k", "split", "models": {name: {"ndcg@10": ...}}, ...}`` to --output (default
``<reports_dir>/<ds>/evaluation.json``), the HTML report into ``<output stem>-report/``,
and the same metrics, document and report to an MLflow run tagged ``step=evaluate`` that
`promote` reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.tables import GOLD_ITEM_CATALOG, GOLD_ITEM_CONTENT_NEIGHBOURS, SILVER_EVENTS
from models.als import ALSParams
from models.evaluation import (
    EvalSplit,
    RankingEvaluation,
    beyond_accuracy,
    popularity_deciles,
    popularity_profile,
    prepare_split,
)
from models.hybrid import fuse, ndcg_by_weights, weight_grid
from models.offline import MODELS, als_lists, model_lists
from pipelines.common import job_parser, parse, session_and_settings
from pipelines.train import ValidationFit
from recolake import tracking
from recolake.settings import Settings

log = logging.getLogger("recolake.evaluate")

CHAMPION_CONFIG = "als_champion"


@dataclass(frozen=True)
class ModelRef:
    """A registered ALS version: what it is called, which date it learned, its parameters."""

    version: str
    ds: str
    params: ALSParams


def model_ref(client: MlflowClient, settings: Settings, alias: str) -> ModelRef | None:
    """The version behind ``alias``, None when the alias is not set yet."""
    try:
        version = client.get_model_version_by_alias(settings.registered_model_name, alias)
    except MlflowException:
        return None
    run = client.get_run(version.run_id).data
    p = run.params
    params = ALSParams(
        rank=int(p["rank"]),
        max_iter=int(p["max_iter"]),
        reg_param=float(p["reg_param"]),
        alpha=float(p["alpha"]),
        seed=int(p["seed"]),
    )
    return ModelRef(str(version.version), run.tags.get("ds", ""), params)


def metric_key(model: str, metric: str) -> str:
    """MLflow metric name of a model's metric ('@' is not allowed there)."""
    return f"{model}.{metric.replace('@', '_at_')}"


@dataclass(frozen=True)
class EvaluationResult:
    run_id: str
    document: dict[str, Any]
    output: Path
    report: Path

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return self.document["models"]

    @property
    def evaluated_users(self) -> int:
        return self.document["split"]["evaluated_users"]

    @property
    def reused(self) -> list[str]:
        """What was taken instead of fitted again (the train job's validation fit; the
        candidate's fit standing for the champion's identical configuration)."""
        return self.document.get("reused", [])

    def report_text(self) -> str:
        lines = [f"evaluated users: {self.evaluated_users}"]
        for model, values in self.metrics.items():
            lines.append(
                f"  {model:<23}" + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items()))
            )
        hybrid = self.document["hybrid"]
        if hybrid:
            weights = ", ".join(f"{m}={w:g}" for m, w in hybrid["weights"].items() if w)
            lines.append(f"hybrid weights (validation): {weights}")
        if self.reused:
            lines.append(f"not fitted again: {', '.join(self.reused)}")
        lines.append(f"report: {self.report}")
        return "\n".join(lines)


def choose_hybrid_weights(
    events: DataFrame,
    settings: Settings,
    validation_start,
    cutoff,
    *,
    als_params: ALSParams,
    content: DataFrame,
    catalog: DataFrame,
    validation_fit: ValidationFit | None = None,
    reused: list[str] | None = None,
) -> dict[str, Any] | None:
    """The hybrid's weights: the grid point with the best NDCG@k on the validation split
    (the days before the hold-out; models trained before them). None when the validation
    period has no ground truth.

    ``validation_fit``: the train job's fit on this same split with these same parameters
    (same session): its split and ALS lists are used instead of preparing and fitting again;
    what was taken is appended to ``reused``."""
    fitted: dict[str, DataFrame] = {}
    if reusable(validation_fit, validation_start, cutoff, als_params, settings.eval_depth):
        split = validation_fit.split
        fitted["als"] = validation_fit.als
        if reused is not None:
            reused.append("validation_split_and_als_fit")
    else:
        split = prepare_split(
            events,
            validation_start,
            cutoff,
            weights=settings.event_weights,
            half_life_days=settings.decay_half_life_days,
        )
    try:
        if split.truth.isEmpty():
            log.warning("validation period %s..%s has no ground truth", validation_start, cutoff)
            return None
        lists = model_lists(
            split,
            settings,
            als_params=als_params,
            content_neighbours=content,
            catalog=catalog,
            depth=settings.eval_depth,
            models=settings.hybrid_models,
            fitted=fitted,
        )
        lists = {m: df.cache() for m, df in lists.items()}
        grid = weight_grid(list(lists), settings.hybrid_weight_step)
        ranked = ndcg_by_weights(lists, split.truth, grid, settings.eval_k, settings.eval_depth)
        for df in lists.values():
            df.unpersist()
        key = f"ndcg@{settings.eval_k}"
        return {
            "weights": ranked[0][0],
            f"validation_{key}": ranked[0][1],
            "validation_users": split.users.count(),
            "grid_points": len(grid),
            "top": [{"weights": w, key: v} for w, v in ranked[:5]],
            "single_models": {
                m: v for w, v in ranked for m, x in w.items() if x == 1.0 and len(lists) > 1
            },
        }
    finally:
        split.unpersist()
        if validation_fit is not None:
            validation_fit.unpersist()


def reusable(fit: ValidationFit | None, start, end, params: ALSParams, depth: int) -> bool:
    """Whether the train job's validation fit is this split, these parameters, this depth."""
    return (
        fit is not None
        and fit.split.cutoff == start
        and fit.split.end == end
        and fit.params == params
        and fit.depth >= depth
    )


def measure(
    lists: dict[str, DataFrame], split: EvalSplit, k: int, catalog: DataFrame
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Metrics@k and the popularity profile of every model's list."""
    deciles = popularity_deciles(split.train_strength).cache()
    metrics, profiles = {}, {"history": popularity_profile(split.train_strength, deciles)}
    catalog_items = catalog.count()
    for name, recs in lists.items():
        top = recs.where(F.col(c.RANK) <= k).cache()
        metrics[name] = {
            **RankingEvaluation(top, split.truth, k).all(),
            **beyond_accuracy(
                top,
                k=k,
                catalog=catalog,
                interactions=split.train_strength,
                catalog_items=catalog_items,
            ),
        }
        profiles[name] = popularity_profile(top, deciles, k=k)
        top.unpersist()
    deciles.unpersist()
    return metrics, profiles


def run(
    spark: SparkSession,
    settings: Settings,
    ds: date,
    output: Path | None = None,
    *,
    validation_fit: ValidationFit | None = None,
) -> EvaluationResult:
    """``validation_fit``: the train job's validation split and chosen ALS fit from the same
    session (the nightly), used for the hybrid's weights when it matches (see reusable())."""
    client = tracking.configure(settings)
    candidate = model_ref(client, settings, settings.candidate_alias)
    if candidate is None:
        raise RuntimeError(
            f"no model under alias '{settings.candidate_alias}' of "
            f"{settings.registered_model_name}: run `recolake train --ds {ds}` first"
        )
    if candidate.ds != ds.isoformat():
        log.warning(
            "the candidate (v%s) was trained for %s, not %s", candidate.version, candidate.ds, ds
        )
    champion = model_ref(client, settings, settings.champion_alias)
    k, depth = settings.eval_k, settings.eval_depth
    as_of = transforms.end_of_day(ds)
    cutoff = as_of - timedelta(days=settings.holdout_days)
    validation_start = cutoff - timedelta(days=settings.validation_days)
    events = SILVER_EVENTS.read(spark, settings)
    catalog = GOLD_ITEM_CATALOG.read(spark, settings).where(F.col(c.DS) == F.lit(ds)).cache()
    if catalog.isEmpty():
        raise RuntimeError(f"gold.item_catalog has no rows for ds={ds}: run gold first")
    content = (
        GOLD_ITEM_CONTENT_NEIGHBOURS.read_or_empty(spark, settings)
        .where(F.col(c.DS) == F.lit(ds))
        .cache()
    )

    reused: list[str] = []
    hybrid = choose_hybrid_weights(
        events,
        settings,
        validation_start,
        cutoff,
        als_params=candidate.params,
        content=content,
        catalog=catalog,
        validation_fit=validation_fit,
        reused=reused,
    )
    split = prepare_split(
        events,
        cutoff,
        as_of,
        weights=settings.event_weights,
        half_life_days=settings.decay_half_life_days,
    )
    lists = model_lists(
        split,
        settings,
        als_params=candidate.params,
        content_neighbours=content,
        catalog=catalog,
        depth=depth,
        models=MODELS,
    )
    lists = {m: df.cache() for m, df in lists.items()}
    if hybrid is not None:
        lists["hybrid"] = fuse(lists, hybrid["weights"], k, depth)
    if champion is not None and champion.params != candidate.params:
        lists[CHAMPION_CONFIG] = als_lists(split, champion.params, k)
    elif champion is not None:
        # Same parameters, same split, same data: the champion's configuration is the
        # candidate's fit, measured once.
        reused.append("champion_config_is_candidate")
    metrics, profiles = measure(lists, split, k, catalog)
    champion_metrics = None
    if champion is not None:
        source = CHAMPION_CONFIG if CHAMPION_CONFIG in metrics else "als"
        champion_metrics = {
            "version": champion.version,
            "ds": champion.ds,
            "params": champion.params.as_dict(),
            **metrics[source],
        }
        metrics.pop(CHAMPION_CONFIG, None)
    document = {
        "k": k,
        "ds": ds.isoformat(),
        "primary_metric": f"{settings.primary_metric}@{k}",
        "split": {
            "kind": "time",
            "cutoff": cutoff.isoformat(),
            "end": as_of.isoformat(),
            "holdout_days": settings.holdout_days,
            "validation_start": validation_start.isoformat(),
            "validation_days": settings.validation_days,
            "train_users": split.train_strength.select(c.USER_KEY).distinct().count(),
            "evaluated_users": split.users.count(),
        },
        "models": metrics,
        "hybrid": hybrid,
        "candidate": {
            "version": candidate.version,
            "ds": candidate.ds,
            "params": candidate.params.as_dict(),
        },
        "champion": champion_metrics,
        "popularity_profile": profiles,
        "reused": reused,
    }
    for df in lists.values():
        df.unpersist()
    split.unpersist()
    catalog.unpersist()
    content.unpersist()

    output = output or Path(settings.reports_dir) / ds.isoformat() / "evaluation.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    from models.report import write_report  # matplotlib: only when a report is written

    report = write_report(document, output.parent / f"{output.stem}-report")

    with mlflow.start_run(run_name=f"evaluate-{ds}") as run_info:
        mlflow.set_tags(
            {
                tracking.STEP_TAG: "evaluate",
                "ds": ds.isoformat(),
                "candidate_version": candidate.version,
                "champion_version": champion.version if champion else "",
            }
        )
        mlflow.log_params(
            {
                "eval_k": k,
                "eval_depth": depth,
                "holdout_days": settings.holdout_days,
                "validation_days": settings.validation_days,
                "hybrid_weight_step": settings.hybrid_weight_step,
                **({f"hybrid.{m}": w for m, w in hybrid["weights"].items()} if hybrid else {}),
            }
        )
        mlflow.log_metrics(
            {metric_key(m, name): v for m, values in metrics.items() for name, v in values.items()}
        )
        if champion_metrics:
            mlflow.log_metrics(
                {
                    metric_key("champion", name): v
                    for name, v in champion_metrics.items()
                    if "@" in name
                }
            )
        mlflow.log_metric("evaluated_users", document["split"]["evaluated_users"])
        mlflow.log_dict(document, "evaluation.json")
        mlflow.log_artifacts(str(report.parent), "report")
    result = EvaluationResult(run_info.info.run_id, document, output, report)
    log.info("evaluate %s:\n%s", ds, result.report_text())
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> EvaluationResult:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the metrics JSON (default <reports_dir>/<ds>/evaluation.json)",
    )
    args = parse(parser, argv)
    spark, settings = session_and_settings("recolake-evaluate", spark, settings)
    result = run(spark, settings, args.ds, args.output)
    print(f"evaluate {args.ds}\n{result.report_text()}", flush=True)
    return result


if __name__ == "__main__":
    main()
