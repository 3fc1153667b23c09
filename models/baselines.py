"""Popularity and trending baselines: what a shop shows when it knows little about the visitor.

Four baselines share two scorers. ``item_popularity`` (features.transforms, gold table) or
:func:`trending_items` ranks the items; :func:`popular_for_users` turns that ranking into the
same top-k for everyone, :func:`popular_in_user_categories` into a top-k drawn first from each
user's favourite categories. Both take any frame with ``item_id`` and a 1-based ``rank``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from features import columns as c
from features.transforms import require_columns, weight_column
from models.indexing import global_row_number
from models.topk import rank_within


def _max_seen(seen: DataFrame, users: DataFrame, col_user: str) -> int:
    """Most items any of ``users`` has interacted with: how far down a ranking exclusions reach.

    Only the users being scored count: one wholesaler outside the evaluated set must not
    deepen everyone's candidate list.
    """
    mine = seen.join(users.select(col_user).distinct(), col_user, "left_semi")
    return mine.groupBy(col_user).count().agg(F.max("count")).first()[0] or 0


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
    max_seen = _max_seen(seen, users, col_user)
    head = popularity.where(F.col(c.RANK) <= k + max_seen).select(
        col_item, (-F.col(c.RANK).cast("double")).alias(c.SCORE)
    )
    candidates = users.select(col_user).distinct().crossJoin(F.broadcast(head))
    unseen = candidates.join(seen.select(col_user, col_item), [col_user, col_item], "left_anti")
    return rank_within(unseen, k, col_user=col_user, col_item=col_item)


def trending_items(
    events: DataFrame,
    as_of: datetime,
    window_days: float,
    half_life_days: float,
    weights: Mapping[str, float],
    *,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """(item_id, n_users, score, rank): what is picking up right now.

    Unlike ``item_popularity`` (distinct users over a long window, no decay) the score is the
    event-type weight x 0.5^(age / half-life) summed over the short window
    [as_of - window_days, as_of), so yesterday's burst outranks last month's steady seller.
    Events at or after ``as_of`` never count (no peeking past the split). Rank 1 = highest
    score, ties broken by item id, so the frame plugs into both user scorers above.
    """
    if window_days <= 0 or half_life_days <= 0:
        raise ValueError(
            f"trending_items: window_days and half_life_days must be > 0, "
            f"got {window_days} and {half_life_days}"
        )
    require_columns(events, (col_user, col_item, c.EVENT_TYPE, c.EVENT_TIME), "trending events")
    start = as_of - timedelta(days=window_days)
    recent = events.where(
        (F.col(c.EVENT_TIME) >= F.lit(start)) & (F.col(c.EVENT_TIME) < F.lit(as_of))
    )
    age_days = (F.lit(as_of).cast("double") - F.col(c.EVENT_TIME).cast("double")) / 86400.0
    decayed = F.col("_w") * F.pow(F.lit(0.5), age_days / F.lit(float(half_life_days)))
    scored = (
        recent.withColumn("_w", weight_column(weights))
        .where(F.col("_w") > 0)
        .groupBy(col_item)
        .agg(F.countDistinct(col_user).alias(c.N_USERS), F.sum(decayed).alias(c.SCORE))
    )
    return global_row_number(scored, [F.desc(c.SCORE), F.asc(col_item)], c.RANK)


def user_top_categories(
    interactions: DataFrame,
    catalog: DataFrame,
    top_categories: int,
    *,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """(user, category, cat_rank): each user's strongest categories by summed strength.

    Items without a category say nothing about taste and are ignored. Ties go to the
    category name so the result is deterministic.
    """
    per_category = (
        interactions.select(col_user, col_item, c.STRENGTH)
        .join(catalog.select(col_item, c.CATEGORY), col_item)
        .where(F.col(c.CATEGORY).isNotNull())
        .groupBy(col_user, c.CATEGORY)
        .agg(F.sum(c.STRENGTH).alias(c.STRENGTH))
    )
    order = Window.partitionBy(col_user).orderBy(F.desc(c.STRENGTH), F.asc(c.CATEGORY))
    return (
        per_category.withColumn("cat_rank", F.row_number().over(order))
        .where(F.col("cat_rank") <= top_categories)
        .select(col_user, c.CATEGORY, "cat_rank")
    )


def popular_in_user_categories(
    users: DataFrame,
    popularity: DataFrame,
    catalog: DataFrame,
    interactions: DataFrame,
    k: int,
    *,
    top_categories: int = 3,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """(user, item_id, score, rank): popular items from each user's favourite categories.

    The user's ``top_categories`` categories (by summed ``strength`` in ``interactions``) are
    interleaved round-robin: the most popular item of the favourite category, then of the
    second, ..., then the second most popular of each, and so on (popularity order within a
    category comes from ``popularity.rank``). Items the user already interacted with are
    removed; when the categories run out the list is filled up with global popularity, so
    every user gets exactly k items whenever ``popularity`` holds k items they have not seen.
    Users with no categorised history get plain global popularity. ``score`` is -rank.

    ``catalog`` must have one row per item (one ds of gold.item_catalog), ``popularity`` an
    ``item_id`` and ``rank`` (gold.item_popularity, or :func:`trending_items`).
    """
    if k < 1 or top_categories < 1:
        raise ValueError(f"k and top_categories must be >= 1, got {k} and {top_categories}")
    require_columns(popularity, (col_item, c.RANK), "popularity")
    require_columns(catalog, (col_item, c.CATEGORY), "catalog")
    require_columns(interactions, (col_user, col_item, c.STRENGTH), "interactions")
    duplicated = catalog.groupBy(col_item).count().where(F.col("count") > 1).first()
    if duplicated is not None:
        raise ValueError(
            f"catalog has {duplicated['count']} rows for item {duplicated[col_item]!r}: "
            "pass one snapshot (filter gold.item_catalog on ds)"
        )

    user_ids = users.select(col_user).distinct()
    depth = k + _max_seen(interactions, user_ids, col_user)
    favourite = user_top_categories(
        interactions.join(user_ids, col_user, "left_semi"),
        catalog,
        top_categories,
        col_user=col_user,
        col_item=col_item,
    )
    # Per category, its `depth` most popular items: enough to survive the user's exclusions.
    in_category = Window.partitionBy(c.CATEGORY).orderBy(F.asc(c.RANK), F.asc(col_item))
    category_head = (
        popularity.select(col_item, c.RANK)
        .join(catalog.select(col_item, c.CATEGORY), col_item)
        .where(F.col(c.CATEGORY).isNotNull())
        .withColumn("_within", F.row_number().over(in_category))
        .where(F.col("_within") <= depth)
    )
    from_categories = favourite.join(category_head, c.CATEGORY).select(
        col_user,
        col_item,
        F.struct(
            F.lit(0).alias("tier"), F.col("_within").alias("a"), F.col("cat_rank").alias("b")
        ).alias("_order"),
    )
    # Global fill: k + max_seen items leave at least k unseen candidates for every user.
    global_head = popularity.where(F.col(c.RANK) <= depth).select(
        col_item,
        F.struct(F.lit(1).alias("tier"), F.col(c.RANK).alias("a"), F.lit(0).alias("b")).alias(
            "_order"
        ),
    )
    fill = user_ids.crossJoin(F.broadcast(global_head))
    candidates = (
        from_categories.unionByName(fill)
        .groupBy(col_user, col_item)
        .agg(F.min("_order").alias("_order"))
        .join(interactions.select(col_user, col_item), [col_user, col_item], "left_anti")
    )
    order = Window.partitionBy(col_user).orderBy(F.asc("_order"), F.asc(col_item))
    ranked = candidates.withColumn(c.RANK, F.row_number().over(order).cast("int"))
    return ranked.where(F.col(c.RANK) <= k).select(
        col_user, col_item, (-F.col(c.RANK).cast("double")).alias(c.SCORE), c.RANK
    )
