"""POST /v1/events against the real app (uvicorn), real Redis and a real landing directory;
the validator parity test also runs the Spark validation on the landed lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings

pytestmark = pytest.mark.redis

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
        for f in sorted(landing.glob("*.jsonl"), key=lambda f: f.stat().st_mtime_ns)
        for line in f.read_text().splitlines()
    ]


@pytest.fixture
def api(tmp_path, redis_server, redis_client, api_server_factory):
    """The app on an empty Redis (redis_client flushes it) and an empty landing dir."""
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
    assert response.json() == {
        "accepted": 1,
        "event_ids": ["e-1"],
        "duplicates": [],
        "rejected": [],
    }
    (stored,) = landed(landing)  # already there when the 202 arrived
    assert stored["event_id"] == "e-1" and stored["quantity"] == "2" and stored["price"] == "1.5"
    assert stored["timestamp"].endswith(".000Z")  # canonical UTC form
    assert not list(landing.glob(".*"))  # no temp file left behind


def break_dir(path: Path) -> None:
    """Put a file where the landing dir was: the next append fails (a real OSError)."""
    for f in path.iterdir():
        f.unlink()
    path.rmdir()
    path.write_text("not a directory")


def test_failed_append_is_503_and_releases_its_idempotency_records(api, redis_client):
    client, landing = api
    first = client.post("/v1/events", json=event(event_id="kept"), headers=AUTH)
    assert first.status_code == 202
    break_dir(landing)
    batch = [event(event_id="kept"), event(event_id="new-1"), event(item_id="i2", event_id="n2")]
    response = client.post("/v1/events", json=batch, headers=AUTH)
    assert response.status_code == 503, response.text
    assert "nothing stored" in response.json()["detail"]
    assert response.headers["Retry-After"] == "1"
    idem = sorted(redis_client.scan_iter("*:idem:*"))
    assert len(idem) == 1  # only the first request's record: this one's were deleted
    landing.unlink()
    landing.mkdir()
    retry = client.post("/v1/events", json=batch, headers=AUTH)
    assert retry.status_code == 202, retry.text
    # "kept" was accepted before: a duplicate; the others are new, not false duplicates
    assert retry.json()["duplicates"] == ["kept"]
    assert [e["event_id"] for e in landed(landing)] == ["kept", "new-1", "n2"]


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


# --------------------------------------------------------------------------- hostile input


def post_raw(client: httpx.Client, body: bytes, content_type: str = "application/json"):
    return client.post("/v1/events", content=body, headers={**AUTH, "Content-Type": content_type})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"[" + b" " * 1_000_000 + b"]", "text/plain", 413, "larger"),  # the limit first
        (b"\xff\xfe{}", "application/json", 400, "UTF-8"),
        (b"\xc3\x28", "application/json", 400, "UTF-8"),
        (b"not json", "application/json", 400, "not JSON"),
        (b"1" * 5000, "application/json", 400, "not JSON"),  # past Python's int digit limit
        (b"[]", "application/json", 400, "no events"),
        (b'{"events": 3}', "application/json", 400, "list"),
        (b'{"events": [], "x": 1}', "application/json", 400, "unexpected properties"),
        (b"{}", "text/plain", 415, "Content-Type"),
        (b"{}", "application/x-www-form-urlencoded", 415, "Content-Type"),
    ],
)
def test_bad_bodies_are_4xx_with_a_reason(deep_api, body, content_type, status, fragment):
    client, landing = deep_api
    response = post_raw(client, body, content_type)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert landed(landing) == []


def test_deep_nesting_is_4xx(deep_api):
    client, landing = deep_api
    for depth in (1000, 50_000):  # RecursionError in json.loads (a 500 before)
        response = post_raw(client, b"[" * depth + b"]" * depth)
        assert response.status_code == 400, (depth, response.text)
        assert "nested too deeply" in response.json()["detail"]
    nested_value = b'{"user_id": "u", "item_id": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert post_raw(client, nested_value).status_code == 400
    shallow = post_raw(client, b"[" * 20 + b"]" * 20)  # parses: one event that is no object
    assert shallow.status_code == 422
    assert shallow.json()["rejected"][0]["reason"] == "not_an_object"
    in_value = post_raw(client, b'{"user_id": "u", "item_id": ' + b"[" * 20 + b"]" * 20 + b"}")
    assert in_value.status_code == 422
    assert in_value.json()["rejected"][0]["reason"].startswith("item_id")
    assert landed(landing) == []


@pytest.fixture
def deep_api(tmp_path, redis_server, redis_client, api_server_factory):
    """Like ``api``, with the default body limit and 100 events per request."""
    settings = make_settings(
        tmp_path,
        redis_server.url,
        api_token=TOKEN,
        landing_dir=str(tmp_path / "landing"),
        events_max_batch=100,
    )
    server = api_server_factory(settings)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, tmp_path / "landing"


#: Events each rejected on its own (422 per event, a reason each), never a 500.
HOSTILE = [
    ('"timestamp": "0001-01-01T00:00:00+01:00"', "timestamp"),  # OverflowError in astimezone
    ('"timestamp": "9999-12-31T23:59:59-00:01"', "timestamp"),
    ('"timestamp": "0001-01-01T00:00:00Z"', "timestamp: not ISO 8601"),
    ('"timestamp": "1970-01-01T00:30:00+01:00"', "timestamp: before 1970"),
    ('"price": Infinity', "price"),
    ('"price": -Infinity', "price"),
    ('"price": NaN', "price"),
    ('"price": 1e400', "price"),
    ('"price": 1e10', "price"),
    ('"quantity": Infinity', "quantity"),
    ('"quantity": 1e400', "quantity"),
    ('"quantity": 2147483648', "quantity"),
    ('"quantity": 10000000000000000000000000000000000000000', "quantity"),
    ('"quantity": true', "quantity"),
    ('"quantity": 2.5', "quantity"),
    ('"quantity": "2"', "quantity"),
    ('"price": false', "price"),
    ('"user_id": 17850', "user_id"),
    ('"item_id": "\\ud800"', "item_id"),  # lone surrogate
    ('"event_id": "\\t "', "event_id: must not be blank"),
]


def test_hostile_events_are_rejected_each_with_a_reason_and_the_valid_one_kept(deep_api):
    client, landing = deep_api
    base = json.dumps(event())[1:-1]  # '"user_id": "u1", "item_id": "i1", ...'
    objects = [json.dumps(event(event_id="ok"))]
    for field_json, _ in HOSTILE:
        name = field_json.split('"')[1]
        kept = ", ".join(p for p in base.split(", ") if not p.startswith(f'"{name}"'))
        objects.append("{" + kept + ", " + field_json + "}")
    response = post_raw(client, ("[" + ",".join(objects) + "]").encode())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1 and body["event_ids"] == ["ok"]
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == list(range(1, len(HOSTILE) + 1))
    for index, (_, fragment) in enumerate(HOSTILE, start=1):
        assert reasons[index].startswith(fragment), (HOSTILE[index - 1], reasons[index])
    assert [e["event_id"] for e in landed(landing)] == ["ok"]
    for one in objects[1:]:  # alone, each is a 422 (not a 500)
        assert post_raw(client, one.encode()).status_code == 422, one


def test_canonical_form_in_the_event_log(deep_api):
    client, landing = deep_api
    cases = {
        "1970-01-01T00:00:00Z": "1970-01-01T00:00:00.000Z",
        "2024-12-31T23:30:00-01:00": "2025-01-01T00:30:00.000Z",
        "2025-01-01T00:59:59.999999+01:00": "2024-12-31T23:59:59.999Z",
        "2024-02-29T12:00:00.5": "2024-02-29T12:00:00.500Z",
        "2024-05-01T10:00:00z": "2024-05-01T10:00:00.000Z",
    }
    batch = [event(timestamp=t, item_id=f"i{n}") for n, t in enumerate(cases)]
    batch.append(event(quantity=2**31 - 1, price=0, item_id="max"))
    batch.append(event(quantity=2.0, item_id="integral"))  # an integer in JSON Schema
    batch.append(event(price=5e-324, item_id="tiny", user_id="  ünï 🛒  "))
    response = client.post("/v1/events", json=batch, headers=AUTH)
    assert response.status_code == 202 and response.json()["rejected"] == [], response.text
    stored = {e["item_id"]: e for e in landed(landing)}
    assert [stored[f"i{n}"]["timestamp"] for n in range(len(cases))] == list(cases.values())
    assert stored["max"]["quantity"] == "2147483647" and stored["max"]["price"] == "0.0"
    assert stored["integral"]["quantity"] == "2"
    assert stored["tiny"]["price"] == "5e-324" and stored["tiny"]["user_id"] == "ünï 🛒"


# --------------------------------------------------------------------------- idempotency


def test_retry_with_the_same_payload_is_accepted_again_as_a_duplicate(api):
    client, landing = api
    original = event(event_id="e-1", timestamp="2024-05-01T10:00:00Z", price=2.5)
    same_instant = {**original, "timestamp": "2024-05-01T12:00:00.000+02:00", "price": 2.50}
    first = client.post("/v1/events", json=original, headers=AUTH)
    retry = client.post("/v1/events", json=same_instant, headers=AUTH)
    assert (first.status_code, retry.status_code) == (202, 202)
    assert first.json()["duplicates"] == [] and retry.json()["duplicates"] == ["e-1"]
    assert [e["event_id"] for e in landed(landing)] == ["e-1", "e-1"]  # downstream dedupes


def test_other_payload_under_the_same_id_is_409_with_the_stored_summary(api):
    client, landing = api
    first = event(event_id="e-1", item_id="i1", timestamp="2024-05-01T10:00:00+02:00")
    assert client.post("/v1/events", json=first, headers=AUTH).status_code == 202
    conflict = client.post("/v1/events", json={**first, "item_id": "i2"}, headers=AUTH)
    assert conflict.status_code == 409, conflict.text
    (rejected,) = conflict.json()["rejected"]
    assert rejected["index"] == 0 and "conflict" in rejected["reason"]
    assert rejected["conflict"] == {
        "item_id": "i1",
        "event_type": "view",
        "timestamp": "2024-05-01T08:00:00.000Z",
    }
    assert conflict.json()["accepted"] == 0
    assert [e["item_id"] for e in landed(landing)] == ["i1"]  # nothing of it stored
    # in a batch: the conflicting event is rejected, the others accepted (partial acceptance)
    mixed = [{**first, "event_type": "purchase"}, event(event_id="e-2")]
    response = client.post("/v1/events", json=mixed, headers=AUTH)
    assert response.status_code == 202
    assert response.json()["event_ids"] == ["e-2"]
    assert response.json()["rejected"][0]["conflict"]["item_id"] == "i1"
    assert [e["event_id"] for e in landed(landing)] == ["e-1", "e-2"]


def test_the_same_id_from_another_user_or_session_is_another_event(api, redis_client):
    client, landing = api
    posts = [
        event(event_id="e-1", user_id="alice", item_id="i1"),
        event(event_id="e-1", user_id="bob", item_id="i2"),
        event(event_id="e-1", user_id=None, session_id="s-1", item_id="i3"),
        event(event_id="e-1", user_id=None, session_id="s-2", item_id="i4"),
    ]
    for body in posts:
        response = client.post("/v1/events", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        assert response.json()["duplicates"] == []
    assert [e["item_id"] for e in landed(landing)] == ["i1", "i2", "i3", "i4"]
    keys = list(redis_client.scan_iter("*:idem:*"))
    assert len(keys) == 4
    assert not any("e-1" in k or "alice" in k for k in keys)  # raw ids never in key names
    ttl = redis_client.ttl(keys[0])
    assert 0 < ttl <= make_settings(Path("/x")).stream_dedupe_ttl_seconds


def test_idempotency_key_matches_the_onlinestore_contract(api, redis_client):
    from recolake.onlinestore import KeyLayout, event_token, user_subject
    from recolake.privacy import pseudonymise
    from tests.conftest import TEST_KEY

    client, _ = api
    assert client.post("/v1/events", json=event(event_id="e-9"), headers=AUTH).status_code == 202
    key = TEST_KEY.encode()
    token = event_token(user_subject(pseudonymise("u1", key)), "e-9", key)
    settings = make_settings(Path("/x"))
    record = json.loads(redis_client.get(KeyLayout(settings.redis_namespace).idempotency(token)))
    assert record["item_id"] == "i1" and record["event_type"] == "view"
    assert "u1" not in json.dumps(record)


def test_redis_down_is_503_with_retry_after_and_nothing_stored(tmp_path, api_server_factory):
    from tests.conftest import free_port

    settings = make_settings(
        tmp_path,
        f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        api_token=TOKEN,
        landing_dir=str(tmp_path / "landing"),
    )
    server = api_server_factory(settings)
    response = httpx.post(
        f"{server.url}/v1/events", json=[event(event_id="e-1"), event()], headers=AUTH, timeout=10
    )
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert "nothing stored" in response.json()["detail"]
    assert landed(tmp_path / "landing") == []


# --------------------------------------------------------------------------- one validator

#: Edge cases posted through the real API; label -> event fields (JSON values).
EDGE_CASES: dict[str, dict] = {
    "epoch": {"timestamp": "1970-01-01T00:00:00Z"},
    "before_epoch": {"timestamp": "1969-12-31T23:59:59.999Z"},
    "y2k_eve": {"timestamp": "1999-12-31T23:59:59.999Z"},
    "offset_crosses_year": {"timestamp": "2000-01-01T05:00:00+14:00"},
    "negative_offset": {"timestamp": "2024-12-31T23:30:00-01:00"},
    "leap_day_naive": {"timestamp": "2024-02-29T00:00:00"},
    "space_separator": {"timestamp": "2024-05-01 10:00:00"},
    "nanoseconds": {"timestamp": "2024-05-01T10:00:00.123456789Z"},
    "year_1": {"timestamp": "0001-01-01T00:00:00Z"},
    "year_1_offset": {"timestamp": "0001-01-01T00:00:00+01:00"},
    "year_9999_offset": {"timestamp": "9999-12-31T23:59:59-00:01"},
    "far_future": {"timestamp": "2999-01-01T00:00:00Z"},
    "max_quantity": {"quantity": 2**31 - 1},
    "quantity_overflow": {"quantity": 2**31},
    "quantity_zero": {"quantity": 0},
    "price_zero": {"price": 0},
    "price_tiny": {"price": 5e-324},
    "price_underflow": {"price": 1e-400},
    "price_max": {"price": 1e9},
    "price_over_max": {"price": 1e9 + 1},
    "price_inf": {"price": float("inf")},
    "price_nan": {"price": float("nan")},
    "unicode_ids": {"user_id": "ünï 🛒", "item_id": "품목-1", "event_id": "é-1"},
    "padded_ids": {"user_id": "  u1  ", "item_id": " i1 "},
    "id_256": {"item_id": "i" * 256, "event_id": "e" * 256},
    "id_257": {"item_id": "i" * 257},
    "upper_type": {"event_type": " VIEW "},
    "unknown_type": {"event_type": "wishlist"},
    "session_only": {"user_id": None, "session_id": "s-1"},
    "user_and_session": {"session_id": "s-2"},
}
#: Raw layouts Spark's parser does not read but the API accepts and rewrites canonically.
CANONICALISED = {"nanoseconds"}


def edge_event(label: str) -> dict:
    body = {**event(item_id=f"item-{label}", event_id=f"id-{label}"), **EDGE_CASES[label]}
    return {k: v for k, v in body.items() if v is not None}


def raw_strings(body: dict) -> dict:
    """The event as strings, the way a CSV or a lenient log would carry it to Spark."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}


