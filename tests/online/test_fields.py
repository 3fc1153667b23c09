"""?fields= on the recommendation and item-page routes: catalog fields on every item, from the
publication the list was served from, against a real API over real Redis."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import make_settings
from tests.online.conftest import CATALOG, publish_sample

pytestmark = pytest.mark.redis

TITLES = {item: (title, category, available) for item, title, category, available in CATALOG}


@pytest.fixture
def api(redis_client, redis_server, tmp_path, api_server_factory):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
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


def test_an_unknown_field_is_a_422_naming_the_known_ones(api):
    answer = httpx.get(f"{api.url}/v1/recommendations/alice", params={"fields": "title,price"})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", "fields"] and "category" in error["msg"]
    spec = httpx.get(f"{api.url}/openapi.json").json()
    params = spec["paths"]["/v1/items/{item_id}/similar"]["get"]["parameters"]
    assert "title" in next(p for p in params if p["name"] == "fields")["description"]
