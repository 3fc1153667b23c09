"""User-user CF on a hand-checked case of four users.

    u1: a=1, b=1         |u1| = sqrt(2)
    u2: a=1, b=1, c=2    |u2| = sqrt(6)
    u3: b=2, d=1         |u3| = sqrt(5)
    u4: e=1              (shares nothing)

cos(u1, u2) = 2 / sqrt(12), cos(u1, u3) = 2 / sqrt(10), cos(u2, u3) = 2 / sqrt(30).
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from features import columns as c
from models.offline import MODELS
from models.user_cf import NEIGHBOUR_KEY, capped_histories, user_cf_lists, user_neighbours
from recolake.settings import PERSONAL_MODELS, Settings

ROWS = [
    ("u1", "a", 1.0),
    ("u1", "b", 1.0),
    ("u2", "a", 1.0),
    ("u2", "b", 1.0),
    ("u2", "c", 2.0),
    ("u3", "b", 2.0),
    ("u3", "d", 1.0),
    ("u4", "e", 1.0),
]
C12, C13, C23 = 2 / math.sqrt(12), 2 / math.sqrt(10), 2 / math.sqrt(30)


@pytest.fixture
def strength(spark):
    return spark.createDataFrame(ROWS, "user_key string, item_id string, strength double")


def lists_of(frame) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for r in frame.orderBy(c.USER_KEY, c.RANK).collect():
        out.setdefault(r[c.USER_KEY], []).append((r[c.ITEM_ID], round(r[c.SCORE], 6)))
    return out


@pytest.mark.spark
def test_cosine_neighbours_and_similarity_weighted_scores(strength):
    got = user_cf_lists(strength, 5, top_n=5, max_items_per_user=10, max_users_per_item=10)
    r = lambda x: round(x, 6)  # noqa: E731
    assert lists_of(got) == {
        "u1": [("c", r(C12 * 2)), ("d", r(C13 * 1))],  # own a, b excluded
        "u2": [("d", r(C23 * 1))],
        "u3": [("a", r(C13 * 1 + C23 * 1)), ("c", r(C23 * 2))],
    }  # u4 shares no item with anyone: no list


@pytest.mark.spark
def test_top_n_keeps_the_most_similar_and_users_restricts_the_left_side(strength):
    histories, links = capped_histories(strength, max_items_per_user=10, max_users_per_item=10)
    everyone = user_neighbours(histories, links, top_n=1)
    assert {(r[c.USER_KEY], r[NEIGHBOUR_KEY]) for r in everyone.collect()} == {
        ("u1", "u3"),  # C13 > C12
        ("u2", "u1"),  # C12 > C23
        ("u3", "u1"),
    }
    only_u1 = strength.sparkSession.createDataFrame([("u1",)], "user_key string")
    one = user_cf_lists(
        strength, 5, top_n=1, max_items_per_user=10, max_users_per_item=10, users=only_u1
    )
    assert lists_of(one) == {"u1": [("d", round(C13, 6))]}


@pytest.mark.spark
def test_item_popularity_cap_and_min_support(strength):
    # b has three users; a cap of 2 keeps u3 (2.0) and u1 (tie with u2 at 1.0, by key):
    # u2 no longer links through b. Norms stay those of the whole histories.
    histories, links = capped_histories(strength, max_items_per_user=10, max_users_per_item=2)
    pairs = {
        (r[c.USER_KEY], r[NEIGHBOUR_KEY]): r[c.SCORE]
        for r in user_neighbours(histories, links, top_n=5).collect()
    }
    assert set(pairs) == {("u1", "u2"), ("u2", "u1"), ("u1", "u3"), ("u3", "u1")}
    assert pairs[("u1", "u2")] == pytest.approx(1 / math.sqrt(12))
    assert pairs[("u1", "u3")] == pytest.approx(C13)
    # min_support 2: only u1 and u2 share two items
    histories, links = capped_histories(strength, max_items_per_user=10, max_users_per_item=10)
    two = user_neighbours(histories, links, top_n=5, min_support=2)
    assert {(r[c.USER_KEY], r[NEIGHBOUR_KEY]) for r in two.collect()} == {
        ("u1", "u2"),
        ("u2", "u1"),
    }


def test_personal_models_are_checked_by_name():
    assert Settings(personal_models=["als", "user_cf"]).personal_models == ["als", "user_cf"]
    assert set(PERSONAL_MODELS) <= set(MODELS)  # each is a row of the evaluation too
    with pytest.raises(ValidationError, match="unknown \\['usercf'\\]"):
        Settings(personal_models=["als", "usercf"])
    with pytest.raises(ValidationError, match="must not be empty"):
        Settings(personal_models=[])


@pytest.mark.spark
def test_publish_fuses_user_cf_into_every_users_list(spark, strength, tmp_path):
    from pipelines.publish import personal_lists
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, personal_models=["als", "user_cf"])
    als = spark.createDataFrame(
        [("u1", "e", 0.9, 1), ("u4", "a", 0.8, 1)],
        "user_key string, item_id string, score double, rank int",
    )
    fused = personal_lists(
        spark, settings, None, als=als, strength=strength, weights={"als": 0.5, "user_cf": 0.5}
    )
    got = {u: {i for i, _ in items} for u, items in lists_of(fused).items()}
    # user-CF's items (own history excluded) beside ALS's, for users ALS did not list too
    assert got == {"u1": {"e", "c", "d"}, "u2": {"d"}, "u3": {"a", "c"}, "u4": {"a"}}
