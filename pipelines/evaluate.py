"""Evaluate: every model on the same time-based hold-out -> JSON, MLflow and an HTML report.

    spark-submit pipelines/evaluate.py --ds 2011-12-09 [--output PATH.json]
    recolake evaluate --ds 2011-12-09 --output metrics.json

Measures, on the last ``holdout_days`` before the end of --ds (each model trained on what
came before): the ALS candidate (the version `train` registered under the candidate alias,
re-fitted on the training part with its chosen parameters), item-item CF, content, the four
popularity/trending baselines, the offline hybrid (a rank fusion of those lists, kept as the
yardstick) and ``served``: THE request-time blend (recolake.ranking.blend) replayed per user
with the state that user had at the cut (models/served.py). The hybrid's and the served
blend's weights are chosen on the ``validation_days`` before the hold-out; the served weights
are tagged on the candidate model version (``tracking.SERVED_WEIGHTS_TAG``) for publish. With
a champion, its ALS configuration and its served blend (its own tagged weights) are measured
on the same split into the document's ``champion`` section, which the gate compares.
Writes the typed document (recolake.evaluation_document) to --output (default
``<reports_dir>/<ds>/evaluation.json``), the HTML report into ``<output stem>-report/``,
and the same metrics, document and report to an MLflow run tagged ``step=evaluate`` that
`promote` reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
from models.evaluation import EvalSplit, measure_models, prepare_split
from models.hybrid import fuse, ndcg_by_weights, weight_grid
from models.offline import MODELS, als_lists, model_lists
from models.served import (
    BlendConfig,
    cf_neighbours,
    replay,
    rows_of_als,
    sample_users,
    state_at_cut,
    tune,
)
from models.served import weight_grid as served_grid
from pipelines.common import job_parser, parse, session_and_settings
from pipelines.train import ValidationFit
from recolake import tracking
from recolake.evaluation_document import SERVED, EvaluationDocument
from recolake.ranking import Weights
from recolake.settings import Settings

log = logging.getLogger("recolake.evaluate")

CHAMPION_CONFIG = "als_champion"
#: The champion's served blend, measured into the champion section (not a row of models).
CHAMPION_SERVED = "champion_served"


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
        served = self.document.get("served")
        if served:
            weights = ", ".join(f"{m}={w:g}" for m, w in served["weights"].items())
            lines.append(f"served weights (validation): {weights}")
        hybrid = self.document["hybrid"]
        if hybrid:
            weights = ", ".join(f"{m}={w:g}" for m, w in hybrid["weights"].items() if w)
            lines.append(f"hybrid weights (validation): {weights}")
        if self.reused:
            lines.append(f"not fitted again: {', '.join(self.reused)}")
        lines.append(f"report: {self.report}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Choices:
    """What the validation split chose: the offline hybrid's weights and the served blend's
    (document sections ``hybrid`` and ``served``; None when validation has no ground truth)."""

    hybrid: dict[str, Any] | None
    served: dict[str, Any] | None

    @property
    def served_weights(self) -> Weights | None:
        return Weights.from_mapping(self.served["weights"]) if self.served else None

    @property
    def personal_weights(self) -> dict[str, float]:
        """How the published per-user list fuses the models (ALS alone without a choice)."""
        if self.served and self.served.get("personal"):
            return dict(self.served["personal"]["weights"])
        return dict(ALS_ONLY)


#: The personal list of a version without a choice: ALS alone (as before it was fused).
ALS_ONLY = {"als": 1.0}


def personal_lists(
    lists: dict[str, DataFrame], weights: dict[str, float], depth: int, settings: Settings
) -> DataFrame:
    """The per-user list the publication carries for the blend's ``als`` source: the
    models' rank fusion (models.hybrid.fuse) with ``weights``, ``per_source`` deep, exactly
    as pipelines/publish.py builds it for every user."""
    need = BlendConfig.from_settings(settings, settings.eval_k).per_source
    used = {m: w for m, w in weights.items() if w > 0 and m in lists}
    return fuse({m: lists[m] for m in used}, used or ALS_ONLY, need, depth)


def neighbour_lists(cf: DataFrame, content: DataFrame) -> DataFrame:
    """Every neighbour kind a publication carries: (kind, item_id, neighbour_id, score,
    rank), the split's item-CF and the catalog's content neighbours."""
    cols = [c.KIND, c.ITEM_ID, c.NEIGHBOUR_ID, c.SCORE, F.col(c.RANK).cast("int").alias(c.RANK)]
    return cf.select(*cols).unionByName(content.select(*cols))


def served_als(
    split: EvalSplit, params: ALSParams, depth: int, settings: Settings, lists: DataFrame | None
) -> DataFrame:
    """ALS lists deep enough for the blend (max(blend_candidates_per_source, k)): the lists
    at hand when they are, else a fit at that depth."""
    need = BlendConfig.from_settings(settings, settings.eval_k).per_source
    if lists is not None and depth >= need:
        return lists
    return als_lists(split, params, need)


def choose_weights(
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
) -> Choices:
    """The hybrid's and the served blend's weights: each grid's point with the best NDCG@k
    on the validation split (the days before the hold-out; models trained before them).
    The served grid is scored on at most ``served_tuning_max_users`` (seeded sample) users.

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
    k, depth = settings.eval_k, settings.eval_depth
    key = f"ndcg@{k}"
    cached: list[DataFrame] = []
    try:
        if split.truth.isEmpty():
            log.warning("validation period %s..%s has no ground truth", validation_start, cutoff)
            return Choices(None, None)
        cf = cf_neighbours(split, settings).cache()
        cached.append(cf)
        lists = model_lists(
            split,
            settings,
            als_params=als_params,
            content_neighbours=content,
            catalog=catalog,
            depth=depth,
            # the personal list's models too: one not in hybrid_models was silently left out
            models=dict.fromkeys([*settings.hybrid_models, *settings.personal_models]),
            fitted=fitted,
            cf_neighbours=cf,
        )
        lists = {m: df.cache() for m, df in lists.items()}
        cached.extend(lists.values())
        hybrid_lists = {m: lists[m] for m in settings.hybrid_models if m in lists}
        grid = weight_grid(list(hybrid_lists), settings.hybrid_weight_step)
        ranked = ndcg_by_weights(hybrid_lists, split.truth, grid, k, depth)
        validation_users = split.users.count()
        hybrid = {
            "weights": ranked[0][0],
            f"validation_{key}": ranked[0][1],
            "validation_users": validation_users,
            "grid_points": len(grid),
            "top": [{"weights": w, key: v} for w, v in ranked[:5]],
            "single_models": {
                m: v for w, v in ranked for m, x in w.items() if x == 1.0 and len(hybrid_lists) > 1
            },
        }

        # The personal list (the blend's per-user source): the fusion of the personal models
        # (settings.personal_models) chosen on this validation split, as publish fuses them.
        personal_models = [m for m in settings.personal_models if m in lists]
        personal_grid = weight_grid(personal_models, settings.hybrid_weight_step)
        personal_ranked = ndcg_by_weights(
            {m: lists[m] for m in personal_models}, split.truth, personal_grid, k, depth
        )
        personal_weights = personal_ranked[0][0]
        personal = personal_lists(lists, personal_weights, depth, settings).cache()
        cached.append(personal)

        users = sample_users(
            split.users, settings.served_tuning_max_users, settings.als_seed
        ).cache()
        cached.append(users)
        state = state_at_cut(
            split,
            settings,
            als=personal,
            neighbours=neighbour_lists(cf, content),
            catalog=catalog,
            k=k,
            users=users,
        )
        points = served_grid(settings.hybrid_weight_step)
        tuned = tune(state, split.truth, points)
        state.unpersist()
        best, value = tuned.best
        served = {
            "weights": best.as_dict(),
            "validation": value,
            "validation_users": tuned.users,
            "grid_points": len(points),
            "top": [{"weights": w.as_dict(), "value": v} for w, v in tuned.ranked[:5]],
            "personal": {
                "weights": personal_weights,
                "validation": personal_ranked[0][1],
                "grid_points": len(personal_grid),
            },
        }
        log.info(
            "served weights on %d validation users (%d grid points): %s %s=%.4f",
            tuned.users,
            len(points),
            best.to_json(),
            key,
            value,
        )
        return Choices(hybrid, served)
    finally:
        for df in cached:
            df.unpersist()
        split.unpersist()
        if validation_fit is not None:
            validation_fit.unpersist()


