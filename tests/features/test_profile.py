"""User profile features (features/profile.py) on frames of a few rows, values checked by
hand in the comments."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from features import columns as c
from features import profile
from features.tables import GOLD_USER_PROFILE
from features.transforms import with_ds

pytestmark = pytest.mark.spark

DS = date(2024, 5, 10)

EVENTS_SCHEMA = (
    "event_id string, user_key string, item_id string, event_type string, "
    "event_time timestamp, session_id string, quantity int, price double"
)
CATALOG_SCHEMA = "item_id string, category string, brand string, price double"
STRENGTH_SCHEMA = "user_key string, item_id string, strength double"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute)


def events(spark):
    return spark.createDataFrame(
        [
            # u1: baskets b1 (a x2 at 10, b at 5) and b2 (a, no price: the catalog's 10)
            ("e1", "u1", "a", "purchase", at(10, 10), "b1", 2, 10.0),
            ("e2", "u1", "b", "purchase", at(10, 10), "b1", None, 5.0),
            ("e3", "u1", "a", "purchase", at(8, 15), "b2", None, None),
            ("e4", "u1", "c", "view", at(10, 10, 30), "b1", None, None),
            ("e5", "u1", "c", "purchase", at(11, 9), "b3", 1, 99.0),  # after ds: ignored
            # u2: one purchase without a session (a basket of its own), one view
            ("e6", "u2", "c", "purchase", at(1, 9), None, 1, 20.0),
            ("e7", "u2", "d", "view", at(5, 22), None, None, None),
            # u3: views only
            ("e8", "u3", "a", "view", at(9, 8), None, None, None),
            ("e9", "u3", "a", "view", at(9, 8, 30), None, None, None),
            ("e10", "u3", "b", "view", at(9, 9), None, None, None),
            ("e11", "u3", "b", "view", at(9, 7), None, None, None),
            ("e12", "u3", "b", "view", at(9, 23), None, None, None),
            # u4: bought d, which has no price anywhere
            ("e13", "u4", "d", "purchase", at(6, 12), None, None, None),
        ],
        EVENTS_SCHEMA,
    )


def catalog(spark):
    return spark.createDataFrame(
        [
            ("a", "home", "acme", 10.0),
            ("b", "home", None, 5.0),
            ("c", "kitchen", "zeta", 20.0),
            ("d", None, None, None),
            ("e", "garden", None, 40.0),
        ],
        CATALOG_SCHEMA,
    )


def strength(spark):
    return spark.createDataFrame(
        [
            ("u1", "a", 3.0),
            ("u1", "b", 1.0),
            ("u1", "c", 1.0),
            ("u2", "c", 2.0),
            ("u2", "d", 1.0),
            ("u3", "a", 1.0),
            ("u3", "b", 1.0),
            ("u4", "d", 1.0),
        ],
        STRENGTH_SCHEMA,
    )


def test_profile_values_by_hand(spark):
    rows = {
        r[c.USER_KEY]: r.asDict(recursive=True)
        for r in profile.user_profile(
            events(spark), strength(spark), catalog(spark), ds=DS, top_n=2
        ).collect()
    }
    assert sorted(rows) == ["u1", "u2", "u3", "u4"]
    u1, u2, u3, u4 = (rows[u] for u in ("u1", "u2", "u3", "u4"))

    # recency (days to ds), frequency (baskets), monetary (price x quantity)
    assert (u1[c.N_EVENTS], u1[c.DAYS_SINCE_LAST_EVENT], u1[c.DAYS_SINCE_LAST_PURCHASE]) == (
        4,
        0,
        0,
    )
    assert u1[c.LAST_EVENT_TIME] == at(10, 10, 30) and u1[c.LAST_PURCHASE_TIME] == at(10, 10)
    assert (u1[c.FREQUENCY], u1[c.MONETARY]) == (2, 35.0)  # 10*2 + 5*1 + 10 (catalog)
    assert (u2[c.DAYS_SINCE_LAST_EVENT], u2[c.DAYS_SINCE_LAST_PURCHASE]) == (5, 9)
    assert (u2[c.FREQUENCY], u2[c.MONETARY]) == (1, 20.0)
    assert (u3[c.N_EVENTS], u3[c.DAYS_SINCE_LAST_EVENT], u3[c.FREQUENCY]) == (5, 1, 0)
    assert u3[c.DAYS_SINCE_LAST_PURCHASE] is None and u3[c.MONETARY] is None
    assert (u4[c.FREQUENCY], u4[c.DAYS_SINCE_LAST_PURCHASE], u4[c.MONETARY]) == (1, 4, None)

    # buyers u1, u2, u4. Days [0, 4, 9] -> quintiles [0, 4, 4, 9]: R = 5 - exceeded:
    # u1 5, u4 4 (>0), u2 2 (>0, >4, >4). Frequency [1, 1, 2] -> [1, 1, 1, 2]: F = 1 +
    # exceeded: u1 4, others 1. Monetary [20, 35] -> [20, 20, 35, 35]: u1 3, u2 1, u4 none.
    scores = {u: (r[c.R_SCORE], r[c.F_SCORE], r[c.M_SCORE], r[c.SEGMENT]) for u, r in rows.items()}
    assert scores == {
        "u1": (5, 4, 3, "champions"),
        "u2": (2, 1, 1, "hibernating"),
        "u3": (None, None, None, "browser"),
        "u4": (4, 1, None, "new"),
    }

    # affinity: u1 strength home a 3 + b 1, kitchen c 1 -> 0.8 / 0.2; brands over the
    # branded items only: acme 3, zeta 1 -> 0.75 / 0.25
    assert u1[c.TOP_CATEGORIES] == [
        {"category": "home", "share": 0.8},
        {"category": "kitchen", "share": 0.2},
    ]
    assert u1[c.TOP_BRANDS] == [{"brand": "acme", "share": 0.75}, {"brand": "zeta", "share": 0.25}]
    assert u2[c.TOP_CATEGORIES] == [{"category": "kitchen", "share": 1.0}]  # d: no category
    assert u4[c.TOP_CATEGORIES] == [] and u4[c.TOP_BRANDS] == []

    # price band: catalog prices [5, 10, 20, 40] -> quintiles [5, 10, 20, 40]; u1's items
    # a, b, c: median 10 > 5 -> band 2; u2 c (d has no price): 20 > 5, 10 -> 3; u3 a, b:
    # lower middle 5 -> 1; u4 only d: none
    bands = {u: (r[c.MEDIAN_PRICE], r[c.PRICE_BAND]) for u, r in rows.items()}
    assert bands == {"u1": (10.0, 2), "u2": (20.0, 3), "u3": (5.0, 1), "u4": (None, None)}

    # hours: u1 10 (3 events), 15 (1); u3 8 (2), then 7, 9, 23 (1 each): the top 3
    hours = {u: r[c.PREFERRED_HOURS] for u, r in rows.items()}
    assert hours == {"u1": [10, 15], "u2": [9, 22], "u3": [8, 7, 9], "u4": [12]}


def test_top_n_keeps_the_largest_shares(spark):
    shares = profile.top_shares(strength(spark), catalog(spark), c.CATEGORY, top_n=1).collect()
    assert {r[c.USER_KEY]: [e.asDict() for e in r[c.CATEGORY]] for r in shares} == {
        "u1": [{"category": "home", "share": 0.8}],
        "u2": [{"category": "kitchen", "share": 1.0}],
        "u3": [{"category": "home", "share": 1.0}],
    }


def test_data_without_any_price_still_profiles_every_user(spark):
    """The generic CSV with only the required columns: no prices, quantities, sessions,
    brands. The profile is still there, money columns null, and fits the table."""
    bare = events(spark).drop(c.PRICE, c.QUANTITY, c.SESSION_ID)
    bare = bare.selectExpr(
        "*",
        "cast(null as string) session_id",
        "cast(null as int) quantity",
        "cast(null as double) price",
    )
    no_prices = spark.createDataFrame(
        [("a", "home", None), ("b", "home", None), ("c", None, None), ("d", None, None)],
        "item_id string, category string, price double",
    )
    out = profile.user_profile(bare, strength(spark), no_prices, ds=DS)
    rows = {r[c.USER_KEY]: r for r in GOLD_USER_PROFILE.conform(with_ds(out, DS)).collect()}
    assert sorted(rows) == ["u1", "u2", "u3", "u4"]
    for r in rows.values():
        assert r[c.MONETARY] is None and r[c.M_SCORE] is None
        assert r[c.MEDIAN_PRICE] is None and r[c.PRICE_BAND] is None
        assert r[c.TOP_BRANDS] == []
    # without sessions each purchase event is a basket: u1 bought 3 times before ds
    assert rows["u1"][c.FREQUENCY] == 3 and rows["u1"][c.SEGMENT] == "champions"
    assert rows["u3"][c.SEGMENT] == "browser"


def test_nobody_bought_anything(spark):
    views = events(spark).where("event_type = 'view'")
    rows = profile.user_profile(views, strength(spark), catalog(spark), ds=DS).collect()
    assert {r[c.SEGMENT] for r in rows} == {"browser"}
    assert all(r[c.R_SCORE] is None and r[c.FREQUENCY] == 0 for r in rows)


def test_the_profile_has_the_declared_schema(spark):
    out = profile.user_profile(events(spark), strength(spark), catalog(spark), ds=DS)
    conformed = GOLD_USER_PROFILE.conform(with_ds(out, DS))  # raises on any mismatch
    assert [(f.name, f.dataType) for f in conformed.schema] == [
        (f.name, f.dataType) for f in GOLD_USER_PROFILE.schema
    ]


def test_no_single_partition_window_in_the_plan(spark):
    """Quintiles come from an aggregate, never a global window (which would pull every row
    into one task): the plan has no Window operator without a partition."""
    out = profile.user_profile(events(spark), strength(spark), catalog(spark), ds=DS)
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert "Window" not in plan
    assert "CartesianProduct" not in plan  # the one-row thresholds are broadcast


def test_the_published_fields_are_the_table_columns():
    """The Redis codec names gold.user_profile's columns (it imports no pyspark itself)."""
    from recolake.onlinestore.codecs import PROFILE_FIELDS

    columns = GOLD_USER_PROFILE.schema.fieldNames()
    assert list(PROFILE_FIELDS) == [n for n in columns if n != c.USER_KEY]
