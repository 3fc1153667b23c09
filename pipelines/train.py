"""Train: ALS (implicit) tuned on a validation split, fitted on everything up to --ds,
registered in MLflow under the candidate alias (`promote` decides about champion).

    spark-submit pipelines/train.py --ds 2011-12-09

Tuning: every point of the settings' grid (ranks x reg_params x alphas) is fitted on the
events before the validation period (the ``validation_days`` before the evaluation
hold-out, so neither the hold-out nor `evaluate` is ever seen) and scored by NDCG@k on it,
each as an MLflow child run; the best becomes the chosen parameters, recorded on the parent
run, which also logs the model and the Delta versions it was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from features import columns as c
from features import transforms
from features.tables import GOLD_USER_ITEM_STRENGTH, ITEM_INDEX, SILVER_EVENTS, USER_INDEX
from models.als import ALSParams, Indexes, encoded_training, train_als
from models.evaluation import EvalSplit, RankingEvaluation, prepare_split
from models.offline import als_lists
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake import logs, tracking
from recolake.progress import Progress
from recolake.settings import Settings

log = logging.getLogger("recolake.train")

#: What the logged Spark model needs to load; explicit, because inferring it is slow.
MODEL_PIP_REQUIREMENTS = ["pyspark==4.2.0"]


@dataclass(frozen=True)
class Trial:
    params: ALSParams
    metrics: dict[str, float]
    run_id: str


@dataclass(frozen=True)
class ValidationFit:
    """The tuning's validation split and the chosen trial's ALS lists (depth eval_depth),
    cached: `evaluate`, run in the same session, weighs the hybrid on exactly this split
    with exactly these parameters, so it takes them instead of fitting ALS again.
    Whoever takes it unpersists it (:meth:`unpersist`)."""

    split: EvalSplit
    params: ALSParams
    als: DataFrame
    depth: int

    def unpersist(self) -> None:
        self.als.unpersist()
        self.split.unpersist()


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_version: str
    params: ALSParams
    trials: list[Trial] = field(default_factory=list)
    #: Only in the same session, only when asked for (train.run(keep_validation_fit=True)).
    validation_fit: ValidationFit | None = field(default=None, compare=False, repr=False)

    def step_counts(self) -> str:
        """What the step's line says (standalone and in the nightly)."""
        return f"trials={len(self.trials)} model=v{self.model_version}"

    def report(self) -> str:
        lines = [f"chosen: {self.params.as_dict()}"]
        for t in self.trials:
            values = "  ".join(f"{k}={v:.4f}" for k, v in sorted(t.metrics.items()))
            lines.append(f"  trial {t.params.as_dict()}: {values}")
        return "\n".join(lines)


def params_from(settings: Settings, point: dict[str, float | int] | None = None) -> ALSParams:
    point = point or {}
    return ALSParams(
        rank=int(point.get("rank", settings.als_rank)),
        max_iter=int(point.get("max_iter", settings.als_max_iter)),
        reg_param=float(point.get("reg_param", settings.als_reg_param)),
        alpha=float(point.get("alpha", settings.als_alpha)),
        seed=settings.als_seed,
    )


def tune(
    events: DataFrame,
    settings: Settings,
    validation_start: datetime,
    validation_end: datetime,
    *,
    keep_fit: bool = False,
) -> tuple[list[Trial], ValidationFit | None]:
    """Every grid point fitted before the validation period and measured on it, each an MLflow
    child run of the active run; best (by the primary metric) first. One grid point: no
    trial, nothing to choose.

    The split and the users' id maps are prepared once for all trials. Each trial's lists go
    to ``eval_depth`` (metrics read their top ``eval_k``), so with ``keep_fit`` the best
    trial's lists and the split are handed back cached for `evaluate` instead of dropped."""
    grid = [params_from(settings, point) for point in settings.als_grid()]
    if len(grid) == 1:
        return [], None
    split = prepare_split(
        events,
        validation_start,
        validation_end,
        weights=settings.event_weights,
        half_life_days=settings.decay_half_life_days,
    )
    if split.truth.isEmpty():
        split.unpersist()
        log.warning("validation period has no ground truth: ALS keeps the settings' parameters")
        return [], None
    key = f"{settings.primary_metric}@{settings.eval_k}"
    k, depth = settings.eval_k, max(settings.eval_k, settings.eval_depth)
    indexes = Indexes.build(split.train_strength)
    training = encoded_training(split.train_strength, indexes)

    def fit_and_measure(params: ALSParams) -> tuple[DataFrame, dict[str, float]]:
        recs = als_lists(split, params, depth, indexes, training).cache()
        return recs, RankingEvaluation(recs.where(F.col(c.RANK) <= k), split.truth, k).all()

    # Trials run two at a time: a fit on small data is mostly short stages and driver work,
    # so a second fit fills the cores the first leaves idle. Logged in grid order after.
    workers = min(len(grid), max(1, events.sparkSession.sparkContext.defaultParallelism))
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="als-trial") as pool,
        Progress("tuning ALS", total=len(grid)) as bar,
    ):
        # The session form carries the job group (the step's Spark job count) and tags over.
        in_thread = inheritable_thread_target(events.sparkSession)(fit_and_measure)
        fitted = pool.map(in_thread, grid)
        trials: list[Trial] = []
        best: tuple[float, DataFrame] | None = None
        for params, (recs, metrics) in zip(grid, fitted, strict=True):
            with mlflow.start_run(
                run_name=f"als-{params.rank}-{params.reg_param}-{params.alpha}-{params.max_iter}",
                nested=True,
            ) as child:
                mlflow.set_tag(tracking.STEP_TAG, "tune")
                mlflow.log_params(params.as_dict())
                mlflow.log_metrics(
                    {f"validation.{m.replace('@', '_at_')}": v for m, v in metrics.items()}
                )
                trials.append(Trial(params, metrics, child.info.run_id))
            log.info("trial %s: %s=%.4f", params.as_dict(), key, metrics[key])
            bar.advance(note=f"{key}={metrics[key]:.4f}")
            # Keep the best so far (the first on ties, as the stable sort below chooses).
            if keep_fit and (best is None or metrics[key] > best[0]):
                if best is not None:
                    best[1].unpersist()
                best = (metrics[key], recs)
            else:
                recs.unpersist()
    training.unpersist()
    trials = sorted(trials, key=lambda t: -t.metrics[key])
    if best is None:
        split.unpersist()
        return trials, None
    return trials, ValidationFit(split, trials[0].params, best[1], depth)


