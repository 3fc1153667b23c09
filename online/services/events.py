"""Event intake: validate (recolake.validation), check idempotency in Redis, append to the
event log. The router only parses the request and shapes the answer.

Idempotency: ``event_id`` is the client's key *per subject* (the user, or the session when
there is no user). For every accepted event with a client id, one pipelined round trip runs
``SET <ns>:idem:<event_token> <fingerprint+summary> NX GET EX stream_dedupe_ttl_seconds``:

- nothing there: a new event, stored;
- the same fingerprint: a retry, stored again and reported in ``duplicates`` (the streaming
  job and silver count it once; storing it again means a retry after a crash between the
  SET and the append is not lost);
- another fingerprint: a conflict, rejected with the stored event's summary, nothing of it
  stored. A request whose events are all conflicts answers 409.

If the append fails, the records this request created are deleted (a retry is then neither
a false conflict nor a false duplicate) and the answer is 503; if Redis fails, 503 with
Retry-After and nothing stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from online.schemas import EventIn, EventsResponse, EventSummary, RejectedEvent
from recolake.eventlog import EventLog
from recolake.onlinestore import KeyLayout, event_token, session_subject, user_subject
from recolake.privacy import pseudonymise
from recolake.settings import Settings
from recolake.validation import ID_FIELDS, InvalidEventError, Limits, canonical_event, fingerprint

log = logging.getLogger("recolake.events")

#: Retry-After (seconds) when Redis or the event log fails: usually a short fault.
RETRY_AFTER = 1
#: Reasons for the patterns of online.schemas.EventIn (the regexes say little to a client).
PATTERN_REASONS = {
    **{name: f"{name}: must not be blank" for name in ID_FIELDS},
    "timestamp": "timestamp: not ISO 8601 (YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|+HH:MM])",
}
CONFLICT_REASON = "event_id: conflict, already used by this user (or session) for another event"


class IntakeError(Exception):
    """A request-level answer that is not an EventsResponse (400, 413, 503): ErrorResponse."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass
class IntakeResult:
    status: int  # 202, 409 or 422
    response: EventsResponse


