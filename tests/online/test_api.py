"""The HTTP API, served by uvicorn against a real Redis."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from online.routers.recommendations import recommend
from online.store import RecommendationStore, connect
from recolake import publication
from recolake.privacy import pseudonymise, session_subject
from recolake.redis_layout import RedisLayout
from tests.conftest import TEST_KEY, free_port, make_settings

pytestmark = pytest.mark.redis


@pytest.fixture
def published(redis_client, redis_server, tmp_path):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    layout = RedisLayout(settings.redis_namespace)
    alice = pseudonymise("alice", TEST_KEY.encode())
    publication.write_user_lists(
        [(alice, [("i1", 0.9), ("i2", 0.8), ("p1", 0.7)])],
        url=redis_server.url,
        layout=layout,
        version="v7",
        buckets=settings.redis_buckets,
    )
    publication.write_catalog(
        [
            ("i1", "Lamp", "home", True),
            ("i2", "Rug", "home", True),
            ("p1", "Mug", "kitchen", True),
            ("p2", "Pan", "kitchen", True),
            ("p3", "Cup", "kitchen", True),
            ("shoe", "Red shoe", "shoes", True),
            ("boot", "Boot", "shoes", True),
            ("sock", "Wool sock", "socks", True),
            ("gone", "Sold out", "shoes", False),
            ("new", "Brand new shoe", "shoes", True),
        ],
        url=redis_server.url,
        layout=layout,
        version="v7",
        buckets=settings.redis_buckets,
    )
    publication.write_neighbours(
        [
            ("co_view", "shoe", [("boot", 0.9), ("gone", 0.8)]),
            ("bought_together", "shoe", [("sock", 0.7)]),
            ("content", "shoe", [("new", 0.6)]),
        ],
        url=redis_server.url,
        layout=layout,
        version="v7",
        buckets=settings.redis_buckets,
    )
    publication.go_live(
        redis_client,
        layout=layout,
        version="v7",
        buckets=settings.redis_buckets,
        popular=[("p1", 30.0), ("p2", 20.0), ("p3", 10.0)],
        meta={"model_version": "7"},
        grace_seconds=5,
    )
    return settings


def test_known_user_gets_als_then_popular_without_repeats(published, api_server_factory):
    api = api_server_factory(published)
    body = httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": 5}).json()
    assert body["user_id"] == "alice"
    assert body["model_version"] == "7"
    assert body["publication"] == "v7" and body["recent"] == []
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [
        ("i1", "als"),
        ("i2", "als"),
        ("p1", "als"),
        ("p2", "popular"),
        ("p3", "popular"),
    ]
    assert body["items"][0]["reason"] == "recommended for you"
    assert body["items"][3]["reason"] == "popular in kitchen"


def set_recent(client, subject, *events):
    """What the streaming job writes (recolake.redis_layout.RedisLayout.recent)."""
    doc = [{"item_id": i, "event_type": t, "ts": 100.0 - n} for n, (i, t) in enumerate(events)]
    client.set(RedisLayout("recolake").recent(subject), json.dumps(doc))


def test_recent_view_changes_recommendations_with_reasons(
    published, api_server_factory, redis_client
):
    api = api_server_factory(published)
    before = httpx.get(f"{api.url}/v1/recommendations/alice").json()
    set_recent(redis_client, pseudonymise("alice", TEST_KEY.encode()), ("shoe", "view"))
    body = httpx.get(f"{api.url}/v1/recommendations/alice").json()
    assert body["recent"] == ["shoe"]
    got = {i["item_id"]: i for i in body["items"]}
    assert got["boot"]["source"] == "co_view"
    assert got["boot"]["reason"] == "because you viewed Red shoe"
    assert got["sock"]["reason"] == "bought together with Red shoe"
    assert got["new"]["source"] == "content"  # a cold item, reachable only by content
    assert "gone" not in got  # unavailable in the published catalog
    assert body["items"] != before["items"]


def test_anonymous_session_cold_start(published, api_server_factory, redis_client):
    api = api_server_factory(published)
    nothing = httpx.get(f"{api.url}/v1/recommendations", params={"session_id": "s1", "k": 3})
    assert nothing.status_code == 200
    body = nothing.json()
    assert body["user_id"] is None and body["session_id"] == "s1"
    assert [i["source"] for i in body["items"]] == ["popular"] * 3

    redis_client.set(RedisLayout("recolake").trending, json.dumps([["p3", 5.0]]))
    trending = httpx.get(f"{api.url}/v1/recommendations", params={"session_id": "s1"}).json()
    assert (trending["items"][0]["item_id"], trending["items"][0]["reason"]) == (
        "p3",
        "trending now",
    )

    set_recent(redis_client, session_subject("s1", TEST_KEY.encode()), ("shoe", "add_to_cart"))
    body = httpx.get(f"{api.url}/v1/recommendations", params={"session_id": "s1"}).json()
    assert body["recent"] == ["shoe"]
    assert body["items"][0]["item_id"] in {"boot", "sock"}
    reasons = {i["item_id"]: i["reason"] for i in body["items"]}
    assert reasons["boot"] == "because you added Red shoe to your cart"
    # the same session alongside a known user: both histories count
    both = httpx.get(f"{api.url}/v1/recommendations/alice", params={"session_id": "s1"}).json()
    assert both["recent"] == ["shoe"] and both["items"][0]["source"] == "als"


def test_filters_exclude_category_and_recent_purchase(published, api_server_factory, redis_client):
    api = api_server_factory(published)
    set_recent(redis_client, pseudonymise("alice", TEST_KEY.encode()), ("i2", "purchase"))
    body = httpx.get(
        f"{api.url}/v1/recommendations/alice", params=[("exclude", "i1,p2"), ("exclude", "p3")]
    ).json()
    got = [i["item_id"] for i in body["items"]]
    assert not {"i1", "i2", "p2", "p3"} & set(got)  # excluded, or bought a minute ago
    assert got[0] == "p1"
    kitchen = httpx.get(f"{api.url}/v1/recommendations/alice", params={"category": "kitchen"})
    assert [i["item_id"] for i in kitchen.json()["items"]] == ["p1", "p2", "p3"]


def test_diversity_caps_items_per_category(redis_server, published, api_server_factory):
    api = api_server_factory(published.model_copy(update={"max_per_category": 1}))
    body = httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": 5}).json()
    # i1, i2 are both 'home', p1..p3 'kitchen': one of each
    assert [i["item_id"] for i in body["items"]] == ["i1", "p1"]


def test_visitor_route_needs_an_id(published, api_server_factory):
    api = api_server_factory(published)
    response = httpx.get(f"{api.url}/v1/recommendations")
    assert response.status_code == 422
    assert "session_id" in response.json()["detail"]


def test_unknown_user_gets_popular(published, api_server_factory):
    api = api_server_factory(published)
    body = httpx.get(f"{api.url}/v1/recommendations/stranger?k=2").json()
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [
        ("p1", "popular"),
        ("p2", "popular"),
    ]


@pytest.mark.parametrize("k", ["0", "101", "ten"])
def test_k_is_validated(published, api_server_factory, k):
    api = api_server_factory(published)
    response = httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": k})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]


def test_nothing_published_is_503_with_reason(
    redis_client, redis_server, tmp_path, api_server_factory
):
    api = api_server_factory(make_settings(tmp_path, redis_url=redis_server.url))
    response = httpx.get(f"{api.url}/v1/recommendations/alice")
    assert response.status_code == 503
    assert "published" in response.json()["detail"]


def test_healthz_reflects_redis(published, api_server_factory, tmp_path):
    api = api_server_factory(published)
    ok = httpx.get(f"{api.url}/healthz")
    assert ok.status_code == 200 and ok.json()["publication"] == "v7"

    dead = make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    down = httpx.get(f"{api_server_factory(dead).url}/healthz")
    assert down.status_code == 503 and down.json()["redis"] is False


def test_openapi_docs_served(published, api_server_factory):
    api = api_server_factory(published)
    assert httpx.get(f"{api.url}/docs").status_code == 200
    paths = httpx.get(f"{api.url}/openapi.json").json()["paths"]
    assert "/v1/recommendations/{user_id}" in paths
    assert "/v1/recommendations" in paths
    assert "/v1/items/{item_id}/similar" in paths
    assert "/v1/items/{item_id}/bought-together" in paths


def test_one_round_trip_per_request_once_warm(published, redis_server, redis_client):
    """Round trips counted on a real Redis: after the first request of a version, the
    catalog and neighbour lists come from the process cache and the live pointer is cached."""

    async def run() -> list[int]:
        client = connect(redis_server.url)
        trips = []
        original = client.pipeline

        def counting_pipeline(*args, **kwargs):
            trips.append(1)
            return original(*args, **kwargs)

        client.pipeline = counting_pipeline  # type: ignore[method-assign]
        store = RecommendationStore(client, RedisLayout("recolake"))
        counts = []
        for _ in range(3):
            before = len(trips)
            await recommend(
                store,
                published,
                user_id="alice",
                session_id=None,
                k=5,
                exclude=None,
                category=None,
            )
            counts.append(len(trips) - before)
        await client.aclose()
        return counts

    set_recent(redis_client, pseudonymise("alice", TEST_KEY.encode()), ("shoe", "view"))
    counts = asyncio.run(run())
    assert counts[0] >= 2  # lists, then catalog + neighbours of "shoe"
    assert counts[1:] == [1, 1]
