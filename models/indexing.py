"""Integer ids for ALS, kept as tables so recommendations map back to real ids; global ranks.

A rank over the whole frame (``row_number().over(Window.orderBy(...))``, no partition) makes
Spark move every row into one partition and sort it in one task: fine for ten thousand
items, a wall for ten million users. :func:`global_row_number` gives the same numbers from a
distributed sort: range-partitioned ``orderBy``, a position within each sorted partition and
the sizes of the partitions before it (a handful of numbers, collected on the driver).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_POSITION = "_position"
_PARTITION_BITS = 33  # monotonically_increasing_id: partition index << 33 | row in partition


def global_row_number(df: DataFrame, order: list[Column | str], col: str) -> DataFrame:
    """``df`` plus ``col``: 1-based row_number over ``order``, which must be a total order
    (end with a unique column) for the numbering to be deterministic.

    The sorted, numbered rows are checkpointed locally (computed once): the per-partition
    positions and the partition sizes must come from the same sort."""
    numbered = (
        df.orderBy(*order)
        .withColumn(_POSITION, F.monotonically_increasing_id())
        .localCheckpoint(eager=True)
    )
    part = F.shiftright(F.col(_POSITION), _PARTITION_BITS)
    sizes = sorted(
        (r["_p"], r["_n"])
        for r in numbered.groupBy(part.alias("_p")).agg(F.count(F.lit(1)).alias("_n")).collect()
    )
    if not sizes:
        return numbered.withColumn(col, F.lit(None).cast("int")).drop(_POSITION)
    # offset[p] = rows in the partitions before p; positions inside p restart at 0.
    offsets, total = {}, 0
    for p, n in sizes:
        offsets[p] = total
        total += n
    # A CASE over the partitions (a few dozen at most), not a map lookup: never null, so the
    # column stays as non-nullable as row_number's.
    *head, (_, last) = offsets.items()
    offset = F.lit(last)
    for p, o in reversed(head):
        offset = F.when(part == F.lit(p), F.lit(o)).otherwise(offset)
    within = F.col(_POSITION).bitwiseAND(F.lit((1 << _PARTITION_BITS) - 1))
    return numbered.withColumn(col, (offset + within + 1).cast("int")).drop(_POSITION)


def global_ntile(df: DataFrame, order: list[Column | str], buckets: int, col: str) -> DataFrame:
    """``ntile(buckets)`` over ``order`` (Spark's bucket sizes: the first n % buckets
    buckets get one row more) from :func:`global_row_number`."""
    ranked = global_row_number(df, order, "_rn")
    n = ranked.count()
    q, rem = divmod(n, buckets)
    r = F.col("_rn")
    big = rem * (q + 1)  # rows in the larger buckets
    bucket = F.when(r <= big, (r - 1) / (q + 1) + 1)
    if q > 0:
        bucket = bucket.otherwise(rem + (r - 1 - big) / q + 1)
    return ranked.withColumn(col, F.floor(bucket).cast("int")).drop("_rn")


def build_index(df: DataFrame, id_col: str, idx_col: str) -> DataFrame:
    """Dense 0-based integer ids in sorted id order: the same input gives the same mapping."""
    ids = df.select(id_col).distinct()
    ranked = global_row_number(ids, [id_col], "_rn")
    return ranked.select(id_col, (F.col("_rn") - 1).cast("int").alias(idx_col))


def apply_index(df: DataFrame, index: DataFrame, id_col: str) -> DataFrame:
    """Attach the integer id; rows whose id is not in the index are dropped (cold ids)."""
    return df.join(index, id_col, "inner")
