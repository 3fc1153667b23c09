"""The HTTP API, served by uvicorn against a real Redis."""

from __future__ import annotations

import httpx
import pytest

from recolake import publication
from recolake.privacy import pseudonymise
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
    assert [(i["item_id"], i["source"]) for i in body["items"]] == [
        ("i1", "als"),
        ("i2", "als"),
        ("p1", "als"),
        ("p2", "popular"),
        ("p3", "popular"),
    ]


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
