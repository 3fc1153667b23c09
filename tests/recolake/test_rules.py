"""Merchandising rules (recolake/rules.py) applied by THE ranker: pure, no Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from recolake import rules as R
from recolake.ranking import Filters, Inputs, ItemInfo, Weights, blend, similar

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CATALOG = {
    "a": ItemInfo("A", "toys"),
    "b": ItemInfo("B", "toys"),
    "c": ItemInfo("C", "books"),
    "d": ItemInfo("D", "books"),
    "e": ItemInfo("E", "garden"),
    "gone": ItemInfo("Gone", "garden", available=False),
    "promo": ItemInfo("Promo", "garden"),
}
POPULAR = [("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0), ("e", 1.0)]


def doc(*rules: dict, author: str | None = None) -> R.RulesDocument:
    parsed, _ = R.parse({"rules": list(rules)})
    return R.RulesDocument(parsed, version=1, author=author)


NO_FILTERS = Filters()


def ranked(rules_doc=None, *, filters=NO_FILTERS, k=5, scope="recommendations", at=NOW):
    active = rules_doc.active(scope, at) if rules_doc is not None else None
    inputs = Inputs(popular=POPULAR, catalog=CATALOG)
    return blend(inputs, weights=Weights(), filters=filters, k=k, rules=active)


def ids(out) -> list[str]:
    return [r.item_id for r in out]


def test_without_rules_the_ranking_is_unchanged():
    assert ids(ranked()) == ["a", "b", "c", "d", "e"]
    assert ids(ranked(doc())) == ["a", "b", "c", "d", "e"]


def test_boost_lifts_with_reason_promoted_and_bury_sinks():
    out = ranked(doc({"id": "x", "action": "boost", "items": ["d"], "factor": 10}))
    assert ids(out)[0] == "d" and out[0].reason == R.PROMOTED and out[0].source == "popular"
    assert all(r.reason != R.PROMOTED for r in out[1:])
    out = ranked(doc({"id": "y", "action": "bury", "categories": ["toys"], "factor": 0.01}))
    assert ids(out) == ["c", "d", "e", "a", "b"]
    assert all(r.reason != R.PROMOTED for r in out)  # buried items are not "promoted"


def test_category_boost_and_matching_rules_multiply():
    active = doc(
        {"id": "1", "action": "boost", "categories": ["books"], "factor": 2},
        {"id": "2", "action": "boost", "items": ["c"], "factor": 3},
    ).active("recommendations", NOW)
    assert active.factor("c", "books") == 6
    assert active.factor("d", "books") == 2
    assert active.factor("a", "toys") is None


def test_pin_puts_items_at_their_positions_even_if_not_proposed():
    out = ranked(doc({"id": "p", "action": "pin", "items": ["promo", "c"], "position": 2}))
    assert ids(out) == ["a", "promo", "c", "b", "d"]
    assert out[1].source == "promoted" and out[1].reason == R.PROMOTED
    assert out[2].reason == R.PROMOTED
    # a position past the end of a short list: last
    out = ranked(doc({"id": "p", "action": "pin", "items": ["promo"], "position": 50}), k=3)
    assert ids(out) == ["a", "b", "promo"]


def test_filters_win_over_pins_and_boosts():
    rules = doc(
        {"id": "p", "action": "pin", "items": ["gone", "e"], "position": 1},
        {"id": "b", "action": "boost", "items": ["a"], "factor": 50},
    )
    out = ranked(rules, filters=Filters(exclude=frozenset({"a", "e"})))
    assert "gone" not in ids(out) and "a" not in ids(out) and "e" not in ids(out)
    assert out.filtered["unavailable"] == 1 and out.filtered["exclude"] == 2
    out = ranked(
        doc({"id": "p", "action": "pin", "items": ["c"]}), filters=Filters(category="toys")
    )
    assert ids(out) == ["a", "b"] and out.filtered["category"] >= 1


def test_time_window_in_and_out():
    window = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00+00:00"}
    rules = doc({"id": "w", "action": "pin", "items": ["e"], **window})
    assert ids(ranked(rules))[0] == "e"
    assert ids(ranked(rules, at=datetime(2026, 12, 3, tzinfo=UTC)))[0] == "a"  # end excluded
    assert ids(ranked(rules, at=datetime(2026, 11, 30, tzinfo=UTC)))[0] == "a"


def test_scope_limits_a_rule_to_one_endpoint():
    rules = doc({"id": "s", "action": "pin", "items": ["e"], "scope": "similar"})
    assert ids(ranked(rules, scope="recommendations"))[0] == "a"
    lists = {"co_view": [("b", 1.0), ("c", 0.5), ("e", 0.1)]}
    out = similar(
        "a",
        lists,
        weights={"co_view": 1.0},
        catalog=CATALOG,
        filters=Filters(),
        k=3,
        rules=rules.active("similar", NOW),
    )
    assert ids(out) == ["e", "b", "c"] and out[0].reason == R.PROMOTED
    # an item is never pinned onto its own page
    own = doc({"id": "o", "action": "pin", "items": ["a"]}).active("similar", NOW)
    out = similar("a", lists, weights={}, catalog=CATALOG, filters=Filters(), k=3, rules=own)
    assert "a" not in ids(out)


def test_pins_of_two_rules_do_not_take_the_same_position():
    active = doc(
        {"id": "1", "action": "pin", "items": ["c"], "position": 1},
        {"id": "2", "action": "pin", "items": ["d"], "position": 1},
    ).active("all", NOW)
    assert active.pins == ((0, "c"), (1, "d"))


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"id": "x", "action": "shout", "items": ["a"]}, "action"),
        ({"id": "x", "action": "boost"}, "categories"),
        ({"id": "x", "action": "boost", "items": ["a"], "factor": 0.5}, "factor"),
        ({"id": "x", "action": "bury", "items": ["a"], "factor": 2}, "factor"),
        ({"id": "x", "action": "pin", "items": ["a"], "position": 0}, "position"),
        ({"id": "x", "action": "pin", "categories": ["toys"]}, "pin names items"),
        ({"id": "x", "action": "boost", "items": ["a"], "scope": "home"}, "scope"),
        ({"id": "x", "action": "boost", "items": ["a"], "start": "2026-12-01"}, "UTC offset"),
        (
            {
                "id": "x",
                "action": "boost",
                "items": ["a"],
                "start": "2026-12-02T00:00:00Z",
                "end": "2026-12-01T00:00:00Z",
            },
            "after start",
        ),
        ({"id": "x", "action": "boost", "items": ["a"], "colour": "red"}, "unknown keys"),
        (
            {"id": "x", "action": "boost", "items": ["a"], "end": "0001-01-01T00:00:00+01:00"},
            "out of range",
        ),
    ],
)
def test_invalid_rules_are_rejected_with_reasons(rule, where):
    with pytest.raises(R.RulesError) as err:
        R.parse({"rules": [rule]})
    assert where in str(err.value) and err.value.errors


def test_sizes_are_bounded_and_ids_unique():
    many = [{"id": str(i), "action": "boost", "items": ["a"]} for i in range(R.MAX_RULES + 1)]
    with pytest.raises(R.RulesError, match="at most"):
        R.parse({"rules": many})
    twice = [{"id": "x", "action": "boost", "items": ["a"]}] * 2
    with pytest.raises(R.RulesError, match="unique"):
        R.parse({"rules": twice})


def test_a_document_round_trips_and_files_load(tmp_path):
    rules = [
        {
            "id": "w",
            "action": "boost",
            "categories": ["toys"],
            "factor": 3.0,
            "start": "2026-12-01T00:00:00Z",
            "scope": "all",
        },
        {"id": "p", "action": "pin", "items": ["x", "y"], "position": 2, "scope": "similar"},
    ]
    parsed, author = R.parse({"rules": rules, "author": "merch"})
    assert author == "merch"
    assert [r.as_dict() for r in parsed] == rules
    (tmp_path / "r.json").write_text(json.dumps({"rules": rules}))
    assert R.load(tmp_path / "r.json")[0] == parsed
    (tmp_path / "r.toml").write_text(
        '[[rules]]\nid = "w"\naction = "boost"\ncategories = ["toys"]\nfactor = 3.0\n'
        "start = 2026-12-01T00:00:00Z\n"
    )
    assert R.load(tmp_path / "r.toml")[0][0] == parsed[0]
    with pytest.raises(R.RulesError):
        R.load(tmp_path / "missing.json")
