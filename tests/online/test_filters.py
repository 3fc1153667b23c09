"""Filters on every source and negative feedback, through the HTTP API against a real Redis:
a compact (codec 2) publication with a purchased set written by the publish job's
BatchWriter, the recent lists and hidden sets written by the streaming job's StreamWriter."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from online.services.recommend import RecommendQuery, recommend
from recolake.onlinestore import KeyLayout, session_subject, user_subject
from recolake.onlinestore import stream as st
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import index_width
from recolake.onlinestore.reader import Reader
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY, make_settings
from tests.online.conftest import CATALOG
from tests.online.test_api import CountingConnection, server_calls

pytestmark = pytest.mark.redis

KEY = TEST_KEY.encode()
ALICE_KEY = pseudonymise("alice", KEY)
ALICE = user_subject(ALICE_KEY)
SESSION = session_subject("s1", KEY)
NOW = 1_800_000_000.0
INDEX = [item for item, *_ in CATALOG]  # the publication's item index: position = list index


def publish_compact(url: str, settings, bought: list[str]) -> None:
    """alice's ALS list (i1, i2, p1) and purchased set ``bought`` as item-index positions,
    the sample catalog, neighbours of "shoe", popular p1..p3; live."""
    layout = KeyLayout(settings.redis_namespace)
    writer = BatchWriter(url=url, layout=layout, version="c1", buckets=settings.redis_buckets)
    blocks = writer.write_item_index(INDEX)
    width = index_width(len(INDEX))
    als = [("i1", 0.9), ("i2", 0.8), ("p1", 0.7)]
    writer.write_user_positions(
        [(ALICE_KEY, [INDEX.index(i) for i, _ in als], [s for _, s in als])], width
    )
    assert writer.write_user_purchased([(ALICE_KEY, [INDEX.index(i) for i in bought])], width)
    writer.write_catalog(CATALOG)
    writer.write_neighbours(
        [
            ("co_view", "shoe", [("boot", 0.9), ("gone", 0.8)]),
            ("bought_together", "shoe", [("sock", 0.7)]),
            ("content", "shoe", [("new", 0.6)]),
        ]
    )
    writer.go_live(
        popular=[("p1", 30.0), ("p2", 20.0), ("p3", 10.0)],
        meta={"model_version": "8", "ds": "2026-01-02"},
        grace_seconds=5,
        index_blocks=blocks,
        index_width=width,
    )


def stream(client, settings, batch_id: int, *events: tuple[str, str, str, str | None]) -> None:
    """Events (event id, item, type, session id or None) of alice through the streaming
    job's writer, as features.streaming.realtime_events fans them out."""
    writer = st.StreamWriter.from_settings(client, settings)
    rows = []
    for n, (event_id, item, kind, session) in enumerate(events):
        for subject in (ALICE, SESSION if session else None):
            if subject is None:
                continue
            rows.append(
                {
                    st.SUBJECT: subject,
                    st.PRIMARY: ALICE,
                    st.EVENT_ID: event_id,
                    st.ITEM_ID: item,
                    st.EVENT_TYPE: kind,
                    st.TS: NOW - 100 + batch_id * 10 + n,
                    st.WEIGHT: settings.event_weights[kind],
                }
            )
    writer.write_batch("q", batch_id, rows, NOW)


@pytest.fixture
def compact(redis_client, redis_server, tmp_path):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    publish_compact(redis_server.url, settings, bought=["i2", "p2", "boot"])
    return settings


def items_of(api, params=None, user="alice") -> tuple[list[str], dict]:
    body = httpx.get(f"{api.url}/v1/recommendations/{user}", params=params or {}).json()
    return [i["item_id"] for i in body["items"]], body


def test_published_purchases_are_dropped_from_every_source_unless_asked(
    compact, api_server_factory, redis_client
):
    api = api_server_factory(compact)
    # shoe viewed: its neighbours (boot) are candidates; i2 comes from ALS, p2 from popular
    stream(redis_client, compact, 0, ("e1", "shoe", "view", None))
    got, body = items_of(api, {"k": 20})
    assert not {"i2", "p2", "boot"} & set(got)
    assert {"i1", "p1", "sock", "new"} <= set(got)
    assert body["short"]["filtered"]["purchased"] == 3
    back, body = items_of(api, {"k": 20, "exclude_purchased": "false"})
    assert {"i2", "p2", "boot"} <= set(back)
    assert "purchased" not in body["short"]["filtered"]
    # a real-time purchase counts too, and comes back the same way
    stream(redis_client, compact, 1, ("e2", "p3", "purchase", None))
    assert "p3" not in items_of(api, {"k": 20})[0]
    assert "p3" in items_of(api, {"k": 20, "exclude_purchased": "false"})[0]


def test_groceries_default_keeps_purchases(compact, api_server_factory):
    api = api_server_factory(compact.model_copy(update={"exclude_purchased_default": False}))
    assert {"i2", "p2"} <= set(items_of(api, {"k": 20})[0])
    assert not {"i2", "p2"} & set(items_of(api, {"k": 20, "exclude_purchased": "true"})[0])


