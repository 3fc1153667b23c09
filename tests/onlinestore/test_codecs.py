"""Codecs of the online store: round trips and sizes (no services needed)."""

from __future__ import annotations

import json

import pytest

from recolake.onlinestore import codecs
from recolake.onlinestore.codecs import encode_item_info
from recolake.onlinestore.values import decode_item_info
from recolake.ranking import ItemInfo


def test_compact_list_keeps_order_and_scores_to_a_255th_of_the_range():
    positions = [70_000, 3, 65_535, 12, 1_000_000]
    scores = [0.91, 0.5, 0.5, 0.2, -0.1]
    payload = codecs.encode_ranked_positions(positions, scores, codecs.index_width(2_000_000))
    decoded = codecs.decode_ranked_positions(payload)
    assert [p for p, _ in decoded] == positions
    span = max(scores) - min(scores)
    for (_, got), want in zip(decoded, scores, strict=True):
        assert abs(got - want) <= span / 255 / 2 + 1e-6


def test_compact_list_of_fifty_items_is_small():
    payload = codecs.encode_ranked_positions(list(range(50)), [1 - i / 50 for i in range(50)], 3)
    json_payload = codecs.encode_items([(f"item-{i:06d}", 1 - i / 50) for i in range(50)])
    assert len(payload) == 9 + 50 * 4
    assert len(payload) < len(json_payload) / 3


def test_index_width_grows_with_the_index():
    assert codecs.index_width(10) == 2
    assert codecs.index_width(65_536) == 2
    assert codecs.index_width(65_537) == 3
    assert codecs.index_width(1 << 24) == 3
    assert codecs.index_width((1 << 24) + 1) == 4


def test_equal_scores_and_empty_lists():
    assert codecs.decode_ranked_positions(codecs.encode_ranked_positions([], [], 2)) == []
    decoded = codecs.decode_ranked_positions(codecs.encode_ranked_positions([5, 6], [0.3, 0.3], 2))
    assert decoded == [(5, pytest.approx(0.3)), (6, pytest.approx(0.3))]


def test_a_truncated_value_is_an_error_not_a_shorter_list():
    payload = codecs.encode_ranked_positions([1, 2, 3], [3.0, 2.0, 1.0], 2)
    with pytest.raises(ValueError):
        codecs.decode_ranked_positions(payload[:-1])


def test_purchased_positions_and_hidden_sets_round_trip():
    from recolake.onlinestore.codecs import (
        decode_hidden,
        decode_positions,
        encode_hidden,
        encode_positions,
    )

    for width in (2, 3, 4):
        payload = encode_positions([70_000 % (1 << (8 * width)), 5, 5, 0], width)
        assert len(payload) == 1 + 3 * width  # one width byte, each item once
        assert decode_positions(payload) == sorted({70_000 % (1 << (8 * width)), 5, 0})
    assert decode_positions(None) == [] and decode_positions(b"") == []
    with pytest.raises(ValueError, match="inconsistent"):
        decode_positions(b"\x02\x01")
    hidden = [("SKU/ü", 2.5), ("i1", 1.0)]
    assert decode_hidden(encode_hidden(hidden)) == hidden
    assert decode_hidden(None) == []
    with pytest.raises(ValueError, match="malformed hidden"):
        decode_hidden('[["i1"]]')


def test_profile_round_trip_rounds_and_refuses_other_shapes():
    profile = {f: None for f in codecs.PROFILE_FIELDS} | {
        "ds": "2024-05-10",
        "frequency": 2,
        "monetary": 35.004,
        "segment": "champions",
        "top_categories": [("home", 0.800004), ("kitchen", 0.2)],
        "top_brands": [],
        "preferred_hours": [10, 15],
    }
    payload = codecs.encode_profile(profile)
    decoded = codecs.decode_profile(payload)
    assert decoded is not None and list(decoded) == list(codecs.PROFILE_FIELDS)
    assert decoded["monetary"] == 35.0 and decoded["preferred_hours"] == [10, 15]
    assert decoded["top_categories"] == [["home", 0.8], ["kitchen", 0.2]]
    assert codecs.decode_profile(None) is None
    with pytest.raises(ValueError, match="unknown \\['extra'\\]"):
        codecs.encode_profile(profile | {"extra": 1})
    with pytest.raises(ValueError, match="missing \\['ds'\\]"):
        codecs.encode_profile({k: v for k, v in profile.items() if k != "ds"})
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.decode_profile(payload.replace('"v":1', '"v":2'))


def test_catalog_entries_carry_a_price_and_older_ones_decode_without():
    """Publications before prices wrote entries without one: they still decode (price
    None); a non-finite or non-numeric price is dropped, never the entry."""
    encoded = encode_item_info("Lamp", "home", True, 24.5)
    assert json.loads(encoded) == {
        "title": "Lamp",
        "category": "home",
        "available": True,
        "price": 24.5,
    }
    assert decode_item_info(encoded) == ItemInfo("Lamp", "home", True, 24.5)
    assert decode_item_info('{"title":"T","category":"C","available":false}') == ItemInfo(
        "T", "C", False, None
    )
    assert "price" not in json.loads(encode_item_info("T", None, True, float("nan")))
    assert decode_item_info('{"title":"T","price":"9.95"}').price is None
    assert decode_item_info('{"title":"T","price":true}').price is None
    assert decode_item_info('{"title":"T","price":0}').price == 0.0
