"""POST /v1/events against the real app (uvicorn) and a real landing directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def now_iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(**overrides) -> dict:
    base = {"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": now_iso()}
    base.update(overrides)
    return base


def landed(landing: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in sorted(landing.glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


@pytest.fixture
def api(tmp_path, redis_server, api_server_factory):
    settings = make_settings(
        tmp_path,
        redis_server.url,
        api_token=TOKEN,
        landing_dir=str(tmp_path / "landing"),
        events_max_batch=5,
        events_max_body_bytes=4096,
    )
    server = api_server_factory(settings)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, tmp_path / "landing"


def test_auth_required_for_writes(api):
    client, landing = api
    assert client.post("/v1/events", json=event()).status_code == 401
    wrong = client.post("/v1/events", json=event(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert landed(landing) == []
    assert client.get("/healthz").status_code in (200, 503)  # reads stay open (no 401)


def test_writes_disabled_without_server_token(tmp_path, redis_server, api_server_factory):
    server = api_server_factory(make_settings(tmp_path, redis_server.url, api_token=None))
    response = httpx.post(f"{server.url}/v1/events", json=event(), headers=AUTH)
    assert response.status_code == 403
    assert "RECOLAKE_API_TOKEN" in response.json()["detail"]


def test_accepted_event_is_on_disk_before_the_answer(api):
    client, landing = api
    response = client.post(
        "/v1/events", json=event(event_id="e-1", quantity=2, price=1.5), headers=AUTH
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "event_ids": ["e-1"], "rejected": []}
    (stored,) = landed(landing)  # already there when the 202 arrived
    assert stored["event_id"] == "e-1" and stored["quantity"] == "2" and stored["price"] == "1.5"
    assert not list(landing.glob(".*"))  # no temp file left behind


def test_unwritable_event_log_is_503_not_202(tmp_path, redis_server, api_server_factory):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the landing dir should be")
    settings = make_settings(
        tmp_path, redis_server.url, api_token=TOKEN, landing_dir=str(blocker / "landing")
    )
    server = api_server_factory(settings)
    response = httpx.post(f"{server.url}/v1/events", json=event(), headers=AUTH, timeout=10)
    assert response.status_code == 503, response.text
    assert "nothing stored" in response.json()["detail"]


def test_generated_ids_are_unique_and_client_ids_kept(api):
    client, landing = api
    response = client.post(
        "/v1/events", json={"events": [event(), event(), event(event_id="x")]}, headers=AUTH
    )
    ids = response.json()["event_ids"]
    assert response.status_code == 202
    assert len(set(ids)) == 3 and ids[2] == "x" and ids[0].startswith("srv-")
    assert [e["event_id"] for e in landed(landing)] == ids


def test_partial_batch_reports_reasons_per_index(api):
    client, landing = api
    batch = [
        event(),
        event(event_type="teleport"),
        event(item_id=""),
        event(user_id=None),
        event(timestamp="yesterday"),
    ]
    response = client.post("/v1/events", json=batch, headers=AUTH)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 4}
    assert "unknown 'teleport'" in reasons[1]
    assert reasons[2].startswith("item_id")
    assert "user_id or session_id" in reasons[3]
    assert "ISO 8601" in reasons[4]
    assert len(landed(landing)) == 1


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (event(timestamp=now_iso(timedelta(hours=1))), "in the future"),
        (event(user_id="u" * 257), "user_id"),
        (event(quantity=0), "quantity"),
        (event(price=-1), "price"),
        (event(colour="red"), "colour"),
        ("just a string", "not_an_object"),
        (event(user_id="   "), "blank"),
    ],
)
def test_all_invalid_is_422_and_nothing_stored(api, bad, fragment):
    client, landing = api
    response = client.post("/v1/events", json=bad, headers=AUTH)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["rejected"][0]["reason"]
    assert landed(landing) == []


def test_session_only_event_is_accepted(api):
    client, landing = api
    response = client.post("/v1/events", json=event(user_id=None, session_id="s1"), headers=AUTH)
    assert response.status_code == 202
    assert "user_id" not in landed(landing)[0]


def test_limits(api):
    client, landing = api
    too_many = client.post("/v1/events", json=[event()] * 6, headers=AUTH)
    assert too_many.status_code == 413
    too_big = client.post(
        "/v1/events", content=b"[" + b" " * 5000 + b"]", headers={**AUTH, "Content-Type": "x"}
    )
    assert too_big.status_code == 413
    assert client.post("/v1/events", content=b"{nope", headers=AUTH).status_code == 400
    assert landed(landing) == []
