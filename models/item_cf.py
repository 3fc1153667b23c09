"""Item-item collaborative filtering from co-occurrence ("customers who ... also ...").

Two groupings of the same computation: user histories give 'co_view' neighbours, baskets
(sessions, invoices) give 'bought_together'. Scores are cosine-normalised co-occurrence,
co(a, b) / sqrt(n_a * n_b), so very popular items do not neighbour everything.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from features import columns as c
from models.topk import rank_within


def cap_groups(
    pairs: DataFrame,
    *,
    col_group: str,
    col_order: str,
    max_items: int,
    col_tie: str = c.ITEM_ID,
) -> DataFrame:
    """Keep at most ``max_items`` items per group (highest ``col_order`` first): a shopper
    with thousands of items would otherwise make the self-join quadratic.

    Growth: a group of n items yields n(n-1)/2 pairs, so the pair count is bounded by
    groups x max_items(max_items-1)/2 (100 items: at most 4,950 pairs per user or basket) and
    grows linearly with users and baskets, never with the square of one wholesaler's
    history. The bundled sample: 1,311 customers give 4.1 M ordered pairs with the cap, its 7,170
    invoices 5.5 M; the join produces half of each (one row per unordered pair).
    ``col_tie`` breaks ties of ``col_order`` (the rows' other key: items of a user, users of
    an item for user-CF), so the kept rows do not depend on the plan."""
    order = Window.partitionBy(col_group).orderBy(F.desc(col_order), F.asc(col_tie))
    return pairs.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= max_items)


def co_occurrence_neighbours(
    groups: DataFrame,
    *,
    col_group: str,
    top_n: int,
    min_support: int = 2,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """(item_id, neighbour_id, score, rank): top-N items co-occurring with each item in the
    same group at least ``min_support`` times, by cosine similarity."""
    membership = groups.select(col_group, col_item).distinct()
    item_counts = membership.groupBy(col_item).agg(F.count(F.lit(1)).alias("_n"))
    left = membership.select(col_group, F.col(col_item).alias("_a"))
    right = membership.select(col_group, F.col(col_item).alias("_b"))
    # Co-occurrence is symmetric: count each unordered pair once (a < b), half the rows of
    # the join and of its shuffle, then mirror the pairs that pass min_support.
    once = (
        left.join(right, col_group)
        .where(F.col("_a") < F.col("_b"))
        .groupBy("_a", "_b")
        .agg(F.count(F.lit(1)).alias("_co"))
        .where(F.col("_co") >= min_support)
    )
    co = once.unionByName(once.select(F.col("_b").alias("_a"), F.col("_a").alias("_b"), "_co"))
    counts_a = item_counts.select(F.col(col_item).alias("_a"), F.col("_n").alias("_na"))
    counts_b = item_counts.select(F.col(col_item).alias("_b"), F.col("_n").alias("_nb"))
    scored = (
        co.join(counts_a, "_a")
        .join(counts_b, "_b")
        .select(
            F.col("_a").alias(col_item),
            F.col("_b").alias(c.NEIGHBOUR_ID),
            (F.col("_co") / F.sqrt(F.col("_na") * F.col("_nb"))).alias(c.SCORE),
        )
    )
    return rank_within(scored, top_n, col_user=col_item, col_item=c.NEIGHBOUR_ID)


def history_and_basket_neighbours(
    strength: DataFrame,
    events: DataFrame,
    *,
    top_n: int,
    min_support: int,
    max_items: int,
) -> dict[str, DataFrame]:
    """{'co_view': ..., 'bought_together': ...} neighbours: user histories from ``strength``
    (user_item_strength), baskets from the purchase / add-to-cart ``events`` per session.
    Callers pass only the events and strength they may learn from (no hold-out leak)."""
    histories = cap_groups(
        strength, col_group=c.USER_KEY, col_order=c.STRENGTH, max_items=max_items
    )
    baskets = cap_groups(
        events.where(
            F.col(c.SESSION_ID).isNotNull() & F.col(c.EVENT_TYPE).isin("purchase", "add_to_cart")
        )
        .groupBy(c.SESSION_ID, c.ITEM_ID)
        .agg(F.max(c.EVENT_TIME).alias("_t")),
        col_group=c.SESSION_ID,
        col_order="_t",
        max_items=max_items,
    )
    return {
        "co_view": co_occurrence_neighbours(
            histories, col_group=c.USER_KEY, top_n=top_n, min_support=min_support
        ),
        "bought_together": co_occurrence_neighbours(
            baskets, col_group=c.SESSION_ID, top_n=top_n, min_support=min_support
        ),
    }


def merge_kinds(kinds: dict[str, DataFrame]) -> DataFrame:
    """One neighbour list from several kinds: a pair in more than one keeps its best score."""
    frames = [df.select(c.ITEM_ID, c.NEIGHBOUR_ID, c.SCORE) for df in kinds.values()]
    both = frames[0]
    for df in frames[1:]:
        both = both.unionByName(df)
    return both.groupBy(c.ITEM_ID, c.NEIGHBOUR_ID).agg(F.max(c.SCORE).alias(c.SCORE))


def score_from_neighbours(
    history: DataFrame,
    neighbours: DataFrame,
    k: int,
    *,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """(user, item, score, rank): items neighbouring the user's history, scored by the sum
    of history strength x similarity, items already in the history excluded."""
    candidates = (
        history.select(col_user, F.col(col_item).alias("_h"), F.col(c.STRENGTH).alias("_s"))
        .join(neighbours.select(F.col(col_item).alias("_h"), c.NEIGHBOUR_ID, c.SCORE), "_h")
        .groupBy(col_user, F.col(c.NEIGHBOUR_ID).alias(col_item))
        .agg(F.sum(F.col("_s") * F.col(c.SCORE)).alias(c.SCORE))
    )
    unseen = candidates.join(history.select(col_user, col_item), [col_user, col_item], "left_anti")
    return rank_within(unseen, k, col_user=col_user, col_item=col_item)