def parse_body(body: bytes, max_batch: int) -> list[Any]:
    """The posted events: one object, a list, or ``{"events": [...]}``. Raises IntakeError
    (400 or 413) for a body that is not such JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise IntakeError(400, "body is not JSON we accept: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints longer than Python's digit limit
        raise IntakeError(400, f"body is not JSON: {str(exc)[:200]}") from None
    if isinstance(payload, dict) and "events" in payload:
        if len(payload) > 1:
            extra = sorted(k for k in payload if k != "events")[:5]
            raise IntakeError(400, f"unexpected properties next to events: {extra}")
        payload = payload["events"]
        if not isinstance(payload, list):
            raise IntakeError(400, '"events" must be a list of events')
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise IntakeError(400, "no events")
    if len(items) > max_batch:
        raise IntakeError(413, f"{len(items)} events: at most {max_batch} per request")
    return items


def validate_one(raw: Any, limits: Limits, now: datetime) -> dict[str, str] | str:
    """The canonical event, or the rejection reason."""
    if not isinstance(raw, dict):
        return "not_an_object"
    try:
        event = EventIn.model_validate(raw)
        return canonical_event(event.model_dump(), limits, now)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        if first["type"] == "string_pattern_mismatch":
            return PATTERN_REASONS.get(where, f"{where}: malformed")
        return f"{where}: {first['msg']}"
    except InvalidEventError as exc:
        return str(exc)
    except RecursionError:
        return "event: nested too deeply"


def subject_of(event: dict[str, str], key: bytes) -> str:
    """Whose idempotency key ``event_id`` is: the user's, else the session's."""
    if "user_id" in event:
        return user_subject(pseudonymise(event["user_id"], key))
    return session_subject(event["session_id"], key)


def summary_of(event: dict[str, str]) -> dict[str, str]:
    return {k: event[k] for k in ("item_id", "event_type", "timestamp")}


@dataclass
class _Pending:
    index: int
    event: dict[str, str]
    key: str | None = None  # idempotency key; None for server-generated ids
    fingerprint: str | None = None
    record: str | None = None


@dataclass
class EventIntake:
    settings: Settings
    redis: Any  # redis.asyncio client (single node or cluster)
    event_log: EventLog
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.key = self.settings.require_pseudonymisation_key()
        self.layout = KeyLayout(self.settings.redis_namespace)
        self.limits = Limits.from_settings(self.settings)

    async def ingest(self, items: Sequence[Any]) -> IntakeResult:
        now = self.clock()
        rejected: list[RejectedEvent] = []
        pending: list[_Pending] = []
        for index, raw in enumerate(items):
            outcome = validate_one(raw, self.limits, now)
            if isinstance(outcome, str):
                rejected.append(RejectedEvent(index=index, reason=outcome))
            else:
                pending.append(self._pending(index, outcome, raw.get("event_id") is not None))
        created, duplicates, conflicts = await self._claim(pending)
        rejected.extend(conflicts)
        rejected.sort(key=lambda r: r.index)
        conflicted = {r.index for r in conflicts}
        accepted = [p for p in pending if p.index not in conflicted]
        if accepted:
            try:
                await asyncio.to_thread(self.event_log.append, [p.event for p in accepted])
            except OSError as exc:
                log.error("event log append failed: %s", exc)
                await self._release(created)
                raise IntakeError(
                    503,
                    f"event log unavailable, nothing stored; retry: {exc}",
                    {"Retry-After": str(RETRY_AFTER)},
                ) from exc
        response = EventsResponse(
            accepted=len(accepted),
            event_ids=[p.event["event_id"] for p in accepted],
            duplicates=duplicates,
            rejected=rejected,
        )
        if accepted:
            status = 202
        elif rejected and len(conflicts) == len(rejected):
            status = 409
        else:
            status = 422
        return IntakeResult(status, response)

    def _pending(self, index: int, event: dict[str, str], client_id: bool) -> _Pending:
        if not client_id:
            return _Pending(index, event)
        token = event_token(subject_of(event, self.key), event["event_id"], self.key)
        print_ = fingerprint(event, self.key)
        record = json.dumps({"fingerprint": print_, **summary_of(event)}, separators=(",", ":"))
        return _Pending(index, event, self.layout.idempotency(token), print_, record)

    async def _claim(
        self, pending: list[_Pending]
    ) -> tuple[list[str], list[str], list[RejectedEvent]]:
        """One pipelined SET NX GET per client id: (keys created, duplicate ids, conflicts)."""
        claims = [p for p in pending if p.key is not None]
        if not claims:
            return [], [], []
        ttl = self.settings.stream_dedupe_ttl_seconds
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in claims:
                    pipe.set(p.key, p.record, nx=True, get=True, ex=ttl)
                previous = await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            log.error("idempotency check failed: %s", exc)
            raise IntakeError(
                503,
                f"event store unavailable, nothing stored; retry: {type(exc).__name__}",
                {"Retry-After": str(RETRY_AFTER)},
            ) from exc
        created, duplicates, conflicts = [], [], []
        for p, old in zip(claims, previous, strict=True):
            if old is None:
                created.append(p.key)
                continue
            stored = _decode_record(old)
            if stored.get("fingerprint") == p.fingerprint:
                duplicates.append(p.event["event_id"])
                continue
            summary = None
            if all(isinstance(stored.get(k), str) for k in ("item_id", "event_type", "timestamp")):
                summary = EventSummary(**summary_of(stored))
            conflicts.append(RejectedEvent(index=p.index, reason=CONFLICT_REASON, conflict=summary))
        return created, duplicates, conflicts

    async def _release(self, keys: list[str]) -> None:
        """Undo this request's claims after a failed append (best effort: they expire)."""
        if not keys:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.delete(k)
                await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            log.error("could not release %d idempotency record(s): %s", len(keys), exc)


def _decode_record(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}
