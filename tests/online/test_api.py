"""The HTTP API, served by uvicorn against a real Redis."""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from online.services.recommend import RecommendQuery, recommend
from recolake.onlinestore import KeyLayout as RedisLayout
from recolake.onlinestore import session_subject, user_subject
from recolake.onlinestore.reader import Reader
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY, free_port, make_settings
from tests.online.conftest import publish_sample

pytestmark = pytest.mark.redis


@pytest.fixture
def published(redis_client, redis_server, tmp_path):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    publish_sample(redis_server.url, settings)
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


ALICE = user_subject(pseudonymise("alice", TEST_KEY.encode()))


def set_recent(client, subject, *events):
    """What the streaming job writes (KeyLayout.recent of a prefixed subject)."""
    doc = [{"item_id": i, "event_type": t, "ts": 100.0 - n} for n, (i, t) in enumerate(events)]
    client.set(RedisLayout("recolake").recent(subject), json.dumps(doc))


def test_recent_view_changes_recommendations_with_reasons(
    published, api_server_factory, redis_client
):
    api = api_server_factory(published)
    before = httpx.get(f"{api.url}/v1/recommendations/alice").json()
    set_recent(redis_client, ALICE, ("shoe", "view"))
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
    set_recent(redis_client, ALICE, ("i2", "purchase"))
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


def test_visitor_route_without_ids_gets_the_cold_start_list(
    published, api_server_factory, redis_client
):
    api = api_server_factory(published)
    redis_client.set(RedisLayout("recolake").trending, json.dumps([["p3", 5.0]]))
    body = httpx.get(f"{api.url}/v1/recommendations", params={"k": 3}).json()
    assert body["user_id"] is None and body["session_id"] is None and body["recent"] == []
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [
        ("p3", "trending"),
        ("p1", "popular"),
        ("p2", "popular"),
    ]


def test_a_repeated_scalar_parameter_is_422(published, api_server_factory):
    api = api_server_factory(published)
    response = httpx.get(
        f"{api.url}/v1/recommendations/alice", params=[("category", "home"), ("category", "x")]
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "query parameter 'category' given more than once"}
    # exclude is the list parameter: repeating it is the documented way
    ok = httpx.get(f"{api.url}/v1/items/shoe/similar", params=[("exclude", "a"), ("exclude", "b")])
    assert ok.status_code == 200


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


class CountingConnection(aioredis.Connection):
    """Counts, on the client side, every command packed and every write to the socket (one
    write = one round trip: a pipeline is packed and sent at once)."""

    commands: ClassVar[list[str]] = []  # pack_commands (pipelines) packs through pack_command
    writes: ClassVar[list[int]] = []

    def pack_command(self, *args):
        CountingConnection.commands.append(str(args[0]).upper())
        return super().pack_command(*args)

    async def send_packed_command(self, command, check_health=True):
        CountingConnection.writes.append(1)
        return await super().send_packed_command(command, check_health)


