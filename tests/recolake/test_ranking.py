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


# --- filters on every source, negative feedback ---------------------------------------------

#: One candidate per source, each the only item of its list ("anchor" is the recent item).
SOURCE_INPUTS = {
    "als": lambda item: {"als": [(item, 1.0)]},
    "co_view": lambda item: {"neighbours": {("co_view", "anchor"): [(item, 1.0)]}},
    "bought_together": lambda item: {"neighbours": {("bought_together", "anchor"): [(item, 1.0)]}},
    "content": lambda item: {"neighbours": {("content", "anchor"): [(item, 1.0)]}},
    "trending": lambda item: {"trending": [(item, 1.0)]},
    "popular": lambda item: {"popular": [(item, 1.0)]},
}
FILTER_CATALOG = {
    **CATALOG,
    "anchor": ItemInfo("Anchor", "hats", True),
    "x": ItemInfo("X", "shoes", True),
    "keep": ItemInfo("Keep", "shoes", True),
}


def _one_source(source: str, item: str, **extra) -> Inputs:
    """``item`` and ``keep`` proposed by ``source`` alone; the visitor recently viewed
    ``anchor`` (the neighbour lists' anchor) unless ``recent`` says otherwise."""
    lists = SOURCE_INPUTS[source](item)
    for name, value in SOURCE_INPUTS[source]("keep").items():  # keep: second of the list
        if isinstance(value, dict):
            lists[name] = {k: [*lists[name][k], *v] for k, v in value.items()}
        else:
            lists[name] = [*lists[name], *value]
    recent = [RecentEvent("anchor", "view", 10.0), *extra.pop("recent", ())]
    return Inputs(recent=recent, catalog=FILTER_CATALOG, **lists, **extra)


@pytest.mark.parametrize("source", sorted(SOURCE_INPUTS))
@pytest.mark.parametrize(
    ("reason", "inputs_extra", "filters"),
    [
        ("hidden", {"hidden": frozenset({"x"})}, Filters()),
        ("hidden", {"hidden": frozenset({"x"})}, Filters(exclude_purchased=False)),
        ("purchased", {"purchased": frozenset({"x"})}, Filters()),
        ("purchased", {"recent": [RecentEvent("x", "purchase", 5.0)]}, Filters()),
        ("recent", {"recent": [RecentEvent("x", "view", 5.0)]}, Filters(exclude_recent=True)),
        ("exclude", {}, Filters(exclude=frozenset({"x"}))),
        ("category", {}, Filters(category="hats")),
    ],
)
def test_each_filter_drops_from_each_source(source, reason, inputs_extra, filters):
    inputs = _one_source(source, "x", **inputs_extra)
    recs = blend(inputs, weights=W, filters=filters, k=10)
    assert "x" not in ids(recs)
    assert recs.filtered[reason] >= 1
    if reason != "category":  # 'keep' is a shoe too
        assert "keep" in ids(recs)


@pytest.mark.parametrize("source", sorted(SOURCE_INPUTS))
def test_unavailable_is_dropped_from_each_source(source):
    recs = blend(_one_source(source, "gone"), weights=W, filters=NO_FILTERS, k=10)
    assert "gone" not in ids(recs) and "keep" in ids(recs)
    assert recs.filtered["unavailable"] == 1


@pytest.mark.parametrize("source", sorted(SOURCE_INPUTS))
def test_bought_items_come_back_when_exclude_purchased_is_off(source):
    inputs = _one_source(
        source,
        "x",
        purchased=frozenset({"x"}),
        recent=[RecentEvent("keep", "purchase", 5.0)],
    )
    dropped = blend(inputs, weights=W, filters=Filters(), k=10)
    assert not {"x", "keep"} & set(ids(dropped)) and dropped.filtered["purchased"] == 2
    again = blend(inputs, weights=W, filters=Filters(exclude_purchased=False), k=10)
    assert {"x", "keep"} <= set(ids(again)) and again.filtered["purchased"] == 0


def test_recent_items_stay_unless_exclude_recent():
    inputs = _one_source("popular", "x", recent=[RecentEvent("x", "add_to_cart", 5.0)])
    assert "x" in ids(blend(inputs, weights=W, filters=NO_FILTERS, k=10))
    recs = blend(inputs, weights=W, filters=Filters(exclude_recent=True), k=10)
    assert ids(recs) == ["keep"] and recs.filtered["recent"] == 1


