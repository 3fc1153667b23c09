"""PUT /v1/items[/{item_id}]: the live catalog, against a real Redis and a real event log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from recolake.onlinestore import KeyLayout, session_subject, user_subject
from recolake.onlinestore.batch import BatchWriter
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY, make_settings
from tests.online.conftest import publish_sample

pytestmark = pytest.mark.redis

AUTH = {"Authorization": "Bearer w-tok"}
ALICE = user_subject(pseudonymise("alice", TEST_KEY.encode()))


@pytest.fixture
def published(redis_client, redis_server, tmp_path):
    settings = make_settings(
        tmp_path, redis_url=redis_server.url, api_token=SecretStr("w-tok"), events_max_batch=3
    )
    publish_sample(redis_server.url, settings)
    return settings


def set_recent(client, subject, *events):
    """What the streaming job writes (KeyLayout.recent of a prefixed subject)."""
    doc = [{"item_id": i, "event_type": t, "ts": 100.0 - n} for n, (i, t) in enumerate(events)]
    client.set(KeyLayout("recolake").recent(subject), json.dumps(doc))


def logged_items(settings) -> list[dict]:
    """The item records in the event log (the landing directory's JSON lines)."""
    records = []
    for path in sorted(Path(settings.landing_dir).glob("events-*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("record") == "item":
                records.append(record)
    return records


def put(api, item_id, **body):
    return httpx.put(f"{api.url}/v1/items/{item_id}", json=body, headers=AUTH)


def test_unavailable_item_leaves_every_source_from_the_next_request(
    published, api_server_factory, redis_client
):
    """i2 (alice's ALS list), boot (a co_view neighbour of shoe) and p2 (popular) are served,
    then marked unavailable through another API process: the next answers of this one, whose
    caches hold them as available, never return them (it sees the overlay's version move in
    its own pipeline); the updates are in the event log before the 200."""
    api = api_server_factory(published)
    reads = api_server_factory(published)  # another process: only Redis tells it
    set_recent(redis_client, ALICE, ("shoe", "view"))
    url = f"{reads.url}/v1/recommendations/alice"
    before = {i["item_id"] for i in httpx.get(url, params={"k": 20}).json()["items"]}
    similar = f"{reads.url}/v1/items/shoe/similar"
    assert {"i2", "boot", "p2"} <= before
    assert "boot" in {i["item_id"] for i in httpx.get(similar).json()["items"]}

    one = put(api, "i2", title="Rug", category="home", available=False)
    assert one.status_code == 200, one.text
    batch = httpx.put(
        f"{api.url}/v1/items",
        json=[
            {"item_id": "boot", "title": "Boot", "category": "shoes", "available": False},
            {"item_id": "p2", "title": "Pan", "available": False, "attributes": {"size": "L"}},
        ],
        headers=AUTH,
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["catalog_version"] > one.json()["catalog_version"]

    after = {i["item_id"] for i in httpx.get(url, params={"k": 20}).json()["items"]}
    assert not after & {"i2", "boot", "p2"}
    assert after  # the rest is still served
    assert "boot" not in {i["item_id"] for i in httpx.get(similar).json()["items"]}
    logged = {r["item_id"]: r for r in logged_items(published)}
    assert set(logged) == {"i2", "boot", "p2"}
    assert logged["p2"]["available"] == "false"
    assert json.loads(logged["p2"]["attributes"]) == {"size": "L"}

    back = put(api, "boot", title="Boot", category="shoes", available=True)
    assert back.status_code == 200
    again = {i["item_id"] for i in httpx.get(url, params={"k": 20}).json()["items"]}
    assert "boot" in again


def test_title_change_shows_in_reasons_and_a_new_item_is_known(
    published, api_server_factory, redis_client
):
    api = api_server_factory(published)
    set_recent(redis_client, ALICE, ("shoe", "view"))
    url = f"{api.url}/v1/recommendations/alice"
    reasons = {i["item_id"]: i["reason"] for i in httpx.get(url).json()["items"]}
    assert reasons["boot"] == "because you viewed Red shoe"  # cached by the API process now
    assert put(api, "shoe", title="Crimson sneaker", category="shoes", brand="Acme").is_success
    reasons = {i["item_id"]: i["reason"] for i in httpx.get(url).json()["items"]}
    assert reasons["boot"] == "because you viewed Crimson sneaker"
    similar = httpx.get(f"{api.url}/v1/items/shoe/similar").json()
    assert {i["reason"] for i in similar["items"]} <= {
        "similar to Crimson sneaker",
        "viewed together with Crimson sneaker",
    }
    # an item no publication knows: 404 before, known (no neighbours yet) after its PUT
    assert httpx.get(f"{api.url}/v1/items/brand-new/similar").status_code == 404
    assert put(api, "brand-new", title="Brand new boot", price=59.9).is_success
    assert httpx.get(f"{api.url}/v1/items/brand-new/similar").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},  # no title
        {"title": "  "},
        {"title": "x" * 513},
        {"title": "T", "price": -1},
        {"title": "T", "available": "no"},
        {"title": "T", "attributes": {f"k{i}": "v" for i in range(33)}},
        {"title": "T", "attributes": {"k": "v" * 257}},
        {"title": "T", "attributes": {"k": 1}},
        {"title": "T", "colour": "red"},  # unknown field
    ],
)
def test_bad_bodies_are_422_and_change_nothing(published, api_server_factory, body):
    api = api_server_factory(published)
    assert put(api, "shoe", **body).status_code == 422
    assert logged_items(published) == []


def test_writes_need_the_write_token_and_batches_are_bounded(published, api_server_factory):
    api = api_server_factory(published)
    body = {"title": "T"}
    assert httpx.put(f"{api.url}/v1/items/shoe", json=body).status_code == 401
    wrong = httpx.put(f"{api.url}/v1/items/shoe", json=body, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 403
    four = [{"item_id": f"n{i}", "title": "T"} for i in range(4)]  # events_max_batch is 3
    assert httpx.put(f"{api.url}/v1/items", json=four, headers=AUTH).status_code == 422
    assert httpx.put(f"{api.url}/v1/items", json=[], headers=AUTH).status_code == 422
    assert logged_items(published) == []
    assert httpx.put(f"{api.url}/v1/items", json=four[:3], headers=AUTH).status_code == 200
    assert {r["item_id"] for r in logged_items(published)} == {"n0", "n1", "n2"}


def test_a_new_item_has_content_neighbours_right_after_its_put(
    published, api_server_factory, redis_server, redis_client
):
    """The publication carries the content model's terms; a PUT of an item no publication
    knows scores its text against them: its similar list and a cold-start visitor who viewed
    it get neighbours at once, named after its title."""
    layout = KeyLayout(published.redis_namespace)
    writer = BatchWriter(url=redis_server.url, layout=layout, version="v7", buckets=4)
    writer.write_content_terms(  # as gold.item_content_terms holds them (unit-vector weights)
        [
            ("red", 1.2, [("shoe", 0.6)]),
            ("boot", 1.5, [("boot", 0.9)]),
            ("cat_shoes", 0.4, [("boot", 0.3), ("shoe", 0.3), ("gone", 0.3)]),
            ("brand_acme", 2.0, [("sock", 0.8)]),
        ]
    )
    api = api_server_factory(published)
    unknown = put(api, "trail-boot-9", title="Tasty apple")  # no word the model knows
    assert unknown.json()["items"][0]["content_neighbours"] == 0

    body = {"title": "Red boot", "category": "shoes", "brand": "Acme"}
    answer = put(api, "red-boot", **body)
    assert answer.status_code == 200 and answer.json()["items"][0]["content_neighbours"] == 4
    similar = httpx.get(f"{api.url}/v1/items/red-boot/similar", params={"k": 10}).json()
    got = [(i["item_id"], i["source"], i["reason"]) for i in similar["items"]]
    assert {i for i, _, _ in got} == {"boot", "shoe", "sock"}  # "gone" is unavailable
    assert all(s == "content" and r == "similar to Red boot" for _, s, r in got)

    visitor = "s-cold"
    set_recent(redis_client, session_subject(visitor, TEST_KEY.encode()), ("red-boot", "view"))
    recs = httpx.get(f"{api.url}/v1/recommendations", params={"session_id": visitor}).json()
    reasons = {i["item_id"]: i["reason"] for i in recs["items"] if i["source"] == "content"}
    assert reasons.get("boot") == "because you viewed Red boot"


def test_an_item_id_with_a_slash_goes_through_the_batch_form(published, api_server_factory):
    """Shop ids hold slashes (SKU-00042/b): no path segment carries one (a documented 404,
    which schemathesis checks), the batch form takes it."""
    api = api_server_factory(published)
    by_path = httpx.put(
        f"{api.url}/v1/items/SKU-00042%2Fb", json={"title": "Slashed sock"}, headers=AUTH
    )
    assert by_path.status_code == 404
    done = httpx.put(
        f"{api.url}/v1/items",
        json=[{"item_id": "SKU-00042/b", "title": "Slashed sock"}],
        headers=AUTH,
    )
    assert done.status_code == 200, done.text
    assert [i["item_id"] for i in logged_items(published)][-1:] == ["SKU-00042/b"]
