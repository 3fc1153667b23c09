"""The evaluation replays the merchandising rules as the API applies them (at the cut)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from models.served import replay, state_at_cut
from recolake.rules import RulesDocument, parse
from tests.models.test_served import WEIGHTS, split_of, world

pytestmark = pytest.mark.spark


def test_replay_applies_the_rules_live_at_the_cut(spark, settings):
    events, als, neighbours, catalog = world(spark)
    split = split_of(spark, events, [("u1", "n4"), ("u2", "a")], ["u1", "u2"])
    state = state_at_cut(split, settings, als=als, neighbours=neighbours, catalog=catalog, k=5)
    plain = [
        r.item_id for r in replay(state, WEIGHTS).where("user_key = 'u1'").orderBy("rank").collect()
    ]
    last = plain[-1]
    cut = state.cutoff if state.cutoff.tzinfo else state.cutoff.replace(tzinfo=UTC)
    window = {
        "start": (cut - timedelta(days=1)).isoformat(),
        "end": (cut + timedelta(days=1)).isoformat(),
    }
    over = {
        "start": (cut - timedelta(days=3)).isoformat(),
        "end": (cut - timedelta(days=2)).isoformat(),
    }

    def top(*rules: dict) -> list[str]:
        doc = RulesDocument(parse({"rules": list(rules)})[0], version=1)
        rows = replay(state, WEIGHTS, doc).where("user_key = 'u1'").orderBy("rank").collect()
        return [r.item_id for r in rows]

    assert top({"id": "p", "action": "pin", "items": [last], "position": 1, **window})[0] == last
    assert top({"id": "p", "action": "pin", "items": [last], "position": 1, **over}) == plain
    # a rule scoped to item pages does not touch the recommendations
    assert top({"id": "s", "action": "pin", "items": [last], "scope": "similar"}) == plain
