"""User-user collaborative filtering ("shoppers like you also ..."): each user's neighbours
by cosine over the strength matrix, their items scored by similarity-weighted strength.

Co-interaction, not ALS factors: scoring every user against every other (even in blocks,
models.topk.top_k_blocked) costs users^2 x rank, while the pairs of users who share an item
are bounded by two caps, linear in users:

- each history keeps its ``max_items_per_user`` strongest items (models.item_cf.cap_groups,
  as item-CF does), which also bounds the candidates a neighbour contributes;
- each item links at most its ``max_users_per_item`` strongest users (ties by user key):
  a best-seller would otherwise pair everyone with everyone (n^2 / 2 pairs). Users beyond
  the cap still have the item in their history (it is scored and excluded), it just does
  not make them neighbours of anyone.

So the join yields at most items x max_users_per_item^2 / 2 pairs, and never more than
max_users_per_item / 2 x interactions; the scoring join at most users x top_n x
max_items_per_user rows.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import columns as c
from models.item_cf import cap_groups
from models.topk import rank_within

#: The neighbour's key in the (user_key, neighbour_key, score, rank) neighbour frame.
NEIGHBOUR_KEY = "neighbour_key"


def capped_histories(
    strength: DataFrame, *, max_items_per_user: int, max_users_per_item: int
) -> tuple[DataFrame, DataFrame]:
    """(histories, links): every user's ``max_items_per_user`` strongest (user_key, item_id,
    strength) rows, and the subset through which users become neighbours (each item's
    ``max_users_per_item`` strongest users)."""
    rows = strength.select(c.USER_KEY, c.ITEM_ID, c.STRENGTH)
    histories = cap_groups(
        rows, col_group=c.USER_KEY, col_order=c.STRENGTH, max_items=max_items_per_user
    ).drop("_n")
    links = cap_groups(
        histories,
        col_group=c.ITEM_ID,
        col_order=c.STRENGTH,
        max_items=max_users_per_item,
        col_tie=c.USER_KEY,
    ).drop("_n")
    return histories, links


def user_neighbours(
    histories: DataFrame,
    links: DataFrame,
    *,
    top_n: int,
    min_support: int = 1,
    users: DataFrame | None = None,
) -> DataFrame:
    """(user_key, neighbour_key, score, rank): each user's ``top_n`` most similar users by
    cosine of their (capped) strength vectors, sharing at least ``min_support`` linked items.
    ``users``: only these users' neighbours (the evaluated ones); all users when None."""
    norms = histories.groupBy(c.USER_KEY).agg(
        F.sqrt(F.sum(F.col(c.STRENGTH) * F.col(c.STRENGTH))).alias("_norm")
    )
    right = links.select(F.col(c.USER_KEY).alias("_v"), c.ITEM_ID, F.col(c.STRENGTH).alias("_sv"))
    left = links
    if users is not None:
        left = links.join(users.select(c.USER_KEY).distinct(), c.USER_KEY, "left_semi")
    left = left.select(F.col(c.USER_KEY).alias("_u"), c.ITEM_ID, F.col(c.STRENGTH).alias("_su"))
    if users is None:
        # Symmetric: each unordered pair once (u < v), then mirrored, as item-CF does.
        once = (
            left.join(right, c.ITEM_ID)
            .where(F.col("_u") < F.col("_v"))
            .groupBy("_u", "_v")
            .agg(F.sum(F.col("_su") * F.col("_sv")).alias("_dot"), F.count(F.lit(1)).alias("_co"))
            .where(F.col("_co") >= min_support)
        )
        pairs = once.unionByName(
            once.select(F.col("_v").alias("_u"), F.col("_u").alias("_v"), "_dot", "_co")
        )
    else:
        pairs = (
            left.join(right, c.ITEM_ID)
            .where(F.col("_u") != F.col("_v"))
            .groupBy("_u", "_v")
            .agg(F.sum(F.col("_su") * F.col("_sv")).alias("_dot"), F.count(F.lit(1)).alias("_co"))
            .where(F.col("_co") >= min_support)
        )
    norm_u = norms.select(F.col(c.USER_KEY).alias("_u"), F.col("_norm").alias("_nu"))
    norm_v = norms.select(F.col(c.USER_KEY).alias("_v"), F.col("_norm").alias("_nv"))
    scored = (
        pairs.join(norm_u, "_u")
        .join(norm_v, "_v")
        .where((F.col("_nu") > 0) & (F.col("_nv") > 0))
        .select(
            F.col("_u").alias(c.USER_KEY),
            F.col("_v").alias(NEIGHBOUR_KEY),
            (F.col("_dot") / (F.col("_nu") * F.col("_nv"))).alias(c.SCORE),
        )
    )
    return rank_within(scored, top_n, col_user=c.USER_KEY, col_item=NEIGHBOUR_KEY)


def score_from_user_neighbours(
    neighbours: DataFrame, histories: DataFrame, exclude: DataFrame, k: int
) -> DataFrame:
    """(user_key, item_id, score, rank): the neighbours' items, each scored by the sum over
    neighbours of similarity x the neighbour's strength; ``exclude``'s (user_key, item_id)
    pairs (the user's own history) left out, like item-CF's lists."""
    candidates = (
        neighbours.select(c.USER_KEY, F.col(NEIGHBOUR_KEY).alias("_v"), F.col(c.SCORE).alias("_w"))
        .join(
            histories.select(F.col(c.USER_KEY).alias("_v"), c.ITEM_ID, c.STRENGTH),
            "_v",
        )
        .groupBy(c.USER_KEY, c.ITEM_ID)
        .agg(F.sum(F.col("_w") * F.col(c.STRENGTH)).alias(c.SCORE))
    )
    unseen = candidates.join(
        exclude.select(c.USER_KEY, c.ITEM_ID), [c.USER_KEY, c.ITEM_ID], "left_anti"
    )
    return rank_within(unseen, k, col_user=c.USER_KEY, col_item=c.ITEM_ID)


def user_cf_lists(
    strength: DataFrame,
    k: int,
    *,
    top_n: int,
    max_items_per_user: int,
    max_users_per_item: int,
    min_support: int = 1,
    users: DataFrame | None = None,
    exclude: DataFrame | None = None,
) -> DataFrame:
    """(user_key, item_id, score, rank <= k) for ``users`` (every user in ``strength`` when
    None), learned from ``strength`` only; ``exclude`` (default: ``strength``) holds the
    pairs never recommended."""
    histories, links = capped_histories(
        strength, max_items_per_user=max_items_per_user, max_users_per_item=max_users_per_item
    )
    neighbours = user_neighbours(
        histories, links, top_n=top_n, min_support=min_support, users=users
    )
    seen = strength if exclude is None else exclude
    return score_from_user_neighbours(neighbours, histories, seen, k)
