"""The event log the API appends accepted events to, and the streaming job reads.

Two backends, chosen by ``settings.event_log``:

- ``local`` (default): one JSON-lines file per accepted request in ``settings.landing_dir``,
  written to a hidden temp file, fsynced, then ``os.replace``d in (atomic: the streaming
  job's file source never sees a half-written file; names starting with ``.`` are ignored
  by Spark's file source).
- ``kafka``: a ``confluent-kafka`` producer (optional extra ``recolake[kafka]``), flushed
  before the API answers, with ``acks=all`` and idempotence on.

Either way ``append`` returns only once the events are durable, so the 2xx means "stored".
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from recolake.settings import Settings


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
    """A Kafka topic; the key is the event id, the value the event's JSON."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        from confluent_kafka import Producer  # optional extra: recolake[kafka]

        self.topic = topic
        self.producer = Producer(
            {"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True}
        )

    def append(self, events: Sequence[dict[str, Any]]) -> None:
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for event in events:
            self.producer.produce(
                self.topic,
                key=str(event["event_id"]).encode(),
                value=json.dumps(event, separators=(",", ":")).encode(),
                on_delivery=on_delivery,
            )
        remaining = self.producer.flush(10)
        if remaining or errors:
            raise OSError(f"Kafka did not acknowledge {remaining} event(s): {errors[:3]}")

    def close(self) -> None:
        self.producer.flush(10)


def open_event_log(settings: Settings) -> EventLog:
    if settings.event_log == "kafka":
        return KafkaEventLog(settings.kafka_bootstrap_servers, settings.kafka_topic)
    return LocalEventLog(settings.landing_dir)