@pytest.mark.spark
def test_whatever_the_api_accepts_the_jobs_accept(deep_api, spark):
    from pyspark.sql import functions as F

    from features import streaming as fs
    from recolake.settings import DEFAULT_EVENT_WEIGHTS
    from tests.conftest import TEST_KEY

    client, landing = deep_api
    labels = list(EDGE_CASES)
    body = json.dumps([edge_event(label) for label in labels])  # Infinity/NaN as JS tokens
    response = post_raw(client, body.encode())
    assert response.status_code == 202, response.text
    rejected = {labels[r["index"]] for r in response.json()["rejected"]}
    accepted = [label for label in labels if label not in rejected]
    assert len(accepted) == response.json()["accepted"] >= 15

    def validate(frame):
        bronze = fs.api_events_to_bronze(frame, datetime.now(UTC).date(), F.lit("t"))
        return fs.validate_api_events(
            bronze,
            event_types=DEFAULT_EVENT_WEIGHTS,
            key=TEST_KEY.encode(),
            latest_allowed=datetime.now(UTC) + timedelta(seconds=300),
        )

    # 1. exactly the landed lines, read as the streaming job reads them: none quarantined
    lines = spark.read.schema(fs.EVENT_LOG_SCHEMA).json(str(landing))
    split_ = validate(lines)
    quarantined = [(r["event_id"], r["reason"]) for r in split_.quarantined.collect()]
    assert quarantined == []
    typed = split_.valid.select(
        "event_id",
        F.date_format("event_time", "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias("ts"),
        "quantity",
        "price",
    ).collect()
    stored = {e["event_id"]: e for e in landed(landing)}
    assert sorted(r["event_id"] for r in typed) == sorted(stored)
    assert len(stored) == len(accepted)
    for r in typed:  # Spark reads back what the API meant
        e = stored[r["event_id"]]
        assert r["ts"] == e["timestamp"]
        assert r["quantity"] == (int(e["quantity"]) if "quantity" in e else None)
        assert r["price"] == (float(e["price"]) if "price" in e else None)

    # 2. every event Spark would quarantine (raw strings) is one the API rejected
    from pyspark.sql import Row

    raw_rows = [
        Row(**{f: raw_strings(edge_event(label)).get(f) for f in fs.EVENT_LOG_FIELDS})
        for label in labels
    ]
    raw_split = validate(spark.createDataFrame(raw_rows, fs.EVENT_LOG_SCHEMA))
    label_of = {edge_event(label)["event_id"]: label for label in labels}
    spark_rejects = {label_of[r["event_id"]] for r in raw_split.quarantined.collect()}
    print(f"api rejected {sorted(rejected)}; spark rejects raw {sorted(spark_rejects)}")
    assert spark_rejects >= {"year_1", "quantity_overflow", "price_inf", "price_over_max"}
    assert spark_rejects - CANONICALISED <= rejected


# --------------------------------------------------------------------------- OpenAPI


def documented(doc: dict, status: int) -> type:
    """The pydantic model behind the documented body schema of POST /v1/events' status."""
    import online.schemas

    response = doc["paths"]["/v1/events"]["post"]["responses"][str(status)]
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return getattr(online.schemas, ref.rsplit("/", 1)[-1])


def test_every_answer_is_documented_and_matches_its_schema(api):
    client, landing = api
    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/v1/events"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    one, batch, envelope = body_schema["anyOf"]
    assert one["title"] == "EventIn" and "item_id" in one["required"]
    assert batch["type"] == "array" and batch["items"] == one
    assert envelope["properties"]["events"] == batch
    assert "Retry-After" in operation["responses"]["503"]["headers"]

    answers = {
        202: client.post("/v1/events", json=event(event_id="e-1"), headers=AUTH),
        400: client.post("/v1/events", content=b"{", headers=AUTH),
        401: client.post("/v1/events", json=event()),
        403: client.post("/v1/events", json=event(), headers={"Authorization": "Bearer x"}),
        409: client.post("/v1/events", json=event(event_id="e-1", item_id="i9"), headers=AUTH),
        413: client.post("/v1/events", json=[event()] * 6, headers=AUTH),
        415: client.post(
            "/v1/events", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}
        ),
        422: client.post("/v1/events", json=event(event_type="?"), headers=AUTH),
    }
    break_dir(landing)  # the event log fails: 503
    answers[503] = client.post("/v1/events", json=event(event_id="e-3"), headers=AUTH)
    assert set(answers) <= {int(s) for s in operation["responses"]}
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-type"] == "application/json"
        documented(doc, status).model_validate_json(response.content, strict=True)
    assert answers[409].json()["rejected"][0]["conflict"]["item_id"] == "i1"