def test_exclude_recent_drops_the_just_viewed_items(compact, api_server_factory, redis_client):
    api = api_server_factory(compact)
    stream(redis_client, compact, 0, ("e1", "p1", "view", "s1"), ("e2", "i1", "add_to_cart", None))
    assert {"p1", "i1"} <= set(items_of(api, {"k": 20})[0])  # off by default
    got, body = items_of(api, {"k": 20, "exclude_recent": "true"})
    assert not {"p1", "i1"} & set(got) and got  # ALS's p1 and popular's p1 alike
    assert body["short"]["filtered"]["recent"] == 2
    # the anonymous session's recent list alone
    session = httpx.get(
        f"{api.url}/v1/recommendations",
        params={"session_id": "s1", "exclude_recent": "true", "k": 20},
    ).json()
    assert "p1" not in [i["item_id"] for i in session["items"]]
    assert "p2" in [i["item_id"] for i in session["items"]]  # a stranger's purchases: none


def test_a_hide_removes_the_item_from_the_next_answer(compact, api_server_factory, redis_client):
    api = api_server_factory(compact)
    stream(redis_client, compact, 0, ("e1", "shoe", "view", "s1"))
    before, _ = items_of(api, {"k": 20})
    assert {"p1", "sock"} <= set(before)
    # p1 comes from ALS and popular; sock from shoe's bought_together list
    stream(redis_client, compact, 1, ("e2", "p1", "hide", "s1"), ("e3", "sock", "dislike", None))
    after, body = items_of(api, {"k": 20})
    assert not {"p1", "sock"} & set(after)
    assert body["short"]["filtered"]["hidden"] == 2
    # whatever else the request says
    for params in ({"exclude_purchased": "false"}, {"category": "kitchen"}):
        assert "p1" not in items_of(api, {"k": 20, **params})[0]
    # the session was hidden p1 too (the event fanned out); a stranger still gets it
    session = httpx.get(f"{api.url}/v1/recommendations", params={"session_id": "s1"}).json()
    assert "p1" not in [i["item_id"] for i in session["items"]]
    assert "p1" in items_of(api, user="stranger")[0]
    # and the hide is not a recent anchor nor an event of the recent list
    assert body["recent"] == ["shoe"]


def test_remove_from_cart_is_not_an_anchor(compact, api_server_factory, redis_client):
    api = api_server_factory(compact)
    stream(redis_client, compact, 0, ("e1", "shoe", "add_to_cart", None))
    got, body = items_of(api, {"k": 20})
    assert body["recent"] == ["shoe"] and "sock" in got  # bought together with shoe
    stream(redis_client, compact, 1, ("e2", "shoe", "remove_from_cart", None))
    got, body = items_of(api, {"k": 20})
    assert body["recent"] == []
    assert not {"boot", "sock", "new"} & set(got)  # shoe's neighbours: no anchor, no reason
    reasons = httpx.get(f"{api.url}/v1/recommendations/alice").json()["items"]
    assert not any("Red shoe" in i["reason"] for i in reasons)


def test_the_filter_params_are_documented_and_scalar(compact, api_server_factory):
    api = api_server_factory(compact)
    spec = httpx.get(f"{api.url}/openapi.json").json()
    for path in ("/v1/recommendations/{user_id}", "/v1/recommendations"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        for name in ("exclude_purchased", "exclude_recent"):
            assert params[name]["in"] == "query" and params[name]["description"], (path, name)
    filtered = spec["components"]["schemas"]["Filtered"]["properties"]
    assert {"hidden", "purchased", "recent"} <= set(filtered)
    twice = httpx.get(
        f"{api.url}/v1/recommendations/alice",
        params=[("exclude_recent", "true"), ("exclude_recent", "false")],
    )
    assert twice.status_code == 422
    bad = httpx.get(f"{api.url}/v1/recommendations/alice", params={"exclude_purchased": "maybe"})
    assert bad.status_code == 422


def test_purchased_set_and_hidden_set_ride_the_snapshots_round_trip(
    compact, redis_server, redis_client
):
    """Once warm, one request is still one round trip: the purchased set (HGET) and the
    hidden set (GET) are read in the snapshot's pipeline."""
    stream(redis_client, compact, 0, ("e1", "shoe", "view", None), ("e2", "p1", "hide", None))

    async def run() -> list[tuple[int, list[str], int, list[str]]]:
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_server.url,
            connection_class=CountingConnection,
            decode_responses=True,
            encoding_errors="surrogateescape",  # binary compact lists (client.connect)
        )
        client = aioredis.Redis(connection_pool=pool)
        await client.ping()
        reader = Reader(client, KeyLayout("recolake"))
        out = []
        for _ in range(3):
            CountingConnection.commands.clear()
            CountingConnection.writes.clear()
            redis_client.config_resetstat()
            body = await recommend(reader, compact, RecommendQuery("alice", None, 10))
            items = [i["item_id"] for i in body["items"]]
            out.append(
                (
                    len(CountingConnection.writes),
                    list(CountingConnection.commands),
                    server_calls(redis_client) - 1,
                    items,
                )
            )
        await client.aclose()
        return out

    counts = asyncio.run(run())
    for writes, commands, server, items in counts[1:]:
        assert writes == 1
        assert sorted(commands).count("HGET") == 2  # the ALS list and the purchased set
        assert server == len(commands)
        assert not {"p1", "i2", "p2", "boot"} & set(items)  # hidden, bought: every source
