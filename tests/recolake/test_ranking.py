"""The request-time blend as pure functions: scoring, reasons, filters, diversity, cold start."""

from __future__ import annotations

import json

import pytest

from recolake.onlinestore.values import (
    decode_category_affinity,
    decode_item_info,
    decode_recent,
    merge_recent,
)
from recolake.ranking import (
    Filters,
    Inputs,
    ItemInfo,
    RecentEvent,
    Weights,
    anchors,
    blend,
    similar,
)

W = Weights()
NO_FILTERS = Filters()
CATALOG = {
    "shoe": ItemInfo("Red shoe", "shoes", True),
    "sock": ItemInfo("Wool sock", "socks", True),
    "boot": ItemInfo("Boot", "shoes", True),
    "lace": ItemInfo("Laces", "shoes", True),
    "heel": ItemInfo("Heel", "shoes", True),
    "gone": ItemInfo("Sold out", "shoes", False),
    "hat": ItemInfo("Hat", "hats", True),
    "new": ItemInfo("Brand new shoe", "shoes", True),
}


def ids(recs):
    return [r.item_id for r in recs]


def test_als_first_then_popular_and_summing_keeps_als_label():
    recs = blend(
        Inputs(als=[("i1", 0.9), ("i2", 0.8), ("p1", 0.7)], popular=[("p1", 3), ("p2", 2)]),
        weights=W,
        filters=NO_FILTERS,
        k=4,
    )
    assert [(r.item_id, r.source) for r in recs] == [
        ("i1", "als"),
        ("i2", "als"),
        ("p1", "als"),
        ("p2", "popular"),
    ]
    assert recs[0].reason == "recommended for you"
    assert recs[2].score > W.als * (1 - 2 / 3)  # als + popular contributions summed


def test_recent_view_brings_neighbours_with_reasons():
    inputs = Inputs(
        als=[("hat", 1.0)],
        recent=[RecentEvent("shoe", "view", 10.0)],
        neighbours={
            ("co_view", "shoe"): [("boot", 0.9)],
            ("bought_together", "shoe"): [("sock", 0.5)],
            ("content", "shoe"): [("new", 0.8)],
        },
        catalog=CATALOG,
    )
    recs = {r.item_id: r for r in blend(inputs, weights=W, filters=NO_FILTERS, k=10)}
    assert recs["boot"].source == "co_view"
    assert recs["boot"].reason == "because you viewed Red shoe"
    assert recs["sock"].reason == "bought together with Red shoe"
    # cold item: only reachable through content similarity
    assert recs["new"].source == "content"
    assert recs["hat"].reason == "recommended for you"


def test_older_anchors_count_less():
    inputs = Inputs(
        recent=[RecentEvent("shoe", "view", 20.0), RecentEvent("hat", "view", 10.0)],
        neighbours={("co_view", "shoe"): [("boot", 1.0)], ("co_view", "hat"): [("sock", 1.0)]},
        catalog=CATALOG,
    )
    assert ids(blend(inputs, weights=W, filters=NO_FILTERS, k=2)) == ["boot", "sock"]


def test_cold_start_without_anything_is_trending_then_popular():
    recs = blend(
        Inputs(
            trending=[("t1", 5.0)], popular=[("p1", 9.0)], catalog={"p1": ItemInfo("P", "toys")}
        ),
        weights=W,
        filters=NO_FILTERS,
        k=2,
    )
    assert [(r.item_id, r.source, r.reason) for r in recs] == [
        ("t1", "trending", "trending now"),
        ("p1", "popular", "popular in toys"),
    ]


def test_filters_purchased_unavailable_excluded_and_category():
    inputs = Inputs(
        als=[("gone", 1.0), ("shoe", 0.9), ("sock", 0.8), ("boot", 0.7), ("hat", 0.6)],
        recent=[RecentEvent("shoe", "purchase", 5.0)],
        catalog=CATALOG,
    )
    assert ids(blend(inputs, weights=W, filters=Filters(exclude=frozenset({"sock"})), k=10)) == [
        "boot",
        "hat",
    ]
    assert ids(blend(inputs, weights=W, filters=Filters(category="shoes"), k=10)) == ["boot"]


def test_diversity_caps_items_per_category_after_filtering():
    inputs = Inputs(
        als=[("gone", 1), ("shoe", 1), ("boot", 1), ("lace", 1), ("heel", 1), ("hat", 1)],
        catalog=CATALOG,
    )
    recs = blend(inputs, weights=W, filters=Filters(max_per_category=2), k=4)
    # 'gone' is filtered first, so it does not use up one of the two 'shoes' slots
    assert ids(recs) == ["shoe", "boot", "hat"]
    uncapped = blend(inputs, weights=W, filters=Filters(max_per_category=None), k=4)
    assert ids(uncapped) == ["shoe", "boot", "lace", "heel"]


def test_category_affinity_lifts_current_categories():
    inputs = Inputs(popular=[("hat", 2), ("sock", 1)], category_affinity={"socks": 3.0})
    assert ids(blend(inputs, weights=W, filters=NO_FILTERS, k=2)) == ["hat", "sock"]  # no info
    inputs.catalog = CATALOG
    heavy = Weights(affinity=5.0)
    assert ids(blend(inputs, weights=heavy, filters=NO_FILTERS, k=2)) == ["sock", "hat"]


def test_decoders_and_anchor_order():
    payload = json.dumps(
        [
            {"item_id": "a", "event_type": "view", "ts": 3},
            {"item_id": "b", "event_type": "add_to_cart", "ts": 2},
            {"item_id": "a", "event_type": "view", "ts": 1},
        ]
    )
    recent = decode_recent(payload)
    assert [a.item_id for a in anchors(recent, 5)] == ["a", "b"]
    assert [a.item_id for a in anchors(recent, 1)] == ["a"]
    session = [RecentEvent("s", "view", 2.5)]
    assert [e.item_id for e in merge_recent(recent, session)] == ["a", "s", "b", "a"]
    assert decode_recent(None) == []
    with pytest.raises(ValueError, match="malformed recent"):
        decode_recent(json.dumps([{"event_type": "view"}]))
    assert decode_item_info('{"title":"T","category":"C","available":false}') == ItemInfo(
        "T", "C", False
    )
    assert decode_category_affinity('{"categories":{"c":1.5},"items":{}}') == {"c": 1.5}


def test_similar_merges_kinds_drops_self_and_unavailable():
    recs = similar(
        "shoe",
        {"content": [("boot", 0.9), ("gone", 0.8), ("shoe", 0.7)], "co_view": [("sock", 3.0)]},
        weights={"content": 0.5, "co_view": 0.8},
        catalog=CATALOG,
        filters=NO_FILTERS,
        k=5,
    )
    assert [(r.item_id, r.source, r.reason) for r in recs] == [
        ("sock", "co_view", "viewed together with Red shoe"),
        ("boot", "content", "similar to Red shoe"),
    ]
