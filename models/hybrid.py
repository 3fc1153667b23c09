"""Offline hybrid: a weighted rank fusion of the models' lists, weights chosen on validation.

The seeds' ``alpha * CF + (1 - alpha) * content``, generalised to any number of models. Raw
scores are not comparable across models (ALS dot products, cosine sums, counts), so each
model contributes by rank: an item at rank r of a model's depth-N list scores
``1 - (r - 1) / N`` for that model, times the model's weight; the hybrid ranks by the sum.

Weights are searched on a simplex grid in one Spark job: every candidate weight vector is a
row crossed with the candidates, NDCG@k (binary gain, as Spark's RankingEvaluator computes
it) is computed per (weights, user) in SQL and averaged, so 35 weight vectors cost one
shuffle, not 35 evaluations.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from features import columns as c

_COMBO = "_combo"


def weight_grid(models: Sequence[str], step: float = 0.25) -> list[dict[str, float]]:
    """Every weight vector over ``models`` with weights in multiples of ``step`` summing to 1
    (the single models are the corners)."""
    if not models:
        raise ValueError("weight_grid needs at least one model")
    steps = round(1 / step)
    if abs(steps * step - 1) > 1e-9:
        raise ValueError(f"step must divide 1, got {step}")
    grid = []
    for combo in itertools.product(range(steps + 1), repeat=len(models)):
        if sum(combo) == steps:
            grid.append({m: n / steps for m, n in zip(models, combo, strict=True)})
    return grid


def _rank_scores(lists: Mapping[str, DataFrame], depth: int) -> DataFrame:
    """(model, user_key, item_id, rank_score) for every model's top-``depth`` items."""
    parts = [
        df.where(F.col(c.RANK) <= depth).select(
            F.lit(name).alias("_model"),
            c.USER_KEY,
            c.ITEM_ID,
            (1 - (F.col(c.RANK) - 1) / F.lit(depth)).alias("_rs"),
        )
        for name, df in lists.items()
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def fuse(
    lists: Mapping[str, DataFrame], weights: Mapping[str, float], k: int, depth: int
) -> DataFrame:
    """(user_key, item_id, score, rank): the weighted rank fusion's top k per user."""
    used = {m: w for m, w in weights.items() if w > 0 and m in lists}
    if not used:
        raise ValueError(f"no positive weight for the given lists: {dict(weights)}")
    spark = next(iter(lists.values())).sparkSession
    w = spark.createDataFrame([(m, float(v)) for m, v in used.items()], "_model string, _w double")
    scored = (
        _rank_scores({m: lists[m] for m in used}, depth)
        .join(F.broadcast(w), "_model")
        .groupBy(c.USER_KEY, c.ITEM_ID)
        .agg(F.sum(F.col("_rs") * F.col("_w")).alias(c.SCORE))
    )
    order = Window.partitionBy(c.USER_KEY).orderBy(F.desc(c.SCORE), F.asc(c.ITEM_ID))
    return scored.withColumn(c.RANK, F.row_number().over(order).cast("int")).where(
        F.col(c.RANK) <= k
    )


def ndcg_by_weights(
    lists: Mapping[str, DataFrame],
    truth: DataFrame,
    grid: Sequence[Mapping[str, float]],
    k: int,
    depth: int,
) -> list[tuple[dict[str, float], float]]:
    """NDCG@k of the fusion under every weight vector of ``grid``, over the users in
    ``truth`` (a user whose fused list misses every relevant item, or who has no list,
    scores 0), best first."""
    spark: SparkSession = truth.sparkSession
    models = list(lists)
    rows = [(i, m, float(g.get(m, 0.0))) for i, g in enumerate(grid) for m in models]
    weights = spark.createDataFrame(rows, f"{_COMBO} int, _model string, _w double").where(
        F.col("_w") > 0
    )
    fused = (
        _rank_scores(lists, depth)
        .join(F.broadcast(weights), "_model")
        .groupBy(_COMBO, c.USER_KEY, c.ITEM_ID)
        .agg(F.sum(F.col("_rs") * F.col("_w")).alias(c.SCORE))
    )
    order = Window.partitionBy(_COMBO, c.USER_KEY).orderBy(F.desc(c.SCORE), F.asc(c.ITEM_ID))
    top = fused.withColumn(c.RANK, F.row_number().over(order)).where(F.col(c.RANK) <= k)
    relevant = truth.select(c.USER_KEY, c.ITEM_ID).distinct()
    dcg = (
        top.join(relevant, [c.USER_KEY, c.ITEM_ID])
        .groupBy(_COMBO, c.USER_KEY)
        .agg(F.sum(1 / F.log2(F.col(c.RANK) + 1)).alias("_dcg"))
    )
    # Ideal DCG of a user with n relevant items: sum over ranks 1..min(n, k).
    ideal = (
        relevant.groupBy(c.USER_KEY)
        .agg(F.least(F.count(F.lit(1)), F.lit(k)).alias("_n"))
        .select(
            c.USER_KEY,
            F.aggregate(
                F.sequence(F.lit(1), F.col("_n")),
                F.lit(0.0),
                lambda acc, r: acc + 1 / F.log2(r + 1),
            ).alias("_idcg"),
        )
    )
    n_users = ideal.count()
    if n_users == 0:
        raise ValueError("no user has ground truth: the validation period is empty")
    per_combo = (
        dcg.join(ideal, c.USER_KEY)
        .groupBy(_COMBO)
        .agg(F.sum(F.col("_dcg") / F.col("_idcg")).alias("_sum"))
        .collect()
    )
    sums = {r[_COMBO]: r["_sum"] for r in per_combo}
    scored = [(dict(g), float(sums.get(i, 0.0)) / n_users) for i, g in enumerate(grid)]
    return sorted(scored, key=lambda gs: (-gs[1], sorted(gs[0].items())))
