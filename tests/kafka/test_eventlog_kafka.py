"""RECOLAKE_EVENT_LOG=kafka, the API side: POST /v1/events (the real app under uvicorn) ->
KafkaEventLog (confluent-kafka, acks=all) -> a topic on a real broker. A 2xx means the
broker acknowledged; a broker or topic that is not there is a 5xx, not a silent drop."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from recolake.eventlog import KafkaEventLog, open_event_log
from tests.conftest import free_port, make_settings

pytestmark = pytest.mark.kafka

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def consume_all(bootstrap_servers: str, topic: str, expected: int, timeout: float = 30.0):
    """Every message of the topic (all partitions, from the start), once ``expected`` have
    arrived and a short quiet period shows there are no more."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                assert msg.error() is None, msg.error()
                messages.append(msg)
                continue
            if len(messages) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return messages


def kafka_settings(tmp_path, redis_url, bootstrap_servers, topic, **overrides):
    return make_settings(
        tmp_path,
        redis_url,
        api_token=TOKEN,
        event_log="kafka",
        kafka_bootstrap_servers=bootstrap_servers,
        kafka_topic=topic,
        **overrides,
    )


@pytest.mark.redis
def test_posted_events_land_in_the_topic_once_acknowledged(
    tmp_path, redis_server, kafka_broker, kafka_topic, kafka_api
):
    settings = kafka_settings(
        tmp_path, redis_server.url, kafka_broker.bootstrap_servers, kafka_topic
    )
    log = open_event_log(settings)
    producer_config = log.config
    log.close()
    assert producer_config["acks"] == "all" and producer_config["enable.idempotence"] is True
    api = kafka_api(settings)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        one = client.post(
            "/v1/events",
            json={"event_id": "e-1", "user_id": "u1", "item_id": "i1", "event_type": "view"}
            | {"timestamp": now_iso(), "quantity": 2},
            headers=AUTH,
        )
        assert one.status_code == 202, one.text
        batch = [
            {"user_id": "u2", "item_id": f"i{n}", "event_type": "purchase", "timestamp": now_iso()}
            for n in range(3)
        ] + [{"user_id": "u2", "item_id": "i9", "event_type": "teleport", "timestamp": now_iso()}]
        many = client.post("/v1/events", json=batch, headers=AUTH)
        assert many.status_code == 202, many.text
    (rejected,) = many.json()["rejected"]
    assert rejected["index"] == 3 and rejected["reason"].startswith("event_type: unknown")
    ids = ["e-1", *many.json()["event_ids"]]
    assert len(ids) == 4

    messages = consume_all(kafka_broker.bootstrap_servers, kafka_topic, expected=4)
    stored = {m.key().decode(): json.loads(m.value()) for m in messages}
    assert len(messages) == 4 and sorted(stored) == sorted(ids)  # each once, keyed by id
    assert stored["e-1"] | {"timestamp": None} == {
        "event_id": "e-1",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "view",
        "timestamp": None,
        "quantity": "2",
    }
    assert {stored[i]["item_id"] for i in ids[1:]} == {"i0", "i1", "i2"}


def log_end(consumer, topic: str) -> int:
    """Messages in the topic right now, asked of the broker (not a cached watermark)."""
    from confluent_kafka import TopicPartition

    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return sum(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
        for p in partitions
    )


def test_concurrent_appends_each_wait_for_their_own_acks(kafka_broker, kafka_topic):
    """The API calls append from several threads at once on one producer: every call returns
    only when its own events are acknowledged, whichever thread served the reports. Checked
    while the producer is open (no close() flush to hide a missing wait): right after each
    append returns, the broker's log already holds at least every event of every append that
    had returned, and before close() a separate consumer reads each event exactly once."""
    from confluent_kafka import Consumer

    log = KafkaEventLog(kafka_broker.bootstrap_servers, kafka_topic, timeout_seconds=10)
    threads, calls, per_call = 6, 15, 3
    failures: list[BaseException] = []
    lock = threading.Lock()
    returned = 0
    shortfalls: list[tuple[int, int]] = []

    def worker(t: int) -> None:
        nonlocal returned
        probe = Consumer(
            {"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": f"probe-{t}"}
        )
        try:
            for n in range(calls):
                log.append([{"event_id": f"t{t}-{n}-{k}", "item_id": "i"} for k in range(per_call)])
                with lock:
                    returned += per_call
                    acknowledged = returned  # every one of these appends has returned
                in_log = log_end(probe, kafka_topic)
                if in_log < acknowledged:
                    shortfalls.append((acknowledged, in_log))
        except BaseException as exc:
            failures.append(exc)
        finally:
            probe.close()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    try:
        assert failures == []
        assert shortfalls == [], "append returned before the broker held its events"
        messages = consume_all(
            kafka_broker.bootstrap_servers, kafka_topic, expected=threads * calls * per_call
        )
        keys = [m.key().decode() for m in messages]
        assert len(keys) == threads * calls * per_call == len(set(keys))
    finally:
        log.close()


@pytest.mark.parametrize("what", ["no broker", "no topic"])
def test_unacknowledged_events_fail_the_append(kafka_broker, what):
    """A broker that does not answer, or a topic that does not exist (auto-create is off):
    append raises once the delivery timeout passes, it never reports success."""
    servers = kafka_broker.bootstrap_servers
    if what == "no broker":
        servers = f"127.0.0.1:{free_port()}"
    log = KafkaEventLog(servers, f"missing-{uuid.uuid4().hex[:8]}", timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(OSError, match="Kafka did not acknowledge 1 of 1"):
        log.append([{"event_id": "x", "item_id": "i"}])
    assert time.monotonic() - started < 10
    log.close()


@pytest.mark.redis
def test_api_answers_5xx_when_kafka_does_not_acknowledge(tmp_path, redis_server, kafka_api):
    settings = kafka_settings(
        tmp_path,
        redis_server.url,
        f"127.0.0.1:{free_port()}",
        "events",
        kafka_delivery_timeout_seconds=1.5,
    )
    api = kafka_api(settings)
    event = {"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": now_iso()}
    response = httpx.post(f"{api.url}/v1/events", json=event, headers=AUTH, timeout=30)
    assert response.status_code == 503  # never 202: nothing was stored
    assert "event log unavailable" in response.json()["detail"]
