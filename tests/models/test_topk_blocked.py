"""top_k_blocked (numpy matmul per user block) must equal the SQL cross-join top-K."""

from __future__ import annotations

import random

import pytest

from features import columns as c
from models.topk import top_k_blocked, top_k_from_factors

pytestmark = pytest.mark.spark


def _factors(spark, n: int, rank: int, seed: int):
    rng = random.Random(seed)
    rows = [(i, [float(rng.randint(-3, 3)) for _ in range(rank)]) for i in range(n)]
    return spark.createDataFrame(rows, "id int, features array<float>")


def _rows(df):
    return sorted(
        (r[c.USER_IDX], r[c.RANK], r[c.ITEM_IDX], r[c.SCORE])
        for r in df.select(c.USER_IDX, c.RANK, c.ITEM_IDX, c.SCORE).collect()
    )


def test_blocked_equals_cross_join_with_exclusions_and_ties(spark):
    # Small integer factors make many exact score ties: the item-id tie break is exercised.
    users = _factors(spark, 7, 3, seed=1)
    items = _factors(spark, 12, 3, seed=2)
    exclude = spark.createDataFrame(
        [(0, 1), (0, 5), (3, 2), (3, 99)] + [(6, i) for i in range(10)],
        f"{c.USER_IDX} int, {c.ITEM_IDX} int",
    )
    expected = _rows(top_k_from_factors(users, items, 4, exclude))
    got = _rows(top_k_blocked(users, items, 4, exclude))
    assert [r[:3] for r in got] == [r[:3] for r in expected]
    assert [r[3] for r in got] == pytest.approx([r[3] for r in expected])
    # user 6 has only 2 items left: fewer than k rows, never an excluded one
    assert sorted(r[2] for r in got if r[0] == 6) == [10, 11]
    assert all(r[2] not in (1, 5) for r in got if r[0] == 0)


def test_blocked_without_exclusions_and_k_above_catalog(spark):
    users = _factors(spark, 3, 2, seed=3)
    items = _factors(spark, 5, 2, seed=4)
    got = top_k_blocked(users, items, 10)
    assert got.schema.simpleString() == top_k_from_factors(users, items, 10).schema.simpleString()
    assert _rows(got) == _rows(top_k_from_factors(users, items, 10))  # integer factors: exact
    assert got.count() == 15
