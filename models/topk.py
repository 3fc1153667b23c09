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


def top_k_blocked(
    user_factors: DataFrame,
    item_factors: DataFrame,
    k: int,
    exclude: DataFrame | None = None,
    *,
    col_user: str = c.USER_IDX,
    col_item: str = c.ITEM_IDX,
) -> DataFrame:
    """Same result as :func:`top_k_from_factors`, computed as blocked matrix products.

    The item factors are collected once as a numpy matrix (items x rank: small next to the
    users) and shipped to every task; Spark distributes the user blocks (Arrow batches) and
    each block is scored with one BLAS matmul plus ``argpartition``, instead of a cross join
    of every (user, item) pair through the SQL engine and a window sort. Excluded pairs are
    grouped per user, joined to the user rows and masked to -inf before selection.
    """
    import numpy as np
    import pandas as pd

    item_rows = item_factors.select("id", "features").collect()
    out_schema = f"{col_user} int, {col_item} int, {c.SCORE} double, {c.RANK} int"
    spark = user_factors.sparkSession
    if not item_rows:
        return spark.createDataFrame([], out_schema)
    item_ids = np.array([r["id"] for r in item_rows], dtype=np.int64)
    order = np.argsort(item_ids, kind="stable")  # column order = id order: ties by id for free
    item_ids = item_ids[order]
    item_matrix = np.array([r["features"] for r in item_rows], dtype=np.float64)[order]
    shared = spark.sparkContext.broadcast((item_ids, item_matrix))

    users = user_factors.select(F.col("id").alias(col_user), F.col("features").alias("_u"))
    if exclude is not None:
        seen = exclude.groupBy(col_user).agg(F.collect_list(col_item).alias("_x"))
        users = users.join(seen, col_user, "left")
    else:
        users = users.withColumn("_x", F.lit(None).cast("array<int>"))
    take = min(k, len(item_ids))
    # Rows scored at once: bounds the (rows x items) score matrix to ~256 MB per task.
    chunk_rows = max(1, (1 << 25) // len(item_ids))

    def top_of(scores, ids):
        """(columns, scores) of the `take` best per row, ordered by (score desc, id asc),
        -inf (excluded) last; exact ties at the k-th score resolved by id like the SQL."""
        if take < scores.shape[1]:
            cand = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        else:
            cand = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
        cand_scores = np.take_along_axis(scores, cand, axis=1)
        order = np.lexsort((cand, -cand_scores), axis=-1)
        cand = np.take_along_axis(cand, order, axis=1)
        cand_scores = np.take_along_axis(cand_scores, order, axis=1)
        finite = np.isfinite(cand_scores)
        kth = np.where(finite.any(axis=1), np.where(finite, cand_scores, np.inf).min(axis=1), 0)
        at_least = ((scores >= kth[:, None]) & np.isfinite(scores)).sum(axis=1)
        for row in np.flatnonzero(at_least > finite.sum(axis=1)):
            # An item left out by argpartition scores the same as the k-th: re-select by id.
            idx = np.flatnonzero(np.isfinite(scores[row]) & (scores[row] >= kth[row]))
            best = idx[np.lexsort((idx, -scores[row, idx]))[:take]]
            cand[row, : len(best)] = best
            cand_scores[row, : len(best)] = scores[row, best]
        return cand, cand_scores

    def score_blocks(batches):
        ids, matrix = shared.value
        for batch in batches:
            for lo in range(0, len(batch), chunk_rows):
                part = batch.iloc[lo : lo + chunk_rows]
                u = np.vstack(part["_u"].to_numpy()).astype(np.float64)
                scores = u @ matrix.T
                excluded = part["_x"].to_numpy()
                lengths = np.array([0 if x is None else len(x) for x in excluded])
                if lengths.sum():
                    flat = np.concatenate(
                        [np.asarray(x, dtype=np.int64) for x in excluded if x is not None]
                    )
                    rows = np.repeat(np.arange(len(excluded)), lengths)
                    cols = np.minimum(np.searchsorted(ids, flat), len(ids) - 1)
                    known = ids[cols] == flat  # excluded ids unknown to the model: ignored
                    scores[rows[known], cols[known]] = -np.inf
                cand, cand_scores = top_of(scores, ids)
                keep = np.isfinite(cand_scores).ravel()
                n = cand.shape[1]
                yield pd.DataFrame(
                    {
                        col_user: np.repeat(part[col_user].to_numpy(np.int32), n)[keep],
                        col_item: ids[cand].ravel().astype(np.int32)[keep],
                        c.SCORE: cand_scores.ravel()[keep],
                        c.RANK: np.tile(np.arange(1, n + 1, dtype=np.int32), len(part))[keep],
                    }
                )

    return users.mapInPandas(score_blocks, out_schema)
