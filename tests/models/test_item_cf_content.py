"""Item-item CF and content neighbours on tiny hand-checked cases."""

from __future__ import annotations

import math

import pytest

from features import columns as c
from models.content import content_model, content_neighbours
from models.item_cf import cap_groups, co_occurrence_neighbours, score_from_neighbours

pytestmark = pytest.mark.spark


def test_co_occurrence_is_cosine_normalised_with_support(spark):
    # a and b together in 2 baskets; a in 3 baskets, b in 2, c once with a.
    groups = spark.createDataFrame(
        [("g1", "a"), ("g1", "b"), ("g2", "a"), ("g2", "b"), ("g3", "a"), ("g3", "c")],
        "session_id string, item_id string",
    )
    out = co_occurrence_neighbours(groups, col_group="session_id", top_n=5, min_support=2)
    rows = {(r[c.ITEM_ID], r[c.NEIGHBOUR_ID]): r for r in out.collect()}
    assert set(rows) == {("a", "b"), ("b", "a")}  # (a, c) has support 1 only
    assert rows[("a", "b")][c.SCORE] == pytest.approx(2 / math.sqrt(3 * 2))
    assert rows[("a", "b")][c.RANK] == 1


def test_cap_groups_keeps_strongest_items(spark):
    pairs = spark.createDataFrame(
        [("u", "x", 1.0), ("u", "y", 3.0), ("u", "z", 2.0)],
        "user_key string, item_id string, strength double",
    )
    kept = cap_groups(pairs, col_group="user_key", col_order="strength", max_items=2)
    assert sorted(r[c.ITEM_ID] for r in kept.collect()) == ["y", "z"]


def test_score_from_neighbours_excludes_history(spark):
    history = spark.createDataFrame(
        [("u", "a", 2.0), ("u", "b", 1.0)], "user_key string, item_id string, strength double"
    )
    neighbours = spark.createDataFrame(
        [("a", "b", 0.9), ("a", "x", 0.5), ("b", "x", 0.4), ("b", "y", 0.6)],
        "item_id string, neighbour_id string, score double",
    )
    got = score_from_neighbours(history, neighbours, k=5).orderBy(c.RANK).collect()
    assert [(r[c.ITEM_ID], round(r[c.SCORE], 6)) for r in got] == [("x", 1.4), ("y", 0.6)]


def test_content_neighbours_share_words_and_category(spark):
    catalog = spark.createDataFrame(
        [
            ("1", "WHITE HEART T-LIGHT HOLDER", "HOLDER"),
            ("2", "RED HEART T-LIGHT HOLDER", "HOLDER"),
            ("3", "VINTAGE PAISLEY BAG", "BAG"),
            ("4", "JUMBO PAISLEY BAG", "BAG"),
            ("5", "GARDEN GNOME", "GNOME"),
            ("6", "NEW ITEM WITH NO SALES HEART", None),
        ],
        "item_id string, title string, category string",
    )
    rows = content_neighbours(catalog, top_n=2, max_term_share=0.5).collect()
    best = {r[c.ITEM_ID]: r[c.NEIGHBOUR_ID] for r in rows if r[c.RANK] == 1}
    assert best["1"] == "2" and best["2"] == "1"
    assert best["3"] == "4" and best["4"] == "3"
    assert "5" not in best  # shares nothing
    assert all(0 < r[c.SCORE] <= 1.0 + 1e-9 for r in rows)


def test_items_sharing_only_a_brand_become_content_neighbours(spark):
    """gold.item_catalog's brand reaches the model: nothing but the brand links 1 and 2."""
    catalog = spark.createDataFrame(
        [
            ("1", "KETTLE", "KITCHEN", "Acme"),
            ("2", "DRILL", "TOOLS", "Acme"),
            ("3", "NOTEBOOK", "PAPER", "Globex"),
            ("4", "SCARF", "CLOTHES", None),
        ],
        "item_id string, title string, category string, brand string",
    )
    rows = content_neighbours(catalog, top_n=2, max_term_share=0.5, prune_score=0).collect()
    pairs = {(r[c.ITEM_ID], r[c.NEIGHBOUR_ID]) for r in rows}
    assert ("1", "2") in pairs and ("2", "1") in pairs
    assert not any("3" in p or "4" in p for p in pairs)  # no shared brand, no other term
    without = content_neighbours(
        catalog.drop(c.BRAND), top_n=2, max_term_share=0.5, prune_score=0
    ).collect()
    assert without == []  # the brand is what links them


def test_the_api_scores_a_text_as_the_content_model_does(spark):
    """The published terms (content_model's postings) scored by the API's code
    (recolake.onlinestore.catalog) give an item's text the model's own neighbours and cosines:
    same tokens (case, punctuation, cat_/brand_ tokens), same weights."""
    from recolake.onlinestore.catalog import score_terms, text_terms

    rows = [
        ("1", "White Heart T-Light Holder", "Home & Garden", "Acme"),
        ("2", "Red heart t-light holder", "home & garden", None),
        ("3", "Vintage paisley bag", "Bags", "Acme"),
        ("4", "Jumbo paisley BAG, red", "Bags", "Globex"),
        ("5", "Garden gnome", None, "Globex"),
    ]
    catalog = spark.createDataFrame(
        rows, "item_id string, title string, category string, brand string"
    )
    neighbours, postings = content_model(
        catalog, top_n=4, max_term_share=1.0, prune_score=0, per_term=10
    )
    expected = {}
    for r in neighbours.collect():
        expected.setdefault(r[c.ITEM_ID], {})[r[c.NEIGHBOUR_ID]] = r[c.SCORE]
    terms = {
        r["term"]: (r["idf"], [(e[c.ITEM_ID], e["weight"]) for e in r["items"]])
        for r in postings.collect()
    }
    assert terms["brand_acme"][1] and terms["cat_home_garden"][1]
    for item, title, category, brand in rows:
        got = score_terms(text_terms(title, category, brand), terms, top_n=4, exclude=item)
        kept = {i: v for i, v in got if v >= 0.05}  # content_model's min_score
        assert kept == pytest.approx(expected.get(item, {}), abs=1e-5), item
