"""Top-K scoring from latent factors with exclusions, in Spark SQL."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from features import columns as c


def dot(a: str, b: str) -> F.Column:
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda acc, x: acc + x)


def top_k_from_factors(
    user_factors: DataFrame,
    item_factors: DataFrame,
    k: int,
    exclude: DataFrame | None = None,
    *,
    col_user: str = c.USER_IDX,
    col_item: str = c.ITEM_IDX,
) -> DataFrame:
    """(user, item, score, rank) for the k best items per user, excluded pairs removed.

    Factor frames have columns ``id`` and ``features`` (as ALSModel exposes them).
    """
    users = user_factors.select(F.col("id").alias(col_user), F.col("features").alias("_u"))
    items = item_factors.select(F.col("id").alias(col_item), F.col("features").alias("_i"))
    scored = users.crossJoin(F.broadcast(items)).select(
        col_user, col_item, dot("_u", "_i").alias(c.SCORE)
    )
    if exclude is not None:
        scored = scored.join(exclude.select(col_user, col_item), [col_user, col_item], "left_anti")
    return rank_within(scored, k, col_user=col_user, col_item=col_item)


def rank_within(
    scored: DataFrame, k: int, *, col_user: str, col_item: str, col_score: str = c.SCORE
) -> DataFrame:
    """Keep the k highest scores per user (ties broken by item id), with a 1-based rank."""
    order = Window.partitionBy(col_user).orderBy(F.desc(col_score), F.asc(col_item))
    return scored.withColumn(c.RANK, F.row_number().over(order).cast("int")).where(
        F.col(c.RANK) <= k
    )


def to_ranked_lists(
    ranked: DataFrame, *, col_user: str, col_item: str, col_score: str = c.SCORE
) -> DataFrame:
    """(user, items: array<struct<item, score>>) ordered by rank."""
    return ranked.groupBy(col_user).agg(
        F.transform(
            F.sort_array(F.collect_list(F.struct(c.RANK, col_item, col_score))),
            lambda s: F.struct(s[col_item].alias(col_item), s[col_score].alias(col_score)),
        ).alias("items")
    )
