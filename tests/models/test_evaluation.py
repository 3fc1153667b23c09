"""Metrics against a case computed by hand, top-K exclusions, the id index, baselines."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.sql import functions as F

from features import columns as c
from models.baselines import popular_for_users
from models.evaluation import (
    RankingEvaluation,
    beyond_accuracy,
    catalog_coverage,
    ground_truth,
    intra_list_diversity,
    measure_models,
    novelty,
    popularity_deciles,
    popularity_profile,
)
from models.indexing import build_index
from models.topk import top_k_from_factors

pytestmark = pytest.mark.spark


def recs_frame(spark, lists):
    rows = [(u, item, rank + 1) for u, items in lists.items() for rank, item in enumerate(items)]
    return spark.createDataFrame(rows, "user_key string, item_id string, rank int")


def truth_frame(spark, truth):
    rows = [(u, item) for u, items in truth.items() for item in items]
    return spark.createDataFrame(rows, "user_key string, item_id string")


def test_metrics_match_hand_computed_case(spark):
    recs = recs_frame(spark, {"A": ["1", "2", "3"], "B": ["4", "5", "6"]})
    truth = truth_frame(spark, {"A": ["1", "3"], "B": ["7"], "C": ["8"]})  # C: no recs
    ev = RankingEvaluation(recs, truth, k=3)
    assert ev.users == 3
    # A: hits at ranks 1 and 3 of 2 relevant. B and C: nothing.
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ev.precision() == pytest.approx((2 / 3) / 3)
    assert ev.recall() == pytest.approx(1 / 3)
    assert ev.ndcg() == pytest.approx(ndcg_a / 3)
    assert ev.map() == pytest.approx(((1 + 2 / 3) / 2) / 3)
    assert set(ev.all()) == {"precision@3", "recall@3", "ndcg@3", "map@3", "hit_rate@3"}


def test_evaluator_validates_input(spark):
    bad = spark.createDataFrame([("A", "1")], "user_key string, item_id string")
    with pytest.raises(ValueError, match="rank"):
        RankingEvaluation(bad, bad, k=3)
    empty_truth = spark.createDataFrame([], "user_key string, item_id string")
    with pytest.raises(ValueError, match="empty"):
        RankingEvaluation(recs_frame(spark, {"A": ["1"]}), empty_truth, k=3)


def test_ground_truth_keeps_new_items_of_known_users(spark):
    test_events = spark.createDataFrame(
        [
            ("A", "x", "purchase"),
            ("A", "y", "purchase"),
            ("A", "z", "view"),
            ("N", "x", "purchase"),
        ],
        "user_key string, item_id string, event_type string",
    )
    train_pairs = truth_frame(spark, {"A": ["x"]})
    got = ground_truth(test_events, train_pairs, positive_types=["purchase"]).collect()
    assert {(r[c.USER_KEY], r[c.ITEM_ID]) for r in got} == {("A", "y")}


def test_top_k_excludes_and_ranks(spark):
    users = spark.createDataFrame(
        [(0, [1.0, 0.0]), (1, [0.0, 1.0])], "id int, features array<float>"
    )
    items = spark.createDataFrame(
        [(10, [3.0, 0.0]), (11, [2.0, 1.0]), (12, [1.0, 2.0])], "id int, features array<float>"
    )
    exclude = spark.createDataFrame([(0, 10)], "user_idx int, item_idx int")
    ranked = top_k_from_factors(users, items, 2, exclude).orderBy(c.USER_IDX, c.RANK).collect()
    assert [(r[c.USER_IDX], r[c.ITEM_IDX], r[c.RANK]) for r in ranked] == [
        (0, 11, 1),
        (0, 12, 2),
        (1, 12, 1),
        (1, 11, 2),
    ]
    assert ranked[0][c.SCORE] == pytest.approx(2.0)


def test_index_is_dense_and_deterministic(spark):
    df = spark.createDataFrame([("b",), ("a",), ("c",), ("a",)], "user_key string")
    first = {
        r[c.USER_KEY]: r[c.USER_IDX] for r in build_index(df, c.USER_KEY, c.USER_IDX).collect()
    }
    again = {
        r[c.USER_KEY]: r[c.USER_IDX]
        for r in build_index(
            df.orderBy("user_key", ascending=False), c.USER_KEY, c.USER_IDX
        ).collect()
    }
    assert first == again == {"a": 0, "b": 1, "c": 2}


def test_popularity_baseline_skips_seen_items(spark):
    popularity = spark.createDataFrame(
        [("p1", 1), ("p2", 2), ("p3", 3), ("p4", 4)], "item_id string, rank int"
    )
    users = spark.createDataFrame([("A",), ("B",)], "user_key string")
    seen = truth_frame(spark, {"A": ["p1", "p3"]})
    got = popular_for_users(users, popularity, seen, k=2).orderBy(c.USER_KEY, c.RANK).collect()
    assert [(r[c.USER_KEY], r[c.ITEM_ID]) for r in got] == [
        ("A", "p2"),
        ("A", "p4"),
        ("B", "p1"),
        ("B", "p2"),
    ]


def test_hit_rate_hand_computed(spark):
    recs = recs_frame(spark, {"A": ["1", "2", "3"], "B": ["4", "5", "6"]})
    truth = truth_frame(spark, {"A": ["3"], "B": ["7"], "C": ["8"]})
    ev = RankingEvaluation(recs, truth, k=3)
    assert ev.hit_rate() == pytest.approx(1 / 3)  # only A hits
    assert RankingEvaluation(recs, truth, k=2).hit_rate() == 0.0  # A's hit is at rank 3
    assert ev.all()["hit_rate@3"] == pytest.approx(1 / 3)


def test_coverage_diversity_novelty_hand_computed(spark):
    recs = recs_frame(spark, {"A": ["1", "2", "3"], "B": ["1", "4", "9"]})
    cats = spark.createDataFrame(
        [("1", "x"), ("2", "x"), ("3", "y"), ("4", "y"), ("5", "z"), ("9", None)],
        "item_id string, category string",
    )
    # k=2: items {1, 2, 4} of 6 in the catalog.
    assert catalog_coverage(recs, 6, 2) == pytest.approx(3 / 6)
    assert catalog_coverage(recs, 6, 3) == pytest.approx(5 / 6)
    # k=3: A = x,x,y -> 2 of 3 pairs differ; B = x,y,unknown -> 3 of 3.
    assert intra_list_diversity(recs, cats, 3) == pytest.approx((2 / 3 + 1) / 2)
    # k=2: A = x,x -> 0; B = x,y -> 1.
    assert intra_list_diversity(recs, cats, 2) == pytest.approx(0.5)
    # 4 training users: item 1 seen by 4, item 2 by 2, item 4 by 1, item 3 by nobody.
    inter = truth_frame(spark, {"u1": ["1", "2"], "u2": ["1", "2"], "u3": ["1", "4"], "u4": ["1"]})
    # k=2 items: 1, 2 (A); 1, 4 (B) -> -log2 of 1, 1/2, 1, 1/4.
    assert novelty(recs, inter, 2) == pytest.approx((0 + 1 + 0 + 2) / 4)
    # item 3 unseen counts as one user: -log2(1/4) = 2; item 9 likewise.
    assert novelty(recs, inter, 3) == pytest.approx((0 + 1 + 2 + 0 + 2 + 2) / 6)
    with pytest.raises(ValueError, match="positive"):
        catalog_coverage(recs, 0, 2)


def test_one_pass_metrics_equal_spark_ranking_evaluator_on_random_lists(spark):
    """The single-aggregation metrics against Spark's own RankingEvaluator (the trusted
    implementation): random lists of random lengths, duplicates across users, users without
    recommendations, several k."""
    rng = random.Random(11)
    items = [str(i) for i in range(40)]
    lists = {f"u{u}": rng.sample(items, rng.randint(1, 15)) for u in range(60)}
    truth = {f"u{u}": rng.sample(items, rng.randint(1, 8)) for u in range(0, 70, 1)}
    recs, truth_df = recs_frame(spark, lists), truth_frame(spark, truth)
    for k in (1, 5, 10):
        ev = RankingEvaluation(recs.where(F.col(c.RANK) <= k), truth_df, k=k)
        for name in ("precision", "recall", "ndcg", "map"):
            assert getattr(ev, name)() == pytest.approx(ev.reference(name), abs=1e-12), (name, k)
        hits = [any(i in set(truth[u]) for i in lists.get(u, [])[:k]) for u in truth]
        assert ev.hit_rate() == pytest.approx(sum(hits) / len(hits))


def test_all_models_in_one_pass_equal_the_per_model_functions(spark):
    """measure_models (one action over every list) against RankingEvaluation,
    beyond_accuracy and popularity_profile model by model: random lists, a model that
    recommends nothing to some users with truth, an empty model, uncategorised items."""
    rng = random.Random(5)
    items = [str(i) for i in range(30)]
    catalog = spark.createDataFrame(
        [(i, rng.choice(["x", "y", "z", None])) for i in items], "item_id string, category string"
    )
    inter = truth_frame(
        spark, {f"t{u}": rng.sample(items[:20], rng.randint(1, 6)) for u in range(25)}
    )
    truth = truth_frame(spark, {f"u{u}": rng.sample(items, rng.randint(1, 5)) for u in range(30)})
    lists = {
        "a": recs_frame(spark, {f"u{u}": rng.sample(items, 12) for u in range(30)}),
        "b": recs_frame(spark, {f"u{u}": rng.sample(items, rng.randint(1, 4)) for u in range(12)}),
        "empty": recs_frame(spark, {}),
    }
    k = 5
    metrics, profiles = measure_models(
        lists, truth=truth, k=k, catalog=catalog, interactions=inter, catalog_items=30
    )
    deciles = popularity_deciles(inter)
    assert profiles["history"] == pytest.approx(popularity_profile(inter, deciles))
    for name, recs in lists.items():
        top = recs.where(F.col(c.RANK) <= k)
        expected = {
            **RankingEvaluation(top, truth, k).all(),
            **beyond_accuracy(top, k=k, catalog=catalog, interactions=inter, catalog_items=30),
        }
        assert list(metrics[name]) == list(expected), name
        assert metrics[name] == pytest.approx(expected, abs=1e-12), name
        assert profiles[name] == pytest.approx(popularity_profile(top, deciles, k=k)), name
    assert metrics["empty"]["ndcg@5"] == 0 and metrics["empty"]["coverage@5"] == 0
    assert metrics["a"]["ndcg@5"] > 0 and metrics["b"]["coverage@5"] > 0
