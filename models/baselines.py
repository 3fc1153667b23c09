"""Popularity baseline: what a shop shows when it knows nothing about the visitor."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import columns as c
from models.topk import rank_within


def popular_for_users(
    users: DataFrame,
    popularity: DataFrame,
    seen: DataFrame,
    k: int,
    *,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """Top-k popular items per user, skipping items the user has already interacted with."""
    max_seen = seen.groupBy(col_user).count().agg(F.max("count")).first()[0] or 0
    head = popularity.where(F.col(c.RANK) <= k + max_seen).select(
        col_item, (-F.col(c.RANK).cast("double")).alias(c.SCORE)
    )
    candidates = users.select(col_user).distinct().crossJoin(F.broadcast(head))
    unseen = candidates.join(seen.select(col_user, col_item), [col_user, col_item], "left_anti")
    return rank_within(unseen, k, col_user=col_user, col_item=col_item)
