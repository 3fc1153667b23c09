"""?fields= on the recommendation and item-page routes: catalog fields on every item, from the
publication the list was served from (or the live catalog a PUT changed since), against a
real API over real Redis."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import make_settings
from tests.online.conftest import CATALOG, PRICES, publish_sample

pytestmark = pytest.mark.redis

WRITE = {"Authorization": "Bearer w-tok"}

TITLES = {item: (title, category, available) for item, title, category, available in CATALOG}


@pytest.fixture
def api(redis_client, redis_server, tmp_path, api_server_factory):
    settings = make_settings(tmp_path, redis_url=redis_server.url, api_token=SecretStr("w-tok"))
    publish_sample(redis_server.url, settings)
    return api_server_factory(settings)


def test_fields_add_catalog_entries_to_every_item(api):
    plain = httpx.get(f"{api.url}/v1/recommendations/alice").json()
    assert plain["items"] and all("title" not in i for i in plain["items"])

    body = httpx.get(f"{api.url}/v1/recommendations/alice", params={"fields": "title,category"})
    items = body.json()["items"]
    assert [i["item_id"] for i in items] == [i["item_id"] for i in plain["items"]]
    for item in items:
        title, category, _ = TITLES[item["item_id"]]
        assert (item["title"], item["category"]) == (title, category)
        assert "available" not in item

    visitor = httpx.get(f"{api.url}/v1/recommendations", params={"fields": "title"}).json()
    assert [i["title"] for i in visitor["items"]][:3] == ["Mug", "Pan", "Cup"]

    similar = httpx.get(
        f"{api.url}/v1/items/shoe/similar", params={"fields": "title, available"}
    ).json()["items"]
    assert similar and all(
        (i["title"], i["available"]) == (TITLES[i["item_id"]][0], True) for i in similar
    )
    together = httpx.get(
        f"{api.url}/v1/items/shoe/bought-together", params={"fields": "category"}
    ).json()["items"]
    assert [(i["item_id"], i["category"]) for i in together] == [("sock", "socks")]


def test_price_is_served_and_a_put_changes_it_from_the_next_request(api):
    """Published prices flow through (publish -> Redis -> ?fields=price and /v1/catalog);
    an item the catalog has no price for says null; PUT /v1/items' new price is served
    next, as the demo's `fields=title,category,price` shows it."""
    url = f"{api.url}/v1/recommendations/alice"
    body = httpx.get(url, params={"fields": "title,category,price"})
    assert body.status_code == 200, body.text
    items = body.json()["items"]
    assert items and all(i["price"] == PRICES[i["item_id"]] for i in items)
    assert {i["item_id"] for i in items} >= {"i1", "i2"}
    catalog = httpx.get(f"{api.url}/v1/catalog", params={"ids": "i1,gone,nope"}).json()
    assert catalog["items"] == {
        "i1": {"title": "Lamp", "category": "home", "available": True, "price": 24.5},
        "gone": {"title": "Sold out", "category": "shoes", "available": False, "price": None},
        "nope": None,
    }

    put = httpx.put(
        f"{api.url}/v1/items/i1",
        json={"title": "Lamp", "category": "home", "price": 19.0},
        headers=WRITE,
    )
    assert put.status_code == 200, put.text
    again = httpx.get(url, params={"fields": "price"}).json()["items"]
    assert {i["item_id"]: i["price"] for i in again}["i1"] == 19.0
    assert (
        httpx.get(f"{api.url}/v1/catalog", params={"ids": "i1"}).json()["items"]["i1"]["price"]
        == 19.0
    )


def test_an_unknown_field_is_a_422_naming_the_known_ones(api):
    answer = httpx.get(f"{api.url}/v1/recommendations/alice", params={"fields": "title,colour"})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", "fields"] and "price" in error["msg"]
    spec = httpx.get(f"{api.url}/openapi.json").json()
    for path in ("/v1/items/{item_id}/similar", "/v1/recommendations/{user_id}"):
        params = spec["paths"][path]["get"]["parameters"]
        described = next(p for p in params if p["name"] == "fields")["description"]
        assert "title" in described and "price" in described
    item = spec["components"]["schemas"]["RecommendedItem"]["properties"]
    assert "fields=price" in item["price"]["description"]