def run(
    spark: SparkSession, settings: Settings, ds: date, *, keep_validation_fit: bool = False
) -> TrainResult:
    """``keep_validation_fit``: hand the chosen trial's validation fit back in the result
    (the nightly passes it on to `evaluate`); otherwise it is dropped here."""
    client = tracking.configure(settings)
    events = SILVER_EVENTS.read(spark, settings)
    strength = GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(ds)).cache()
    if strength.isEmpty():
        raise RuntimeError(f"gold.user_item_strength has no rows for ds={ds}: run gold first")
    lineage = {
        f"delta_version.{t.qualified_name}": t.version(spark, settings)
        for t in (SILVER_EVENTS, GOLD_USER_ITEM_STRENGTH)
    }
    as_of = transforms.end_of_day(ds)
    validation_end = as_of - timedelta(days=settings.holdout_days)
    validation_start = validation_end - timedelta(days=settings.validation_days)

    with mlflow.start_run(run_name=f"train-{ds}") as run_info:
        mlflow.set_tags(
            {
                tracking.STEP_TAG: "train",
                "ds": ds.isoformat(),
                "model_type": "als_implicit",
                **lineage,
            }
        )
        trials, validation_fit = tune(
            events, settings, validation_start, validation_end, keep_fit=keep_validation_fit
        )
        params = trials[0].params if trials else params_from(settings)
        mlflow.log_params(
            {
                **params.as_dict(),
                "tuning_trials": len(trials),
                "validation_days": settings.validation_days,
                "holdout_days": settings.holdout_days,
                "decay_half_life_days": settings.decay_half_life_days,
                **{f"weight.{k}": v for k, v in settings.event_weights.items()},
            }
        )
        if trials:
            mlflow.log_metrics(
                {f"validation.{m.replace('@', '_at_')}": v for m, v in trials[0].metrics.items()}
            )

        # The registered model learns from everything up to --ds.
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
            settings.registered_model_name, settings.candidate_alias, version
        )
        client.set_model_version_tag(settings.registered_model_name, version, "ds", ds.isoformat())
    strength.unpersist()
    result = TrainResult(run_info.info.run_id, version, params, trials, validation_fit)
    log.info("train %s: model version %s (candidate)\n%s", ds, version, result.report())
    return result


@dataclass(frozen=True)
class Reproduction:
    run_id: str
    rows: int  # training rows read back from the time-travelled table
    max_factor_difference: float  # largest |item factor| difference to the logged model


def reproduce(spark: SparkSession, settings: Settings, run_id: str) -> Reproduction:
    """Re-train a logged model from the Delta versions its run recorded (time travel), with
    its parameters, and compare the item factors with the logged model's: the lineage is
    enough to rebuild it, however the tables have changed since."""
    client = tracking.configure(settings)
    run = client.get_run(run_id).data
    ds = date.fromisoformat(run.tags["ds"])

    def at_version(table):
        version = int(run.tags[f"delta_version.{table.qualified_name}"])
        return table.read(spark, settings, version=version).where(F.col(c.DS) == F.lit(ds))

    strength = at_version(GOLD_USER_ITEM_STRENGTH).cache()
    indexes = Indexes(
        users=at_version(USER_INDEX).drop(c.DS), items=at_version(ITEM_INDEX).drop(c.DS)
    )
    p = run.params
    params = ALSParams(
        rank=int(p["rank"]),
        max_iter=int(p["max_iter"]),
        reg_param=float(p["reg_param"]),
        alpha=float(p["alpha"]),
        seed=int(p["seed"]),
    )
    model = train_als(strength, indexes, params)
    logged = mlflow.spark.load_model(f"runs:/{run_id}/model").stages[-1]
    pairs = model.itemFactors.alias("a").join(logged.itemFactors.alias("b"), "id")
    diff = pairs.select(
        F.explode(F.zip_with("a.features", "b.features", lambda x, y: F.abs(x - y))).alias("d")
    ).agg(F.max("d"))
    result = Reproduction(run_id, strength.count(), float(diff.first()[0] or 0.0))
    strength.unpersist()
    log.info("reproduced run %s: %s", run_id, result)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> TrainResult | Reproduction:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--reproduce",
        metavar="RUN_ID",
        help="re-train that run's model from the Delta versions it recorded and compare",
    )
    args = parse(parser, argv)
    spark, settings = session_and_settings("recolake-train", spark, settings)
    if args.reproduce:
        again = reproduce(spark, settings, args.reproduce)
        print(
            f"reproduced {again.run_id}: {again.rows} training rows, largest item-factor "
            f"difference {again.max_factor_difference:.3g}",
            flush=True,
        )
        return again
    result = run_step(
        "train",
        args.ds,
        lambda: run(spark, settings, args.ds),
        lambda r: f"{r.step_counts()} (candidate) chosen={r.params.as_dict()}",
        spark,
    )
    if logs.is_verbose():  # every trial's metrics (MLflow has them too)
        print(result.report(), flush=True)
    return result


if __name__ == "__main__":
    main()
