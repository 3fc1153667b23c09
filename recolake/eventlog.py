"""The event log the API appends accepted events to, and the streaming job reads.

Two backends, chosen by ``settings.event_log``:

- ``local`` (default): one JSON-lines file per accepted request in ``settings.landing_dir``,
  written to a hidden temp file, fsynced, then ``os.replace``d in (atomic: the streaming
  job's file source never sees a half-written file; names starting with ``.`` are ignored
  by Spark's file source).
- ``kafka``: a ``confluent-kafka`` producer (optional extra ``recolake[kafka]``), idempotent,
  ``acks=all``; ``append`` waits for the broker's ack of every event, and fails once
  ``settings.kafka_delivery_timeout_seconds`` pass without one.

Either way ``append`` returns only once the events are durable, so the 2xx means "stored".

The log carries three kinds of records, told apart by ``record``: events (no ``record``
field, or ``"event"``), impressions (``"impression"``: a list the API served, see
:class:`Impression`; online/services/impressions.py appends them, the streaming job routes
them to bronze.impressions and never treats them as events) and catalog items (``"item"``:
an update from PUT /v1/items, see :func:`item_record`; the streaming job's lake query appends
them to bronze.items with source_format 'api', the Redis query ignores them).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from recolake.settings import Settings

#: The field that tells an impression record from an event, and its value for impressions.
RECORD = "record"
IMPRESSION = "impression"
ITEM = "item"
#: The endpoints whose lists are logged as impressions.
ENDPOINTS = ("recommendations", "similar")


@dataclass(frozen=True)
class ImpressionItem:
    item_id: str
    position: int  # 1-based, as shown
    source: str


@dataclass(frozen=True)
class Impression:
    """One served list, as the event log stores it (one JSON line / Kafka message). The
    attribution job (pipelines/experiments.py) credits events to it via silver.impressions;
    ``user_id`` is raw, like an event's (the lake pseudonymises it)."""

    recommendation_id: str
    user_id: str | None
    session_id: str | None
    experiment: str | None
    variant: str
    endpoint: str  # one of ENDPOINTS
    items: tuple[ImpressionItem, ...]
    model_version: str | None
    publication: str
    timestamp: str  # ISO-8601 UTC (recolake.validation.format_timestamp)

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["items"] = [asdict(i) for i in self.items]
        return {RECORD: IMPRESSION, **record}


def is_impression(record: dict[str, Any]) -> bool:
    return record.get(RECORD) == IMPRESSION


def item_record(
    item_id: str,
    *,
    title: str,
    category: str | None,
    brand: str | None,
    price: float | None,
    available: bool,
    attributes: dict[str, str],
    timestamp: str,
) -> dict[str, Any]:
    """One catalog update as the log stores it: strings as bronze.items holds them (a CSV
    row's text), ``attributes`` as its JSON text, ``timestamp`` the API's clock (ISO-8601
    UTC: what the streaming job's watermark reads)."""
    return {
        RECORD: ITEM,
        "item_id": item_id,
        "title": title,
        "category": category,
        "brand": brand,
        "price": None if price is None else repr(float(price)),
        "available": "true" if available else "false",
        "attributes": json.dumps(attributes, separators=(",", ":"), sort_keys=True),
        "timestamp": timestamp,
    }


def is_item(record: dict[str, Any]) -> bool:
    return record.get(RECORD) == ITEM


def record_key(record: dict[str, Any]) -> str:
    """The Kafka message key: the event's id, the impression's recommendation id, or the
    item's id (so one item's updates stay in order in one partition)."""
    if is_impression(record):
        return str(record["recommendation_id"])
    if is_item(record):
        return str(record["item_id"])
    return str(record["event_id"])


class EventLog(Protocol):
    def append(self, events: Sequence[dict[str, Any]]) -> Any: ...

    def close(self) -> None: ...


class LocalEventLog:
    """A landing directory of JSON-lines files, one per request."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def append(self, events: Sequence[dict[str, Any]]) -> Path:
        name = f"events-{uuid.uuid4().hex}.jsonl"
        tmp = self.directory / f".{name}.tmp"
        final = self.directory / name
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        return final

    def close(self) -> None:
        pass


class KafkaEventLog:
    """A Kafka topic; the key is the event id (an impression's: its recommendation id), the
    value the record's JSON (one record per message, the same JSON as a line of the local
    log)."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_seconds: float = 10.0) -> None:
        from confluent_kafka import KafkaException, Producer  # optional extra: recolake[kafka]

        self.topic = topic
        self.timeout_seconds = timeout_seconds
        self.config = {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",  # every in-sync replica has it before the API answers 2xx
            "enable.idempotence": True,  # producer retries write no duplicates
            # Past this, the producer gives up on a message and reports it failed: the API
            # answers 5xx instead of hanging, and the client retries (same event_id).
            "message.timeout.ms": int(timeout_seconds * 1000),
            # Each request waits for its acks: send at once. Concurrent requests still share
            # batches (what is queued while a request is in flight goes together).
            "linger.ms": 0,
        }
        self.producer = Producer(self.config)
        self._refused = (BufferError, KafkaException)  # what produce() raises
        # One thread serves every delivery report, the moment it arrives; each append waits
        # on its own Event. (Callers polling or flushing themselves would wait for each
        # other's messages under load.) The thread holds the producer, not self, so the
        # finalizer stops it once the log is dropped without close().
        self._stopped = threading.Event()
        producer, stopped = self.producer, self._stopped

        def serve_delivery_reports() -> None:
            while not stopped.is_set():
                producer.poll(0.1)

        self._poller = threading.Thread(
            target=serve_delivery_reports, name="kafka-event-log", daemon=True
        )
        self._poller.start()
        weakref.finalize(self, stopped.set)

    def append(self, events: Sequence[dict[str, Any]]) -> None:
        """Produce the events and wait for the broker's ack of each of them (called from
        several API threads at once)."""
        if not events:
            return
        pending = len(events)
        errors: list[str] = []
        lock = threading.Lock()
        done = threading.Event()

        def on_delivery(err: Any, _msg: Any) -> None:
            nonlocal pending
            with lock:
                if err is not None:
                    errors.append(str(err))
                pending -= 1
                if pending == 0:
                    done.set()

        try:
            for event in events:
                self.producer.produce(
                    self.topic,
                    key=record_key(event).encode(),
                    value=json.dumps(event, separators=(",", ":")).encode(),
                    on_delivery=on_delivery,
                )
        except self._refused as exc:
            raise OSError(f"Kafka producer refused an event: {exc}") from exc
        done.wait(self.timeout_seconds + 5)  # message.timeout.ms reports a failure first
        with lock:
            if pending or errors:
                raise OSError(
                    f"Kafka did not acknowledge {pending + len(errors)} of {len(events)} "
                    f"event(s) on {self.topic!r}: {errors[:3]}"
                )

    def close(self) -> None:
        """Flush and stop; a second call (the app's lifespan and a test both closing) is a
        no-op instead of an error from the closed producer."""
        if self._stopped.is_set():
            return
        self.producer.flush(self.timeout_seconds)
        self._stopped.set()
        self._poller.join(timeout=5)
        self.producer.close()  # its threads and connections (no more reconnect attempts)


def open_event_log(settings: Settings) -> EventLog:
    if settings.event_log == "kafka":
        return KafkaEventLog(
            settings.kafka_bootstrap_servers,
            settings.kafka_topic,
            timeout_seconds=settings.kafka_delivery_timeout_seconds,
        )
    return LocalEventLog(settings.landing_dir)
