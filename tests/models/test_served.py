"""The served blend replayed offline (models/served.py): the replay of a hand-built user is
THE ranker called on the Inputs the API would build; the state at the cut sees nothing at or
after the cut; the weight tuning finds the source that holds the truth and reports the NDCG
RankingEvaluation measures on the lists it chose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.evaluation import EvalSplit, RankingEvaluation
from models.served import (
    BlendConfig,
    inputs_of,
    ndcg_at_k,
    replay,
    sample_users,
    state_at_cut,
    tune,
    weight_grid,
)
from recolake.onlinestore.stream import Event, merge_affinity, merge_trending, trending_list
from recolake.ranking import Filters, Inputs, ItemInfo, RecentEvent, Weights, blend

pytestmark = pytest.mark.spark

CUT = datetime(2026, 1, 10, tzinfo=UTC)
EVENTS = (
    "event_id string, user_key string, item_id string, event_type string, "
    "event_time timestamp, session_id string"
)
RANKED = "user_key string, item_id string, score double, rank int"
NEIGHBOURS = "kind string, item_id string, neighbour_id string, score double, rank int"
CATALOG = "item_id string, title string, category string, available boolean"
WEIGHTS = Weights(als=1.0, neighbours=0.8, content=0.5, trending=0.4, popular=0.2)


def at(**delta) -> datetime:
    return CUT + timedelta(**delta)


def split_of(spark, events, truth, users) -> EvalSplit:
    ev = spark.createDataFrame(events, EVENTS)
    tr = spark.createDataFrame(truth, "user_key string, item_id string")
    us = spark.createDataFrame([(u,) for u in users], "user_key string")
    empty = spark.createDataFrame([], "user_key string, item_id string, strength double")
    return EvalSplit(ev, empty, tr, us, empty, CUT, at(days=7))


def world(spark):
    """u1 browses a (cat A), buys b (B), views c (A) before the cut; d and e at/after it.
    u2 views x in the last hour (trending); u3 bought y days ago (popular only)."""
    events = [
        ("1", "u1", "a", "view", at(hours=-2), None),
        ("2", "u1", "b", "purchase", at(hours=-1), None),
        ("3", "u1", "c", "view", at(minutes=-30), None),
        ("4", "u1", "e", "view", CUT, None),  # at the cut: the future
        ("5", "u1", "d", "purchase", at(minutes=10), None),  # after it
        ("6", "u2", "x", "view", at(minutes=-20), None),
        ("7", "u3", "y", "purchase", at(days=-5), None),
        ("8", "u9", "d", "purchase", at(hours=2), None),  # d popular only after the cut
    ]
    als = spark.createDataFrame(
        [("u1", "p1", 0.9, 1), ("u1", "p2", 0.5, 2), ("u1", "n1", 0.1, 3), ("u2", "p1", 0.4, 1)],
        RANKED,
    )
    neighbours = spark.createDataFrame(
        [
            ("co_view", "c", "n1", 0.7, 1),
            ("co_view", "c", "n2", 0.3, 2),  # unavailable
            ("bought_together", "b", "n4", 0.6, 1),
            ("content", "a", "n3", 0.9, 1),
            ("content", "a", "p2", 0.8, 2),
            ("co_view", "e", "z1", 0.9, 1),  # anchors after the cut: never candidates
            ("co_view", "d", "z2", 0.9, 1),
        ],
        NEIGHBOURS,
    )
    catalog = spark.createDataFrame(
        [
            ("a", "Apple", "A", True),
            ("b", "Bread", "B", True),
            ("c", "Cherry", "A", True),
            ("n1", "Nut", "A", True),
            ("n2", "Nougat", "A", False),
            ("n3", None, "A", True),
            ("n4", "Napkin", "B", True),
            ("p1", "Pear", "A", True),
            ("p2", "Plum", "A", True),
            ("x", "Xigua", "C", True),
        ],
        CATALOG,
    )
    return events, als, neighbours, catalog


def expected_inputs(settings) -> Inputs:
    """What the API would read for u1 if the streaming job had run until the cut."""
    ts = {name: at(**d).timestamp() for name, d in (("a", {"hours": -2}), ("b", {"hours": -1}))}
    ts["c"], ts["x"] = at(minutes=-30).timestamp(), at(minutes=-20).timestamp()
    w = settings.event_weights
    streamed = [
        Event("1", "a", "view", ts["a"], "A", w["view"]),
        Event("2", "b", "purchase", ts["b"], "B", w["purchase"]),
        Event("3", "c", "view", ts["c"], "A", w["view"]),
    ]
    affinity = merge_affinity(
        None,
        streamed,
        as_of=CUT.timestamp(),
        half_life_seconds=settings.affinity_half_life_hours * 3600,
        session_gap_seconds=settings.session_window_minutes * 60,
    )["categories"]
    everyone = [*streamed, Event("6", "x", "view", ts["x"], "C", w["view"])]
    state = merge_trending(
        None, everyone, now=CUT.timestamp(), window_seconds=settings.trending_window_minutes * 60
    )
    trending = [(i, s) for i, s in trending_list(state, settings.trending_top_n)]
    # item_popularity: one user each; ranked by summed weight, then item id
    popular = [("b", 1.0), ("y", 1.0), ("a", 1.0), ("c", 1.0), ("x", 1.0)]
    info = {
        "a": ItemInfo("Apple", "A"),
        "b": ItemInfo("Bread", "B"),
        "c": ItemInfo("Cherry", "A"),
        "n1": ItemInfo("Nut", "A"),
        "n2": ItemInfo("Nougat", "A", False),
        "n3": ItemInfo(None, "A"),
        "n4": ItemInfo("Napkin", "B"),
        "p1": ItemInfo("Pear", "A"),
        "p2": ItemInfo("Plum", "A"),
        "x": ItemInfo("Xigua", "C"),
    }
    return Inputs(
        als=[("p1", 0.9), ("p2", 0.5), ("n1", 0.1)],
        recent=[
            RecentEvent("c", "view", ts["c"]),
            RecentEvent("b", "purchase", ts["b"]),
            RecentEvent("a", "view", ts["a"]),
        ],
        neighbours={
            ("co_view", "c"): [("n1", 0.7), ("n2", 0.3)],
            ("bought_together", "b"): [("n4", 0.6)],
            ("content", "a"): [("n3", 0.9), ("p2", 0.8)],
        },
        trending=trending,
        popular=popular,
        category_affinity=affinity,
        catalog=info,
    )


def test_replay_is_blend_on_the_inputs_the_api_would_build(spark, settings):
    events, als, neighbours, catalog = world(spark)
    split = split_of(spark, events, [("u1", "n4"), ("u2", "a")], ["u1", "u2"])
    state = state_at_cut(split, settings, als=als, neighbours=neighbours, catalog=catalog, k=5)
    got = replay(state, WEIGHTS).where("user_key = 'u1'").orderBy("rank").collect()

    expected = blend(
        expected_inputs(settings),
        weights=WEIGHTS,
        filters=Filters(max_per_category=settings.max_per_category),
        k=5,
        n_anchors=settings.blend_recent_anchors,
    )
    assert len(expected) == 5
    assert [(r.item_id, r.score, r.source) for r in got] == [
        (e.item_id, e.score, e.source) for e in expected
    ]
    assert [r.rank for r in got] == [1, 2, 3, 4, 5]
    # the filters ran: the unavailable neighbour and the bought anchor are not recommended
    assert {"n2", "b"}.isdisjoint(r.item_id for r in got)
    # u2 (no recent list of its own, trending x is its own view) still gets a list
    assert replay(state, WEIGHTS).where("user_key = 'u2'").count() == 5


def test_state_at_the_cut_uses_nothing_at_or_after_it(spark, settings):
    events, als, neighbours, catalog = world(spark)
    # u4: last event 40 days before the cut, the real-time documents expired (TTL 30 days)
    events.append(("9", "u4", "c", "view", at(days=-40), None))
    split = split_of(spark, events, [("u1", "n4"), ("u4", "a")], ["u1", "u4"])
    state = state_at_cut(split, settings, als=als, neighbours=neighbours, catalog=catalog, k=5)
    config = BlendConfig.from_settings(settings, 5)
    rows = state.rows.toPandas()

    def inputs(user):
        return inputs_of(
            rows[rows.user_key == user],
            cutoff=CUT.timestamp(),
            config=config,
            trending=state.trending,
            popular=state.popular,
            catalog=state.catalog,
        )

    u1 = inputs("u1")
    assert u1 == expected_inputs(settings)
    future = {"d", "e", "z1", "z2"}
    seen = (
        {i for i, _ in u1.als or ()}
        | {e.item_id for e in u1.recent}
        | {i for lst in u1.neighbours.values() for i, _ in lst}
        | {a for _, a in u1.neighbours}
        | {i for i, _ in state.trending}
        | {i for i, _ in state.popular}
    )
    assert future.isdisjoint(seen)
    assert future.isdisjoint(set(rows.item_id))
    assert inputs("u4").recent == [] and inputs("u4").category_affinity == {}


def test_tuning_picks_the_source_that_holds_the_truth(spark, settings):
    """ALS holds every user's truth item at rank 10 of 12; popular's 12 items hold none.
    Only ALS alone keeps the truth in the top 10: any popular weight pushes it out."""
    users = ["u1", "u2", "u3"]
    als = spark.createDataFrame(
        [(u, f"{u}-{r:02d}", 1.0 / r, r) for u in users for r in range(1, 13)], RANKED
    )
    truth = [(u, f"{u}-10") for u in users]
    popular = [(f"pop{j:02d}", float(100 - j)) for j in range(12)]
    split = split_of(spark, [("1", "u1", "old", "view", at(days=-3), None)], truth, users)
    neighbours = spark.createDataFrame([], NEIGHBOURS)
    catalog = spark.createDataFrame([], CATALOG)
    state = state_at_cut(
        split,
        settings,
        als=als,
        neighbours=neighbours,
        catalog=catalog,
        k=10,
        shared=([], popular, {}),
    )
    grid = weight_grid(0.25, names=("als", "popular"))
    assert len(grid) == 5
    tuned = tune(state, split.truth, grid)
    best, value = tuned.best
    assert (best.als, best.popular, best.neighbours, best.trending) == (1.0, 0.0, 0.0, 0.0)
    assert tuned.users == 3
    assert value == pytest.approx(ndcg_at_k([f"x{r}" for r in range(9)] + ["t"], {"t"}, 10))
    assert value > 0 and all(v < value for _, v in tuned.ranked[1:])
    for weights, measured in (tuned.ranked[0], tuned.ranked[-1]):
        lists = replay(state, weights)
        expected = RankingEvaluation(lists, split.truth, 10).ndcg()
        assert measured == pytest.approx(expected, abs=1e-9), weights


def test_sample_users_is_seeded_and_bounded(spark):
    users = spark.createDataFrame([(f"u{i}",) for i in range(50)], "user_key string")
    first = {r[0] for r in sample_users(users, 10, seed=3).collect()}
    assert len(first) == 10
    assert first == {r[0] for r in sample_users(users, 10, seed=3).collect()}
    assert first != {r[0] for r in sample_users(users, 10, seed=4).collect()}
    assert sample_users(users, 100, seed=3).count() == 50


def test_ndcg_at_k_by_hand():
    # hits at ranks 1 and 3 of 2 relevant: (1 + 1/2) / (1 + 1/log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 3) == pytest.approx(1.5 / (1 + 1 / 1.5849625))
    assert ndcg_at_k(["x"], set(), 3) == 0.0
    assert ndcg_at_k(["x", "a"], {"a"}, 1) == 0.0


def test_weight_grid_spreads_the_sources_over_a_simplex():
    grid = weight_grid(0.25)
    assert len(grid) == 70  # C(4 + 4, 4): five sources in quarters
    assert all(
        w.als + w.neighbours + w.content + w.trending + w.popular == pytest.approx(1) for w in grid
    )
    assert {(w.affinity, w.anchor_decay) for w in grid} == {
        (Weights().affinity, Weights().anchor_decay)
    }
    assert Weights(als=0, neighbours=0, content=0, trending=0, popular=1.0) in grid
