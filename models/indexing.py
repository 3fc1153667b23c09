"""Integer ids for ALS, kept as tables so recommendations map back to real ids."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def build_index(df: DataFrame, id_col: str, idx_col: str) -> DataFrame:
    """Dense 0-based integer ids in sorted id order: the same input gives the same mapping."""
    ids = df.select(id_col).distinct()
    return ids.withColumn(idx_col, (F.row_number().over(Window.orderBy(id_col)) - 1).cast("int"))


def apply_index(df: DataFrame, index: DataFrame, id_col: str) -> DataFrame:
    """Attach the integer id; rows whose id is not in the index are dropped (cold ids)."""
    return df.join(index, id_col, "inner")