def test_documented_event_types_are_the_apps_own(tmp_path, redis_server, api_server_factory):
    weights = {"view": 1.0, "click": 0.5}
    settings = make_settings(tmp_path, redis_server.url, api_token=TOKEN, event_weights=weights)
    server = api_server_factory(settings)
    doc = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    # the negative feedback types (settings.negative_event_types) are always accepted
    types = ["click", "dislike", "hide", "view"]
    assert body["schema"]["anyOf"][0]["properties"]["event_type"]["enum"] == types
    click = httpx.post(f"{server.url}/v1/events", json=event(event_type="click"), headers=AUTH)
    assert click.status_code == 202, click.text


def test_idempotency_costs_one_set_per_client_id_and_nothing_else(api, redis_client):
    client, _ = api

    def calls() -> dict[str, int]:
        stats = redis_client.info("commandstats")
        return {k: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}

    warm = client.post("/v1/events", json=event(event_id="warm"), headers=AUTH)
    assert warm.status_code == 202  # the API's connection is open (HELLO) before counting
    before = calls()
    batch = [event(event_id="a"), event(event_id="b"), event(event_id="c"), event()]
    assert client.post("/v1/events", json=batch, headers=AUTH).status_code == 202
    after = calls()
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    assert spent == {"cmdstat_set": 3}  # SET NX GET EX per client id, pipelined
