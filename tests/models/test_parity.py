"""Serve what is measured: the offline replay (models/served.py, inside Spark) and the live API
return the same items in the same order for the same users, given the same publication (lists,
neighbours, catalog, popular, non-default weights) and the same recent events (views,
carts, purchases, removals from the cart, hides), which reach Redis through the streaming
job's own writer. If either side drifts (a filter, a weight, how
recent/affinity are rebuilt, the candidate depth), this test fails."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

import httpx
import pytest
import redis as redis_lib

from features import columns as c
from models.evaluation import EvalSplit
from models.served import replay, state_at_cut
from recolake.onlinestore import KeyLayout, user_subject
from recolake.onlinestore import stream as st
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.client import connect
from recolake.privacy import pseudonymise
from recolake.ranking import Weights
from tests.conftest import TEST_KEY, make_settings

pytestmark = [pytest.mark.spark, pytest.mark.redis]

KEY = TEST_KEY.encode()
K = 10
CATEGORIES = ["shoes", "hats", "bags", "socks"]
WEIGHTS = Weights(als=0.7, neighbours=1.1, content=0.4, trending=0.3, popular=0.25, affinity=0.5)


def shop(seed: int = 11):
    """Items, per-user lists, neighbour lists of every kind, popular, recent events."""
    rng = random.Random(seed)
    items = [f"item-{i:02d}" for i in range(40)]
    catalog = [(i, f"Title {i}", CATEGORIES[n % 4], n % 13 != 5) for n, i in enumerate(items)]
    users = [f"user-{u}" for u in range(8)]
    lists = {u: rng.sample(items, 25) for u in users[:6]}  # two users without a list
    neighbours = [
        (kind, item, rng.sample([x for x in items if x != item], 8))
        for kind in ("co_view", "bought_together", "content")
        for item in items
        if rng.random() < 0.7
    ]
    popular = [(i, float(100 - n)) for n, i in enumerate(rng.sample(items, 20))]
    now = time.time()
    events = []
    for u in users:
        for n in range(rng.randint(2, 9)):
            kind = rng.choice(
                ["view", "view", "view", "add_to_cart", "purchase", "remove_from_cart", "hide"]
            )
            events.append((u, f"{u}-e{n}", rng.choice(items), kind, now - 600 + 30 * n))
    return catalog, lists, neighbours, popular, events, now


def test_offline_replay_equals_the_live_api(
    spark, tmp_path, redis_server, redis_client, api_server_factory
):
    """(``redis_client`` empties the session's Redis first: rules, catalog overlays or
    trending left by other tests would reach the API's answers but not the replay.)"""
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    catalog, lists, neighbours, popular, events, now = shop()
    layout = KeyLayout(settings.redis_namespace)
    key_of = {u: pseudonymise(u, KEY) for u in {e[0] for e in events} | set(lists)}

    # --- the live side: a publication, and the events through the streaming job's writer
    writer = BatchWriter(
        url=redis_server.url, layout=layout, version="p1", buckets=settings.redis_buckets
    )
    writer.write_user_lists(
        (key_of[u], [(i, 1.0 - r / 100) for r, i in enumerate(items)]) for u, items in lists.items()
    )
    writer.write_catalog(catalog)
    writer.write_neighbours(
        (kind, item, [(n, 1.0 - r / 10) for r, n in enumerate(nbrs)])
        for kind, item, nbrs in neighbours
    )
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    writer.go_live(
        client=client,
        popular=popular,
        meta={"model_version": "1"},
        grace_seconds=5,
        weights=WEIGHTS,
    )
    categories = {i: cat for i, _, cat, _ in catalog}
    rows = [
        {
            st.SUBJECT: user_subject(key_of[u]),
            st.PRIMARY: user_subject(key_of[u]),
            st.EVENT_ID: eid,
            st.ITEM_ID: item,
            st.EVENT_TYPE: kind,
            st.TS: ts,
            st.WEIGHT: settings.event_weights[kind],
        }
        for u, eid, item, kind, ts in events
    ]
    stream_client = connect(redis_server.url)
    st.StreamWriter.from_settings(stream_client, settings).write_batch(
        "parity", 0, rows, now, categories
    )
    trending = [(str(i), float(s)) for i, s in json.loads(client.get(layout.trending) or "[]")]

    api = api_server_factory(settings)
    users = sorted(key_of)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        live = {}
        for u in users:
            body = http.get(f"/v1/recommendations/{u}", params={"k": K}).json()
            assert body["weights_source"] == "publication", body
            live[key_of[u]] = [(i["item_id"], i["source"]) for i in body["items"]]

    # --- the offline side: the same state as lake frames, replayed in Spark
    cut = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    event_frame = spark.createDataFrame(
        [
            (key_of[u], eid, item, kind, datetime.fromtimestamp(ts, UTC).replace(tzinfo=None))
            for u, eid, item, kind, ts in events
        ],
        f"{c.USER_KEY} string, {c.EVENT_ID} string, {c.ITEM_ID} string, "
        f"{c.EVENT_TYPE} string, {c.EVENT_TIME} timestamp",
    )
    user_frame = spark.createDataFrame([(key_of[u],) for u in users], f"{c.USER_KEY} string")
    als = spark.createDataFrame(
        [
            (key_of[u], i, 1.0 - r / 100, r + 1)
            for u, items in lists.items()
            for r, i in enumerate(items)
        ],
        f"{c.USER_KEY} string, {c.ITEM_ID} string, {c.SCORE} double, {c.RANK} int",
    )
    nbr = spark.createDataFrame(
        [
            (kind, item, n, 1.0 - r / 10, r + 1)
            for kind, item, nbrs in neighbours
            for r, n in enumerate(nbrs)
        ],
        f"{c.KIND} string, {c.ITEM_ID} string, {c.NEIGHBOUR_ID} string, {c.SCORE} double, "
        f"{c.RANK} int",
    )
    catalog_frame = spark.createDataFrame(
        catalog, f"{c.ITEM_ID} string, {c.TITLE} string, {c.CATEGORY} string, {c.AVAILABLE} boolean"
    )
    split = EvalSplit(
        train_events=event_frame,
        train_strength=event_frame.limit(0),
        truth=user_frame.limit(0),
        users=user_frame,
        history=event_frame.limit(0),
        cutoff=cut,
        end=cut,
    )
    from recolake.ranking import ItemInfo

    entries = {i: ItemInfo(t, cat, a) for i, t, cat, a in catalog}
    shared = (trending, popular, {i: entries[i] for i, _ in trending + popular})
    state = state_at_cut(
        split, settings, als=als, neighbours=nbr, catalog=catalog_frame, k=K, shared=shared
    )
    offline: dict[str, list] = {}
    for r in replay(state, WEIGHTS).orderBy(c.USER_KEY, c.RANK).collect():
        offline.setdefault(r[c.USER_KEY], []).append((r[c.ITEM_ID], r[c.SOURCE]))

    assert set(offline) == set(live)
    for user_key in live:
        assert offline[user_key] == live[user_key], user_key
    # the comparison is not vacuous: full lists, several sources, and the weights matter
    assert all(len(v) == K for v in live.values())
    assert len({s for v in live.values() for _, s in v}) >= 3
    default = {}
    for r in replay(state, Weights()).orderBy(c.USER_KEY, c.RANK).collect():
        default.setdefault(r[c.USER_KEY], []).append((r[c.ITEM_ID], r[c.SOURCE]))
    assert default != offline
    client.close()
    stream_client.close()
