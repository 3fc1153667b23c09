"""GET/PUT /v1/rules against a real Redis and real uvicorn processes."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import make_settings
from tests.online.conftest import publish_sample

pytestmark = pytest.mark.redis

TOKEN = "rules-write-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def items_of(api, path="/v1/recommendations/alice", **params):
    body = httpx.get(f"{api.url}{path}", params={"k": 5, **params}).json()
    return [(i["item_id"], i["reason"]) for i in body["items"]]


def until(check, seconds=1.0):
    """What ``check`` returns once it is truthy, polling for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_put_rules_changes_every_process_within_a_second(
    tmp_path, redis_server, redis_client, api_server_factory
):
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(
        json.dumps({"rules": [{"id": "f", "action": "bury", "items": ["i1"], "factor": 0}]})
    )
    settings = make_settings(
        tmp_path, redis_server.url, api_token=TOKEN, rules_file=str(rules_file)
    )
    publish_sample(redis_server.url, settings)
    one, two = api_server_factory(settings), api_server_factory(settings)
    # the file was loaded once (version 1), and is served: i1 sinks to the bottom
    start = httpx.get(f"{one.url}/v1/rules").json()
    assert start["version"] == 1 and start["author"] == f"file:{rules_file}"
    assert items_of(one)[0][0] == "i2"

    body = {
        "rules": [
            {"id": "hero", "action": "pin", "items": ["sock", "gone"], "position": 1},
            {"id": "kitchen", "action": "boost", "categories": ["kitchen"], "factor": 50},
        ]
    }
    assert httpx.put(f"{one.url}/v1/rules", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.put(f"{one.url}/v1/rules", json=body, headers=wrong).status_code == 403
    assert httpx.get(f"{one.url}/v1/rules").json()["version"] == 1  # nothing stored

    put = httpx.put(f"{one.url}/v1/rules", json=body, headers=AUTH)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 2 and put.json()["author"].startswith("token:")
    assert TOKEN not in put.text

    def promoted(api):
        got = items_of(api)
        return got if got and got[0] == ("sock", "promoted") else None

    for api in (one, two):  # the writer and another process, within a second
        got = until(lambda api=api: promoted(api))
        assert got, items_of(api)
        assert "gone" not in [i for i, _ in got]  # a pinned unavailable item: filters win
        assert [i for i, _ in got][1:4] == ["p1", "p2", "p3"]  # kitchen boosted over i1, i2
        assert all(reason == "promoted" for _, reason in got[:4])
    # a pin scoped to all lists shows on item pages too
    assert items_of(two, "/v1/items/shoe/similar")[0] == ("sock", "promoted")

    named = httpx.put(f"{two.url}/v1/rules", json={"rules": [], "author": "merch"}, headers=AUTH)
    assert named.json()["version"] == 3 and named.json()["author"] == "merch"
    assert until(lambda: items_of(one)[0][0] == "i1")  # no rules any more
    current = httpx.get(f"{one.url}/v1/rules").json()
    assert (current["version"], current["author"], current["rules"]) == (3, "merch", [])
    assert current["updated_at"].endswith("Z")
    old = httpx.get(f"{one.url}/v1/rules", params={"version": 2}).json()
    assert old["version"] == 2 and [r["id"] for r in old["rules"]] == ["hero", "kitchen"]
    assert httpx.get(f"{one.url}/v1/rules", params={"version": 9}).status_code == 404

    # a restart does not put the file back over a PUT
    three = api_server_factory(settings)
    assert httpx.get(f"{three.url}/v1/rules").json()["version"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"rules": [{"id": "x", "action": "boost", "items": ["a"], "factor": 0.5}]},
        {"rules": [{"id": "x", "action": "shout", "items": ["a"]}]},
        {"rules": [{"id": "x", "action": "boost"}]},
        {"rules": [{"id": "x", "action": "boost", "items": ["a"], "start": "tomorrow"}]},
        {"rules": [{"id": "x", "action": "boost", "items": ["a"], "colour": 1}]},
        {"rules": [{"id": "x", "action": "boost", "items": ["a"]}] * 2},
        {"nope": []},
    ],
)
def test_bad_bodies_are_422_with_reasons(body, tmp_path, redis_server, redis_client, request):
    api = request.getfixturevalue("api_server_factory")(
        make_settings(tmp_path, redis_server.url, api_token=TOKEN)
    )
    answer = httpx.put(f"{api.url}/v1/rules", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail and all(set(d) == {"loc", "msg", "type"} for d in detail)
    assert httpx.get(f"{api.url}/v1/rules").json()["version"] == 0


def test_rules_routes_document_every_status(tmp_path, redis_server, api_server_factory):
    api = api_server_factory(make_settings(tmp_path, redis_server.url, api_token=TOKEN))
    spec = httpx.get(f"{api.url}/openapi.json").json()["paths"]["/v1/rules"]
    assert set(spec["get"]["responses"]) == {"200", "401", "403", "404", "422", "503"}
    assert set(spec["put"]["responses"]) == {"200", "400", "401", "403", "422", "503"}
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for op in ("get", "put"):
        for code, answer in spec[op]["responses"].items():
            if code != "200":
                assert answer["content"]["application/json"]["schema"] == error, (op, code)
    assert "RulesIn" in spec["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]


def test_cli_load_is_served_by_a_running_api(
    tmp_path, redis_server, redis_client, api_server_factory, monkeypatch, capsys
):
    from recolake import cli
    from recolake import settings as settings_module

    settings = make_settings(tmp_path, redis_server.url, api_token=TOKEN)
    publish_sample(redis_server.url, settings)
    api = api_server_factory(settings)
    assert items_of(api)[0][0] == "i1"
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "promo"\naction = "pin"\nitems = ["p3"]\n')
    cli.main(["rules", "--load", str(path), "--author", "ops"])
    assert "version 1 by ops" in capsys.readouterr().out
    assert until(lambda: items_of(api)[0] == ("p3", "promoted"))
    shown = httpx.get(f"{api.url}/v1/rules").json()
    assert (shown["version"], shown["author"], shown["rules"][0]["id"]) == (1, "ops", "promo")
    path.write_text('[[rules]]\nid = "promo"\naction = "lift"\n')
    with pytest.raises(SystemExit, match="action"):
        cli.main(["rules", "--load", str(path)])
    other = httpx.post(f"{api.url}/v1/rules", json={})
    assert other.status_code == 405 and other.headers["allow"] == "GET, PUT"