def server_calls(client) -> int:
    """Commands the server executed (INFO commandstats), the INFO itself excluded."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def test_one_round_trip_per_request_once_warm(published, redis_server, redis_client):
    """Every command counted on a real Redis, on both sides (a client-side counter on the
    connection, the server's commandstats): after the first request of a version, one request
    is one round trip (catalog and neighbour lists come from the process cache, the live
    pointer is cached), and nothing is sent outside it."""
    set_recent(redis_client, ALICE, ("shoe", "view"))

    async def run() -> list[tuple[int, list[str], int]]:
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_server.url, connection_class=CountingConnection, decode_responses=True
        )
        client = aioredis.Redis(connection_pool=pool)
        await client.ping()  # the connection's own handshake is not a request's
        reader = Reader(client, RedisLayout("recolake"))
        query = RecommendQuery("alice", None, 5)
        out = []
        for _ in range(3):
            CountingConnection.commands.clear()
            CountingConnection.writes.clear()
            redis_client.config_resetstat()
            await recommend(reader, published, query)
            out.append(
                (
                    len(CountingConnection.writes),
                    list(CountingConnection.commands),
                    server_calls(redis_client) - 1,  # the CONFIG RESETSTAT itself
                )
            )
        await client.aclose()
        return out

    counts = asyncio.run(run())
    first_writes, first_commands, first_server = counts[0]
    assert first_writes >= 2  # lists, then catalog + neighbours of "shoe"
    assert first_server == len(first_commands)
    for writes, commands, server in counts[1:]:
        assert writes == 1
        # the ALS list, trending, the live catalog's version (PUT /v1/items), recent +
        # affinity + hidden set of the user's subject: one pipeline (a codec-1 publication
        # has no purchased sets: test_filters.py counts the compact one's)
        assert sorted(commands) == ["GET", "GET", "GET", "GET", "GET", "HGET"]
        assert server == len(commands)  # the server saw nothing the counter missed


def test_short_list_says_why(published, api_server_factory, redis_client):
    """An empty or short answer is never silent: the counts of what each filter dropped."""
    api = api_server_factory(published)
    full = httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": 3}).json()
    assert len(full["items"]) == 3 and "short" not in full

    # alice's candidates: i1, i2, p1 (ALS) + p2, p3 (popular) = 5 distinct items
    many = httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": 20}).json()
    assert len(many["items"]) == 5
    assert many["short"] == {"reason": "few_candidates", "candidates": 5, "filtered": {}}

    set_recent(redis_client, ALICE, ("p3", "purchase"))
    body = httpx.get(
        f"{api.url}/v1/recommendations/alice",
        params={"k": 4, "exclude": "i1", "category": "kitchen"},
    ).json()
    # p3 bought a moment ago; i1 excluded; i2 not kitchen; p1, p2 kept
    assert [i["item_id"] for i in body["items"]] == ["p1", "p2"]
    assert body["short"]["reason"] == "filtered"
    assert body["short"]["filtered"] == {"exclude": 1, "purchased": 1, "category": 1}

    similar = httpx.get(f"{api.url}/v1/items/shoe/similar", params={"k": 5}).json()
    assert {i["item_id"] for i in similar["items"]} == {"boot", "new"}
    assert similar["short"]["filtered"] == {"unavailable": 1}  # "gone"


@pytest.fixture
def guarded_api(published, api_server_factory):
    settings = published.model_copy(
        update={"api_read_token": SecretStr("r-tok"), "api_token": SecretStr("w-tok")}
    )
    return api_server_factory(settings)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/recommendations/alice",
        "/v1/recommendations?session_id=s1",
        "/v1/items/shoe/similar",
        "/v1/items/shoe/bought-together",
        "/v1/users/alice/profile",
    ],
)
def test_read_token_guards_every_read(guarded_api, path):
    url = f"{guarded_api.url}{path}"
    missing = httpx.get(url)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "bearer" in missing.json()["detail"]
    assert httpx.get(url, headers={"Authorization": "Basic r-tok"}).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "invalid token"
    for token in ("r-tok", "w-tok"):  # the read token, or the write token
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # liveness stays open (load balancers probe it without credentials)
    assert httpx.get(f"{guarded_api.url}/healthz").status_code == 200


@pytest.mark.parametrize("read_token", [None, ""])  # unset, or RECOLAKE_API_READ_TOKEN=""
def test_reads_open_without_a_read_token(published, api_server_factory, read_token):
    update = {"api_token": SecretStr("w-tok"), "api_read_token": read_token}
    if read_token is not None:
        update["api_read_token"] = SecretStr(read_token)
    api = api_server_factory(published.model_copy(update=update))
    assert httpx.get(f"{api.url}/v1/recommendations/alice").status_code == 200
    # a wrong token on an open read is not an error either (nothing to check it against)
    headers = {"Authorization": "Bearer whatever"}
    assert httpx.get(f"{api.url}/v1/items/shoe/similar", headers=headers).status_code == 200


def test_every_read_status_is_documented_with_error_response(published, api_server_factory):
    api = api_server_factory(published)
    spec = httpx.get(f"{api.url}/openapi.json").json()
    error_ref = "#/components/schemas/ErrorResponse"
    checked = 0
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/") or path == "/v1/events":
            continue
        for method, op in ops.items():
            responses = op["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert len(success) == 1, (method, path, sorted(responses))
            # every route answers these, each with the ErrorResponse body; 503 says when
            assert {"401", "403", "422", "503"} <= set(responses), (method, path)
            for code in set(responses) - set(success):
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (method, path, code)
            assert "Retry-After" in responses["503"]["headers"], (method, path)
            if method == "get" and "/items/" in path:
                assert "404" in responses, path  # an unknown item
            checked += 1
    assert checked >= 8  # recommendations, items, users, rules, catalog, dashboard...
    # and a real 422 has that shape: detail = [{loc, msg, type}]
    bad = httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": "ten"}).json()
    assert set(bad) == {"detail"} and set(bad["detail"][0]) == {"loc", "msg", "type"}


def test_profile_of_a_published_user_and_404_for_others(published, api_server_factory):
    api = api_server_factory(published)
    body = httpx.get(f"{api.url}/v1/users/alice/profile").json()
    assert body["publication"] == "v7" and body["segment"] == "champions"
    assert body["top_categories"] == [
        {"category": "home", "share": 0.6},
        {"category": "kitchen", "share": 0.4},
    ]
    unknown = httpx.get(f"{api.url}/v1/users/bob/profile")
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("user 'bob' has no profile in the live publication")