def champion_weights(
    client: MlflowClient, settings: Settings, version: str
) -> tuple[Weights, dict[str, float]]:
    """The served weights and the personal list's fusion weights tagged on a model version;
    the defaults (and ALS alone) when it has none (a version registered before they were
    chosen)."""
    mv = client.get_model_version(settings.registered_model_name, version)
    tags = mv.tags or {}
    payload = tags.get(tracking.SERVED_WEIGHTS_TAG)
    personal = json.loads(tags.get(tracking.PERSONAL_WEIGHTS_TAG) or "null") or dict(ALS_ONLY)
    if not payload:
        log.info(
            "v%s has no %s tag: its served blend uses the default weights",
            version,
            tracking.SERVED_WEIGHTS_TAG,
        )
        return Weights(), personal
    return Weights.from_json(payload), personal


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
    """Metrics@k and the popularity profile of every model's list (and the training
    history's profile under "history"), in one Spark action (models.evaluation.measure_models)."""
    return measure_models(
        lists, truth=split.truth, k=k, catalog=catalog, interactions=split.train_strength
    )


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
    choices = choose_weights(
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
    hybrid = choices.hybrid
    served_weights = choices.served_weights or Weights()
    split = prepare_split(
        events,
        cutoff,
        as_of,
        weights=settings.event_weights,
        half_life_days=settings.decay_half_life_days,
    )
    cf = cf_neighbours(split, settings).cache()
    lists = model_lists(
        split,
        settings,
        als_params=candidate.params,
        content_neighbours=content,
        catalog=catalog,
        depth=depth,
        models=MODELS,
        cf_neighbours=cf,
    )
    lists = {m: df.cache() for m, df in lists.items()}
    if hybrid is not None:
        lists["hybrid"] = fuse(lists, hybrid["weights"], k, depth)
    # The served blend on the test split: same users, same metrics as every other model.
    neighbours = neighbour_lists(cf, content)
    candidate_als = served_als(split, candidate.params, depth, settings, lists["als"])
    personal_weights = choices.personal_weights
    personal = personal_lists(
        {**lists, "als": candidate_als}, personal_weights, depth, settings
    ).cache()
    state = state_at_cut(split, settings, als=personal, neighbours=neighbours, catalog=catalog, k=k)
    lists[SERVED] = replay(state, served_weights).cache()
    if champion is not None and champion.params != candidate.params:
        champion_als = als_lists(split, champion.params, max(k, state.config.per_source)).cache()
        lists[CHAMPION_CONFIG] = champion_als
    elif champion is not None:
        # Same parameters, same split, same data: the champion's configuration is the
        # candidate's fit, measured once.
        champion_als = candidate_als
        reused.append("champion_config_is_candidate")
    if champion is not None:
        # the same users' state at the same cut, with the champion's ALS lists
        weights_of_champion, champion_personal = champion_weights(
            client, settings, champion.version
        )
        champion_list = personal_lists(
            {**lists, "als": champion_als}, champion_personal, depth, settings
        )
        champion_state = replace(
            state, als=rows_of_als(champion_list, state.users, catalog, state.config)
        )
        lists[CHAMPION_SERVED] = replay(champion_state, weights_of_champion).cache()
    metrics, profiles = measure(lists, split, k, catalog)
    champion_section = None
    if champion is not None:
        source = CHAMPION_CONFIG if CHAMPION_CONFIG in metrics else "als"
        champion_section = {
            "version": champion.version,
            "ds": champion.ds,
            "params": champion.params.as_dict(),
            "metrics": metrics[source],
            "served": metrics[CHAMPION_SERVED],
        }
        metrics.pop(CHAMPION_CONFIG, None)
        metrics.pop(CHAMPION_SERVED, None)
        profiles.pop(CHAMPION_CONFIG, None)
        profiles.pop(CHAMPION_SERVED, None)
    typed = EvaluationDocument.parse(
        {
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
            "served": choices.served,
            "hybrid": hybrid,
            "candidate": {
                "version": candidate.version,
                "ds": candidate.ds,
                "params": candidate.params.as_dict(),
            },
            "champion": champion_section,
            "popularity_profile": profiles,
            "reused": reused,
        }
    )
    document = typed.to_dict()
    state.unpersist()
    personal.unpersist()
    cf.unpersist()
    for df in lists.values():
        df.unpersist()
    split.unpersist()
    catalog.unpersist()
    content.unpersist()

    output = output or Path(settings.reports_dir) / ds.isoformat() / "evaluation.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    typed.write(output)
    from models.report import write_report  # matplotlib: only when a report is written

    report = write_report(typed, output.parent / f"{output.stem}-report")
    if choices.served is not None:
        # What publish hands the API: the weights chosen for this candidate, on its version.
        client.set_model_version_tag(
            settings.registered_model_name,
            candidate.version,
            tracking.SERVED_WEIGHTS_TAG,
            served_weights.to_json(),
        )
        client.set_model_version_tag(
            settings.registered_model_name,
            candidate.version,
            tracking.PERSONAL_WEIGHTS_TAG,
            json.dumps(personal_weights, sort_keys=True),
        )

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
                "served_tuning_max_users": settings.served_tuning_max_users,
                **({f"hybrid.{m}": w for m, w in hybrid["weights"].items()} if hybrid else {}),
                **({f"served.{m}": w for m, w in served_weights.as_dict().items()}),
                **({f"personal.{m}": w for m, w in personal_weights.items()}),
            }
        )
        mlflow.log_metrics(
            {metric_key(m, name): v for m, values in metrics.items() for name, v in values.items()}
        )
        if champion_section:
            mlflow.log_metrics(
                {
                    **{
                        metric_key("champion", n): v for n, v in champion_section["metrics"].items()
                    },
                    **{
                        metric_key(CHAMPION_SERVED, n): v
                        for n, v in champion_section["served"].items()
                    },
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
