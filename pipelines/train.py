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
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from features.tables import GOLD_USER_ITEM_STRENGTH, ITEM_INDEX, SILVER_EVENTS, USER_INDEX
from models.als import ALSParams, Indexes, recommend, train_als
from models.baselines import popular_for_users
from models.evaluation import RankingEvaluation, ground_truth, time_split
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

    def report(self) -> str:
        lines = [f"evaluated users: {self.evaluated_users}"]
        for model, values in self.metrics.items():
            lines.append(
                f"  {model:<11}" + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items()))
            )
        return "\n".join(lines)


def params_from(settings: Settings) -> ALSParams:
    return ALSParams(
        rank=settings.als_rank,
        max_iter=settings.als_max_iter,
        reg_param=settings.als_reg_param,
        alpha=settings.als_alpha,
        seed=settings.als_seed,
    )


def evaluate_on_holdout(
    events: DataFrame, settings: Settings, ds: date, params: ALSParams
) -> tuple[dict[str, dict[str, float]], int]:
    """ALS and popularity, both trained on events before the hold-out, measured on it."""
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

    metrics = {}
    evaluated = 0
    for name, recs in (("als", als_recs), ("popularity", popular_recs)):
        evaluation = RankingEvaluation(recs, truth, k)
        metrics[name] = evaluation.all()
        evaluated = evaluation.users
    train_strength.unpersist()
    truth.unpersist()
    return metrics, evaluated


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
        metrics, evaluated = evaluate_on_holdout(events, settings, ds, params)
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
        client.set_registered_model_alias(
            settings.registered_model_name, settings.champion_alias, version
        )
    strength.unpersist()
    result = TrainResult(run_info.info.run_id, version, metrics, evaluated)
    log.info("train %s: model version %s\n%s", ds, version, result.report())
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
