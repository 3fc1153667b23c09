"""MLlib ALS on implicit feedback (Hu, Koren, Volinsky), with id mapping and top-K."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features.tables import ITEM_INDEX, USER_INDEX
from models.indexing import apply_index, build_index
from models.topk import top_k_blocked
from recolake.settings import Settings


@dataclass(frozen=True)
class ALSParams:
    rank: int
    max_iter: int
    reg_param: float
    alpha: float
    seed: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "rank": self.rank,
            "max_iter": self.max_iter,
            "reg_param": self.reg_param,
            "alpha": self.alpha,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Indexes:
    users: DataFrame  # user_key, user_idx
    items: DataFrame  # item_id, item_idx

    @classmethod
    def build(cls, strength: DataFrame) -> Indexes:
        return cls(
            users=build_index(strength, c.USER_KEY, c.USER_IDX),
            items=build_index(strength, c.ITEM_ID, c.ITEM_IDX),
        )

    @classmethod
    def read(cls, spark: SparkSession, settings: Settings, ds: date) -> Indexes:
        """The id maps written by the training run of ``ds``."""
        return cls(
            users=USER_INDEX.read(spark, settings).where(F.col(c.DS) == F.lit(ds)).drop(c.DS),
            items=ITEM_INDEX.read(spark, settings).where(F.col(c.DS) == F.lit(ds)).drop(c.DS),
        )

    def encode(self, pairs: DataFrame) -> DataFrame:
        return apply_index(apply_index(pairs, self.users, c.USER_KEY), self.items, c.ITEM_ID)

    def decode(self, ranked: DataFrame) -> DataFrame:
        return ranked.join(self.users, c.USER_IDX).join(self.items, c.ITEM_IDX)


def train_als(
    strength: DataFrame,
    indexes: Indexes,
    params: ALSParams,
    *,
    training: DataFrame | None = None,
) -> ALSModel:
    """Fit on (user, item, strength); strength is the implicit confidence signal.

    One user block and one item block per core (Spark's default is 10 x 10 whatever the
    cluster): benchmarks/als_speed.py measured the small default blocks as most of the gap
    to the `implicit` library on 2 cores. ``training``: ``strength`` already encoded
    (:func:`encoded_training`), when several fits share it.

    Deterministic for a given input and session: the seed is the parameters', the block
    counts are fixed, and the input is laid out by :func:`pinned` (the evaluation compares a
    re-trained champion with what it measured before, to the last digit)."""
    blocks = als_blocks(strength)
    als = ALS(
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        seed=params.seed,
        implicitPrefs=True,
        userCol=c.USER_IDX,
        itemCol=c.ITEM_IDX,
        ratingCol=c.STRENGTH,
        coldStartStrategy="drop",
        nonnegative=False,
    )
    if training is None:
        training = pinned(
            indexes.encode(strength).select(c.USER_IDX, c.ITEM_IDX, c.STRENGTH), blocks
        )
    return als.fit(training)


def als_blocks(frame: DataFrame) -> int:
    """User and item blocks of every fit: one per core of the session."""
    return max(1, frame.sparkSession.sparkContext.defaultParallelism)


def pinned(training: DataFrame, blocks: int) -> DataFrame:
    """ALS's input in one layout whatever plan produced it: ``blocks`` partitions by user id,
    rows sorted by (user, item) within each. ALS builds its rating blocks in input order, so
    the order of its floating-point sums (and so its factors) follows from this alone."""
    return training.repartition(blocks, c.USER_IDX).sortWithinPartitions(c.USER_IDX, c.ITEM_IDX)


def encoded_training(strength: DataFrame, indexes: Indexes) -> DataFrame:
    """(user_idx, item_idx, strength), one partition per ALS block (:func:`pinned`), cached:
    the input of several fits on the same data (the tuning trials) is joined and shuffled
    once."""
    training = indexes.encode(strength).select(c.USER_IDX, c.ITEM_IDX, c.STRENGTH)
    return pinned(training, als_blocks(strength)).cache()


def recommend(
    model: ALSModel,
    indexes: Indexes,
    users: DataFrame,
    exclude: DataFrame,
    k: int,
) -> DataFrame:
    """(user_key, item_id, score, rank) for the given user keys, excluded pairs removed.

    Scored as blocked matrix products (models.topk.top_k_blocked: benchmarks/als_speed.py
    measured it against the SQL cross join and recommendForAllUsers)."""
    user_idx = apply_index(users.select(c.USER_KEY).distinct(), indexes.users, c.USER_KEY)
    user_factors = model.userFactors.join(
        user_idx.select(F.col(c.USER_IDX).alias("id")), "id", "left_semi"
    )
    excluded = indexes.encode(exclude.select(c.USER_KEY, c.ITEM_ID))
    ranked = top_k_blocked(user_factors, model.itemFactors, k, excluded)
    return indexes.decode(ranked).select(c.USER_KEY, c.ITEM_ID, c.SCORE, c.RANK)
