"""GET /v1/items/{item_id}/similar and /bought-together against a real Redis publish."""

from __future__ import annotations

import httpx
import pytest

from recolake.onlinestore import KeyLayout
from recolake.onlinestore.batch import BatchWriter
from tests.conftest import make_settings

pytestmark = pytest.mark.redis


@pytest.fixture
def published(redis_client, redis_server, tmp_path):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    layout = KeyLayout(settings.redis_namespace)
    writer = BatchWriter(url=redis_server.url, layout=layout, version="v1", buckets=4)
    writer.write_catalog(
        [
            ("shoe", "Red shoe", "shoes", True),
            ("boot", "Boot", "shoes", True),
            ("heel", "Heel", "shoes", True),
            ("sock", "Wool sock", "socks", True),
            ("gone", "Sold out", "shoes", False),
            ("lonely", "No neighbours", "misc", True),
        ]
    )
    writer.write_neighbours(
        [
            ("content", "shoe", [("boot", 0.9), ("gone", 0.8), ("heel", 0.5)]),
            ("co_view", "shoe", [("sock", 4.0), ("boot", 2.0)]),
            ("bought_together", "shoe", [("sock", 0.7), ("heel", 0.2)]),
        ]
    )
    writer.go_live(
        client=redis_client,
        popular=[("shoe", 1.0)],
        meta={"model_version": "1"},
        grace_seconds=5,
    )
    return settings


def test_similar_merges_content_and_co_view_with_reasons(published, api_server_factory):
    api = api_server_factory(published)
    body = httpx.get(f"{api.url}/v1/items/shoe/similar", params={"k": 5}).json()
    assert body["item_id"] == "shoe" and body["kind"] == "similar"
    items = [(i["item_id"], i["source"]) for i in body["items"]]
    # boot: content (rank 1 of 3: 0.5) + co_view (rank 2 of 2: 0.4) sums highest and is
    # labelled by its larger share; 'gone' is unavailable
    assert items[0] == ("boot", "content")
    assert {i for i, _ in items} == {"boot", "sock", "heel"}
    reasons = {i["item_id"]: i["reason"] for i in body["items"]}
    assert reasons["heel"] == "similar to Red shoe"
    assert reasons["sock"] == "viewed together with Red shoe"
    capped = httpx.get(f"{api.url}/v1/items/shoe/similar", params={"k": 1}).json()
    assert [i["item_id"] for i in capped["items"]] == ["boot"]


def test_bought_together(published, api_server_factory):
    api = api_server_factory(published)
    body = httpx.get(f"{api.url}/v1/items/shoe/bought-together").json()
    assert [(i["item_id"], i["reason"]) for i in body["items"]] == [
        ("sock", "bought together with Red shoe"),
        ("heel", "bought together with Red shoe"),
    ]
    excluded = httpx.get(f"{api.url}/v1/items/shoe/bought-together?exclude=sock").json()
    assert [i["item_id"] for i in excluded["items"]] == ["heel"]


def test_known_item_without_neighbours_is_empty_unknown_is_404(published, api_server_factory):
    api = api_server_factory(published)
    lonely = httpx.get(f"{api.url}/v1/items/lonely/similar")
    assert lonely.status_code == 200 and lonely.json()["items"] == []
    missing = httpx.get(f"{api.url}/v1/items/nope/bought-together")
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    assert httpx.get(f"{api.url}/v1/items/shoe/similar?k=0").status_code == 422
