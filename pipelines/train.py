"""Train: ALS (implicit) on gold strength as of --ds, evaluated against popularity on a
time-based hold-out, tracked in MLflow and registered with the champion alias.

    spark-submit pipelines/train.py --ds 2011-12-09
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.tables import (
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_USER_ITEM_STRENGTH,
    ITEM_INDEX,
    SILVER_EVENTS,
    USER_INDEX,
)
from models.als import ALSParams, Indexes, recommend, train_als
from models.baselines import popular_for_users
from models.evaluation import RankingEvaluation, beyond_accuracy, ground_truth, time_split
from models.item_cf import cap_groups, co_occurrence_neighbours, score_from_neighbours
from pipelines.common import job_parser, parse, session_and_settings
from recolake import tracking
from recolake.settings import Settings

log = logging.getLogger("recolake.train")

#: What the logged Spark model needs to load; explicit, because inferring it is slow.
MODEL_PIP_REQUIREMENTS = ["pyspark==4.2.0"]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_version: str
    metrics: dict[str, dict[str, float]]
    evaluated_users: int
    promoted: bool = True
    promotion_reason: str = ""

    def report(self) -> str:
        lines = [f"evaluated users: {self.evaluated_users}"]
        for model, values in self.metrics.items():
            lines.append(
                f"  {model:<11}" + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items()))
            )
        if self.promotion_reason:
            lines.append(f"promotion: {self.promotion_reason}")
        return "\n".join(lines)


#: The metric a new model must not lose on to become champion.
PRIMARY_METRIC = "ndcg"


def current_champion(client: MlflowClient, settings: Settings) -> tuple[str, ALSParams] | None:
    """(version, params) of the model behind the champion alias, None before the first one."""
    try:
        version = client.get_model_version_by_alias(
            settings.registered_model_name, settings.champion_alias
        )
    except MlflowException:
        return None
    p = client.get_run(version.run_id).data.params
    params = ALSParams(
        rank=int(p["rank"]),
        max_iter=int(p["max_iter"]),
        reg_param=float(p["reg_param"]),
        alpha=float(p["alpha"]),
        seed=int(p["seed"]),
    )
    return str(version.version), params


def promotion_decision(new: float, champion: float | None, metric: str) -> tuple[bool, str]:
    """Promote when there is no champion or the new model is at least as good on the same
    split (a tie promotes: same quality, fresher data)."""
    if champion is None:
        return True, "first model: becomes champion"
    if new >= champion:
        return True, f"{metric} {new:.4f} >= champion's {champion:.4f} on the same split"
    return False, f"{metric} {new:.4f} < champion's {champion:.4f} on the same split: kept"


def params_from(settings: Settings) -> ALSParams:
    return ALSParams(
        rank=settings.als_rank,
        max_iter=settings.als_max_iter,
        reg_param=settings.als_reg_param,
        alpha=settings.als_alpha,
        seed=settings.als_seed,
    )


def cf_neighbours_before(events: DataFrame, strength: DataFrame, settings: Settings) -> DataFrame:
    """co_view + bought_together neighbours from training data only (no hold-out leak),
    built as pipelines/item_cf.py builds them; a pair in both kinds keeps its best score."""
    top_n, support, cap = (
        settings.neighbours_top_n,
        settings.cf_min_support,
        settings.cf_max_items_per_group,
    )
    histories = cap_groups(strength, col_group=c.USER_KEY, col_order=c.STRENGTH, max_items=cap)
    baskets = cap_groups(
        events.where(
            F.col(c.SESSION_ID).isNotNull() & F.col(c.EVENT_TYPE).isin("purchase", "add_to_cart")
        )
        .groupBy(c.SESSION_ID, c.ITEM_ID)
        .agg(F.max(c.EVENT_TIME).alias("_t")),
        col_group=c.SESSION_ID,
        col_order="_t",
        max_items=cap,
    )
    both = co_occurrence_neighbours(
        histories, col_group=c.USER_KEY, top_n=top_n, min_support=support
    ).unionByName(
        co_occurrence_neighbours(baskets, col_group=c.SESSION_ID, top_n=top_n, min_support=support)
    )
    return both.groupBy(c.ITEM_ID, c.NEIGHBOUR_ID).agg(F.max(c.SCORE).alias(c.SCORE))


def evaluate_on_holdout(
    events: DataFrame,
    settings: Settings,
    ds: date,
    params: ALSParams,
    champion: ALSParams | None = None,
) -> tuple[dict[str, dict[str, float]], int, dict[str, float] | None]:
    """Every model trained on events before the hold-out, measured on the same hold-out:
    ALS, popularity, item-item CF and (when content neighbours exist for --ds) content.
    Content neighbours come from the catalog only, so reusing --ds's table leaks nothing
    about who bought what in the hold-out. The champion's configuration is re-trained on
    the same training part (the champion itself has seen the hold-out) and measured too."""
    spark = events.sparkSession
    as_of = transforms.end_of_day(ds)
    cutoff = as_of - timedelta(days=settings.holdout_days)
    split = time_split(events, cutoff, as_of)
    weights = settings.event_weights
    train_strength = transforms.user_item_strength(
        split.train, as_of=cutoff, weights=weights, half_life_days=settings.decay_half_life_days
    ).cache()
    positive = [t for t, w in weights.items() if w > 0]
    truth = ground_truth(split.test, train_strength, positive_types=positive).cache()
    users = truth.select(c.USER_KEY).distinct()
    k = settings.eval_k

    indexes = Indexes.build(train_strength)
    model = train_als(train_strength, indexes, params)
    als_recs = recommend(model, indexes, users, train_strength, k)
    popularity = transforms.item_popularity(
        split.train, as_of=cutoff, window_days=settings.popularity_window_days, weights=weights
    )
    popular_recs = popular_for_users(users, popularity, train_strength, k)
    history = train_strength.join(users, c.USER_KEY, "left_semi")
    models = {"als": als_recs, "popularity": popular_recs}
    models["item_cf"] = score_from_neighbours(
        history, cf_neighbours_before(split.train, train_strength, settings), k
    )
    content = GOLD_ITEM_CONTENT_NEIGHBOURS.read_or_empty(spark, settings).where(
        F.col(c.DS) == F.lit(ds)
    )
    if not content.isEmpty():
        models["content"] = score_from_neighbours(history, content, k)
    else:
        log.info("no content neighbours for ds=%s: content model not evaluated", ds)
    catalog = GOLD_ITEM_CATALOG.read(spark, settings).where(F.col(c.DS) == F.lit(ds)).cache()

    metrics = {}
    evaluated = 0
    for name, recs in models.items():
        recs = recs.cache()
        evaluation = RankingEvaluation(recs, truth, k)
        metrics[name] = {
            **evaluation.all(),
            **beyond_accuracy(recs, k=k, catalog=catalog, interactions=train_strength),
        }
        evaluated = evaluation.users
        recs.unpersist()
    catalog.unpersist()
    champion_metrics = None
    if champion is not None:
        if champion == params:
            champion_metrics = {m: v for m, v in metrics["als"].items() if "@" in m}
        else:
            champion_model = train_als(train_strength, indexes, champion)
            champion_recs = recommend(champion_model, indexes, users, train_strength, k)
            champion_metrics = RankingEvaluation(champion_recs, truth, k).all()
    train_strength.unpersist()
    truth.unpersist()
    return metrics, evaluated, champion_metrics


def run(spark: SparkSession, settings: Settings, ds: date) -> TrainResult:
    client = tracking.configure(settings)
    params = params_from(settings)
    events = SILVER_EVENTS.read(spark, settings)
    strength = GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(ds)).cache()
    if strength.isEmpty():
        raise RuntimeError(f"gold.user_item_strength has no rows for ds={ds}: run gold first")
    lineage = {
        f"delta_version.{t.qualified_name}": t.version(spark, settings)
        for t in (SILVER_EVENTS, GOLD_USER_ITEM_STRENGTH)
    }

    with mlflow.start_run(run_name=f"nightly-{ds}") as run_info:
        mlflow.set_tags({"ds": ds.isoformat(), "model_type": "als_implicit", **lineage})
        mlflow.log_params(
            {
                **params.as_dict(),
                "holdout_days": settings.holdout_days,
                "eval_k": settings.eval_k,
                "decay_half_life_days": settings.decay_half_life_days,
                **{f"weight.{k}": v for k, v in settings.event_weights.items()},
            }
        )
        champion = current_champion(client, settings)
        metrics, evaluated, champion_metrics = evaluate_on_holdout(
            events, settings, ds, params, champion[1] if champion else None
        )
        key = f"{PRIMARY_METRIC}@{settings.eval_k}"
        promoted, reason = promotion_decision(
            metrics["als"][key], champion_metrics[key] if champion_metrics else None, key
        )
        if champion_metrics:
            mlflow.log_metric(f"champion.{key.replace('@', '_at_')}", champion_metrics[key])
        for model_name, values in metrics.items():
            mlflow.log_metrics(
                {f"{model_name}.{k.replace('@', '_at_')}": v for k, v in values.items()}
            )
        mlflow.log_metric("evaluated_users", evaluated)

        # The published model learns from everything up to --ds, hold-out included.
        indexes = Indexes.build(strength)
        USER_INDEX.overwrite_partition(transforms.with_ds(indexes.users, ds), settings, "ds", ds)
        ITEM_INDEX.overwrite_partition(transforms.with_ds(indexes.items, ds), settings, "ds", ds)
        mlflow.set_tags(
            {
                f"delta_version.{t.qualified_name}": t.version(spark, settings)
                for t in (USER_INDEX, ITEM_INDEX)
            }
        )
        model = train_als(strength, Indexes.read(spark, settings, ds), params)
        info = mlflow.spark.log_model(
            model,
            "model",
            pip_requirements=MODEL_PIP_REQUIREMENTS,
            registered_model_name=settings.registered_model_name,
        )
        version = str(info.registered_model_version)
        if promoted:
            client.set_registered_model_alias(
                settings.registered_model_name, settings.champion_alias, version
            )
        mlflow.set_tags(
            {
                "promoted": str(promoted).lower(),
                "promotion_reason": reason,
                **({"previous_champion": champion[0]} if champion else {}),
            }
        )
    strength.unpersist()
    result = TrainResult(run_info.info.run_id, version, metrics, evaluated, promoted, reason)
    log.info("train %s: model version %s\n%s", ds, version, result.report())
    log.info("promotion of version %s: %s", version, reason)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> TrainResult:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-train", spark, settings)
    result = run(spark, settings, args.ds)
    print(f"train {args.ds}: model version {result.model_version}\n{result.report()}", flush=True)
    return result


if __name__ == "__main__":
    main()
