"""Trending and per-category popularity baselines on tiny frames checked by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from features import columns as c
from models.baselines import popular_for_users, popular_in_user_categories, trending_items

pytestmark = pytest.mark.spark

AS_OF = datetime(2024, 5, 10)
WEIGHTS = {"view": 1.0, "purchase": 4.0, "other": 0.0}
EVENTS_SCHEMA = "user_key string, item_id string, event_type string, event_time timestamp"


@pytest.fixture(scope="module")
def events(spark):
    day = timedelta(days=1)
    return spark.createDataFrame(
        [
            ("a", "x", "view", AS_OF - day),  # 1 * 0.5^1 = 0.5
            ("b", "x", "view", AS_OF - 2 * day),  # 1 * 0.5^2 = 0.25
            ("a", "y", "purchase", AS_OF - day),  # 4 * 0.5^1 = 2.0
            ("c", "z", "view", AS_OF - day / 2),  # 0.5^0.5
            ("d", "z", "view", AS_OF),  # at as_of: excluded
            ("d", "w", "purchase", AS_OF + day),  # after as_of: excluded
            ("e", "v", "purchase", AS_OF - 4 * day),  # 4 * 0.5^4 = 0.25, outside a 3-day window
            ("f", "u", "other", AS_OF - day),  # weight 0: not an interest signal
        ],
        EVENTS_SCHEMA,
    )


def rows(df, *cols):
    return [tuple(r[col] for col in cols) for r in df.collect()]


def test_trending_decays_and_ignores_events_after_as_of(events):
    got = trending_items(events, AS_OF, 3, 1.0, WEIGHTS).orderBy(c.RANK)
    assert rows(got, c.ITEM_ID, c.N_USERS, c.RANK) == [("y", 1, 1), ("x", 2, 2), ("z", 1, 3)]
    scores = dict(rows(got, c.ITEM_ID, c.SCORE))
    assert scores["y"] == pytest.approx(2.0)
    assert scores["x"] == pytest.approx(0.75)
    assert scores["z"] == pytest.approx(0.5**0.5)


def test_trending_window_bounds_what_counts(events):
    wide = trending_items(events, AS_OF, 5, 1.0, WEIGHTS).orderBy(c.RANK)
    assert rows(wide, c.ITEM_ID, c.RANK) == [("y", 1), ("x", 2), ("z", 3), ("v", 4)]
    assert rows(wide.where(f"{c.ITEM_ID} = 'v'"), c.SCORE)[0][0] == pytest.approx(0.25)
    narrow = trending_items(events, AS_OF, 1, 1.0, WEIGHTS).orderBy(c.RANK)
    # [as_of - 1 day, as_of): x keeps only a's view, b's view two days ago drops out.
    assert rows(narrow, c.ITEM_ID, c.N_USERS, c.RANK) == [("y", 1, 1), ("z", 1, 2), ("x", 1, 3)]


def test_trending_half_life_changes_the_order(spark):
    day = timedelta(days=1)
    events = spark.createDataFrame(
        [
            ("a", "old", "purchase", AS_OF - 6 * day),
            ("b", "new", "view", AS_OF - day),
        ],
        EVENTS_SCHEMA,
    )
    # Slow decay: 4 * 0.5^(6/30) = 3.48 > 0.98. Fast decay: 4 * 0.5^6 = 0.06 < 0.5.
    slow = trending_items(events, AS_OF, 7, 30.0, WEIGHTS).orderBy(c.RANK)
    fast = trending_items(events, AS_OF, 7, 1.0, WEIGHTS).orderBy(c.RANK)
    assert [r[0] for r in rows(slow, c.ITEM_ID)] == ["old", "new"]
    assert [r[0] for r in rows(fast, c.ITEM_ID)] == ["new", "old"]


def test_trending_rejects_bad_parameters(events):
    with pytest.raises(ValueError, match="half_life_days"):
        trending_items(events, AS_OF, 3, 0.0, WEIGHTS)
    with pytest.raises(ValueError, match="missing required column"):
        trending_items(events.drop(c.EVENT_TIME), AS_OF, 3, 1.0, WEIGHTS)


def test_trending_feeds_the_popularity_scorer(spark, events):
    trending = trending_items(events, AS_OF, 3, 1.0, WEIGHTS)
    users = spark.createDataFrame([("a",), ("n",)], "user_key string")
    seen = spark.createDataFrame(
        [("a", "y", 1.0)], "user_key string, item_id string, strength double"
    )
    got = popular_for_users(users, trending, seen, k=2).orderBy(c.USER_KEY, c.RANK)
    assert rows(got, c.USER_KEY, c.ITEM_ID) == [("a", "x"), ("a", "z"), ("n", "y"), ("n", "x")]


# Items p1..p8 ranked by popularity in that order; p7 has no category.
CATALOG = [
    ("p1", "A"),
    ("p2", "B"),
    ("p3", "A"),
    ("p4", "C"),
    ("p5", "B"),
    ("p6", "A"),
    ("p7", None),
    ("p8", "C"),
]


@pytest.fixture(scope="module")
def catalog(spark):
    return spark.createDataFrame(
        [(item, cat, 1.0, True) for item, cat in CATALOG],
        "item_id string, category string, price double, available boolean",
    )


@pytest.fixture(scope="module")
def popularity(spark):
    return spark.createDataFrame(
        [(item, i + 1) for i, (item, _) in enumerate(CATALOG)], "item_id string, rank int"
    )


@pytest.fixture(scope="module")
def interactions(spark):
    return spark.createDataFrame(
        [
            ("U", "p3", 2.0),  # U: A (2.0) > B (1.0) > C (0.5)
            ("U", "p5", 1.0),
            ("U", "p8", 0.5),
            ("W", "p7", 5.0),  # W: the uncategorised item says nothing, so only C
            ("W", "p4", 1.0),
            ("X", "p8", 3.0),  # X: C (3.0) > B (1.0)
            ("X", "p5", 1.0),
        ],
        "user_key string, item_id string, strength double",
    )


def lists(df):
    out: dict[str, list[str]] = {}
    for user, item in rows(df.orderBy(c.USER_KEY, c.RANK), c.USER_KEY, c.ITEM_ID):
        out.setdefault(user, []).append(item)
    return out


def test_category_popularity_hand_computed(spark, popularity, catalog, interactions):
    users = spark.createDataFrame([("U",), ("V",), ("W",), ("X",)], "user_key string")
    got = popular_in_user_categories(users, popularity, catalog, interactions, 4, top_categories=2)
    assert lists(got) == {
        # A: p1, p3 (seen), p6; B: p2, p5 (seen) -> round robin p1, p2, p6; fill p4.
        "U": ["p1", "p2", "p6", "p4"],
        # No history: global popularity.
        "V": ["p1", "p2", "p3", "p4"],
        # C only: p4 seen, p8; then global fill skipping the seen p4 and the uncategorised p7.
        "W": ["p8", "p1", "p2", "p3"],
        # C before B although p2 is more popular than p4: the user's taste comes first.
        "X": ["p4", "p2", "p1", "p3"],
    }
    scored = rows(got.where(f"{c.USER_KEY} = 'U'").orderBy(c.RANK), c.SCORE, c.RANK)
    assert scored == [(-1.0, 1), (-2.0, 2), (-3.0, 3), (-4.0, 4)]


def test_category_popularity_never_returns_interacted_items(
    spark, popularity, catalog, interactions
):
    users = spark.createDataFrame([("U",), ("W",), ("X",)], "user_key string")
    got = popular_in_user_categories(users, popularity, catalog, interactions, 8, top_categories=3)
    seen = set(rows(interactions, c.USER_KEY, c.ITEM_ID))
    recommended = set(rows(got, c.USER_KEY, c.ITEM_ID))
    assert recommended and not (recommended & seen)
    # Exactly the unseen items when fewer than k exist: 8 - 3 for U, 8 - 2 for W and X.
    counts = {u: len(items) for u, items in lists(got).items()}
    assert counts == {"U": 5, "W": 6, "X": 6}
    # U with three categories: A p1, B p2, (C p4 before the fill), then A p6.
    assert lists(got)["U"] == ["p1", "p2", "p4", "p6", "p7"]


def test_category_popularity_fills_to_exactly_k(spark, popularity, catalog, interactions):
    users = spark.createDataFrame([("U",), ("V",), ("W",), ("X",)], "user_key string")
    got = popular_in_user_categories(users, popularity, catalog, interactions, 5, top_categories=1)
    assert {u: len(items) for u, items in lists(got).items()} == {"U": 5, "V": 5, "W": 5, "X": 5}
    # U, one category (A): p1, p6 from A, then global fill p2, p4, p7.
    assert lists(got)["U"] == ["p1", "p6", "p2", "p4", "p7"]


def test_category_popularity_rejects_a_catalog_with_several_snapshots(
    spark, popularity, catalog, interactions
):
    users = spark.createDataFrame([("U",)], "user_key string")
    with pytest.raises(ValueError, match=r"filter gold\.item_catalog on ds"):
        popular_in_user_categories(users, popularity, catalog.unionByName(catalog), interactions, 3)
    with pytest.raises(ValueError, match="k and top_categories"):
        popular_in_user_categories(users, popularity, catalog, interactions, 0)