def test_hidden_items_are_never_returned_nor_anchors():
    inputs = Inputs(
        als=[("shoe", 1.0), ("hat", 0.9)],
        recent=[RecentEvent("boot", "view", 9.0), RecentEvent("shoe", "view", 8.0)],
        neighbours={("co_view", "boot"): [("lace", 1.0)], ("co_view", "shoe"): [("sock", 1.0)]},
        trending=[("shoe", 1.0)],
        popular=[("shoe", 1.0), ("heel", 0.5)],
        catalog=CATALOG,
        hidden=frozenset({"shoe", "boot"}),
    )
    for filters in (NO_FILTERS, Filters(exclude_purchased=False), Filters(category="shoes")):
        recs = blend(inputs, weights=W, filters=filters, k=50)
        assert not {"shoe", "boot"} & set(ids(recs))
    recs = blend(inputs, weights=W, filters=NO_FILTERS, k=50)
    # a hidden item drives nothing: neither boot's nor shoe's neighbours are candidates
    assert not {"lace", "sock"} & set(ids(recs))
    assert ids(recs) == ["hat", "heel"]
    assert recs.filtered["hidden"] == 1  # shoe: one candidate, however many sources
    assert anchors(inputs.recent, 5, hidden=inputs.hidden) == []


def test_remove_from_cart_and_negative_feedback_are_not_anchors():
    recent = [
        RecentEvent("boot", "remove_from_cart", 9.0),
        RecentEvent("hat", "hide", 8.5),
        RecentEvent("sock", "dislike", 8.2),
        RecentEvent("boot", "add_to_cart", 8.0),  # older than its removal: boot is no anchor
        RecentEvent("shoe", "view", 7.0),
    ]
    assert [a.item_id for a in anchors(recent, 5)] == ["shoe"]
    # the types come from the caller (the API: Settings.non_anchor_event_types())
    assert [a.item_id for a in anchors(recent, 5, not_anchor_types=())] == [
        "boot",
        "hat",
        "sock",
        "shoe",
    ]
    inputs = Inputs(
        recent=recent,
        neighbours={
            ("co_view", "boot"): [("lace", 1.0)],
            ("co_view", "shoe"): [("heel", 1.0)],
        },
        catalog=CATALOG,
    )
    recs = blend(inputs, weights=W, filters=NO_FILTERS, k=10)
    assert [(r.item_id, r.reason) for r in recs] == [("heel", "because you viewed Red shoe")]
    custom = blend(inputs, weights=W, filters=NO_FILTERS, k=10, not_anchor_types={"hide"})
    assert "lace" in ids(custom)  # remove_from_cart anchors again when the caller says so


def test_settings_derive_the_non_anchor_types():
    from recolake.settings import Settings

    settings = Settings(event_weights={"view": 1.0, "wishlist": 0.0, "purchase": 5.0})
    assert settings.non_anchor_event_types() == {"wishlist", "hide", "dislike"}
    assert settings.event_weights["hide"] == 0.0  # negative types are accepted event types
    with pytest.raises(ValueError, match="negative_event_types must weigh 0"):
        Settings(event_weights={"view": 1.0, "hide": 2.0})


def test_zero_weighted_fallbacks_still_fill_a_cold_visitors_list():
    """Validation may weigh popular/trending 0 (it scores known users only); a visitor with
    nothing else must still get k items: popular first, then trending, after every
    weighted candidate."""
    only_als = Weights(als=1.0, neighbours=0, content=0, trending=0, popular=0, affinity=0)
    popular = [("p1", 9.0), ("p2", 8.0), ("p3", 7.0)]
    trending = [("t1", 5.0), ("p2", 4.0)]
    cold = blend(
        Inputs(popular=popular, trending=trending), weights=only_als, filters=Filters(), k=4
    )
    assert [(r.item_id, r.source) for r in cold] == [
        ("p1", "popular"),
        ("p2", "popular"),
        ("p3", "popular"),
        ("t1", "trending"),
    ]
    known = blend(
        Inputs(als=[("a1", 1.0)], popular=popular), weights=only_als, filters=Filters(), k=2
    )
    assert [r.item_id for r in known] == ["a1", "p1"]  # weighted first, fallback after
