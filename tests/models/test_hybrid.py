"""Offline hybrid: the weight grid, rank fusion by hand, and the one-job NDCG search checked
against Spark's RankingEvaluator; the popularity profile by hand."""

from __future__ import annotations

import pytest

from models.evaluation import RankingEvaluation, popularity_deciles, popularity_profile
from models.hybrid import fuse, ndcg_by_weights, weight_grid

pytestmark = pytest.mark.spark

RANKED = "user_key string, item_id string, score double, rank int"


def test_weight_grid_is_the_simplex():
    grid = weight_grid(["a", "b", "c", "d"], 0.25)
    assert len(grid) == 35  # C(4 + 3, 3)
    assert all(sum(g.values()) == pytest.approx(1.0) for g in grid)
    assert {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0} in grid
    assert weight_grid(["a", "b"], 0.5) == [
        {"a": 0.0, "b": 1.0},
        {"a": 0.5, "b": 0.5},
        {"a": 1.0, "b": 0.0},
    ]
    with pytest.raises(ValueError, match="divide"):
        weight_grid(["a"], 0.3)


def lists(spark):
    # depth 3: rank scores 1, 2/3, 1/3
    a = spark.createDataFrame(
        [("u1", "x", 9.0, 1), ("u1", "y", 8.0, 2), ("u1", "z", 7.0, 3), ("u2", "x", 1.0, 1)],
        RANKED,
    )
    b = spark.createDataFrame(
        [("u1", "z", 0.5, 1), ("u1", "w", 0.4, 2), ("u2", "q", 3.0, 1), ("u2", "x", 2.0, 2)],
        RANKED,
    )
    return {"a": a, "b": b}


def test_fuse_by_hand(spark):
    fused = fuse(lists(spark), {"a": 0.5, "b": 0.5}, k=2, depth=3).collect()
    got = {(r.user_key, r.rank): (r.item_id, round(r.score, 6)) for r in fused}
    # u1: x .5, y .333, z .5*(1/3)+.5*1 = .667, w .333 -> z, x
    # u2: x .5*1 + .5*(2/3) = .833, q .5 -> x, q
    assert got == {
        ("u1", 1): ("z", round(2 / 3, 6)),
        ("u1", 2): ("x", 0.5),
        ("u2", 1): ("x", round(5 / 6, 6)),
        ("u2", 2): ("q", 0.5),
    }
    only_b = fuse(lists(spark), {"a": 0.0, "b": 1.0}, k=1, depth=3).collect()
    assert {(r.user_key, r.item_id) for r in only_b} == {("u1", "z"), ("u2", "q")}
    with pytest.raises(ValueError, match="no positive weight"):
        fuse(lists(spark), {"a": 0.0}, k=1, depth=3)


def test_ndcg_by_weights_equals_ranking_evaluator(spark):
    truth = spark.createDataFrame(
        [("u1", "z"), ("u1", "q"), ("u2", "q"), ("u3", "x")], "user_key string, item_id string"
    )
    grid = weight_grid(["a", "b"], 0.25)
    scored = ndcg_by_weights(lists(spark), truth, grid, k=2, depth=3)
    assert len(scored) == len(grid)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    for weights, value in scored:
        if not any(weights.values()):
            continue
        expected = RankingEvaluation(
            fuse(lists(spark), weights, k=2, depth=3), truth, k=2
        ).ndcg()  # u3 has no list: counts as 0 in both
        assert value == pytest.approx(expected, abs=1e-9), weights
    best, value = scored[0]
    assert best["b"] >= 0.5 and value > 0


def test_popularity_profile_by_hand(spark):
    interactions = spark.createDataFrame(
        [("u1", "a"), ("u2", "a"), ("u3", "a"), ("u1", "b"), ("u2", "b"), ("u1", "c")],
        "user_key string, item_id string",
    )
    deciles = popularity_deciles(interactions, buckets=3)  # a -> 1, b -> 2, c -> 3
    assert popularity_profile(interactions, deciles, buckets=3) == pytest.approx(
        [3 / 6, 2 / 6, 1 / 6]
    )
    recs = spark.createDataFrame(
        [("u9", "a", 1.0, 1), ("u9", "new", 0.5, 2), ("u9", "b", 0.1, 3)], RANKED
    )
    # top 2: a (decile 1) and an item unknown in training (last decile)
    assert popularity_profile(recs, deciles, k=2, buckets=3) == pytest.approx([0.5, 0.0, 0.5])
