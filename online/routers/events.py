"""``POST /v1/events``: validate, then durably append to the event log before answering.

Body: one event object, a JSON list of them, or ``{"events": [...]}``, at most
``settings.events_max_batch`` events and ``settings.events_max_body_bytes`` bytes (checked
before parsing: 413). Each event is validated on its own (partial acceptance): the valid
ones are stored and the answer is 202 with their ids and a per-index reason for every
rejected one; when none is valid nothing is stored and the answer is 422 with the reasons.
A client retry with the same ``event_id`` is counted once downstream (the streaming job
dedupes by id); events without one get a server-generated id.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from online.schemas import EventIn, EventsResponse, RejectedEvent
from recolake.eventlog import EventLog, open_event_log
from recolake.settings import Settings

log = logging.getLogger("recolake.events")
router = APIRouter(tags=["events"])


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _check_token(request: Request, settings: Settings) -> JSONResponse | None:
    """401 without a bearer token, 403 with a wrong one (or when writes are disabled)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return JSONResponse(
            {"detail": "missing bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if not expected:
        return _error(403, "writes are disabled: RECOLAKE_API_TOKEN is not set on the server")
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        return _error(403, "invalid token")
    return None


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` bytes (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def parse_event_time(value: str) -> datetime | None:
    """ISO 8601 to an aware UTC datetime (naive = UTC), or None if unparseable."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def validate_event(raw: Any, settings: Settings, now: datetime) -> dict[str, str] | str:
    """The event as the log stores it (strings, UTC timestamp), or the rejection reason."""
    if not isinstance(raw, dict):
        return "not_an_object"
    try:
        event = EventIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "event"
        return f"{field}: {first['msg']}"
    for name in ("event_id", "user_id", "session_id", "item_id"):
        value = getattr(event, name)
        if value is not None and not value.strip():
            return f"{name}: must not be blank"
    if event.user_id is None and event.session_id is None:
        return "user_id or session_id is required"
    event_type = event.event_type.strip().lower()
    if event_type not in settings.event_weights:
        return f"event_type: unknown {event.event_type!r}, expected one of " + ", ".join(
            sorted(settings.event_weights)
        )
    when = parse_event_time(event.timestamp)
    if when is None:
        return "timestamp: not ISO 8601"
    if when > now + timedelta(seconds=settings.events_max_future_seconds):
        return f"timestamp: more than {settings.events_max_future_seconds}s in the future"
    stored = {
        "event_id": event.event_id.strip() if event.event_id else f"srv-{uuid.uuid4().hex}",
        "user_id": event.user_id.strip() if event.user_id else None,
        "session_id": event.session_id.strip() if event.session_id else None,
        "item_id": event.item_id.strip(),
        "event_type": event_type,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "quantity": None if event.quantity is None else str(event.quantity),
        "price": None if event.price is None else repr(event.price),
    }
    return {k: v for k, v in stored.items() if v is not None}


def _event_log(request: Request, settings: Settings) -> EventLog:
    log = getattr(request.app.state, "event_log", None)
    if log is None:
        log = request.app.state.event_log = open_event_log(settings)
    return log


@router.post(
    "/v1/events",
    response_model=EventsResponse,
    status_code=202,
    responses={
        401: {"description": "No bearer token."},
        403: {"description": "Wrong token, or writes disabled."},
        413: {"description": "Body too large, or too many events."},
        422: {"description": "No event was valid: per-index reasons.", "model": EventsResponse},
    },
)
async def post_events(request: Request) -> JSONResponse:
    """Accept one event or a batch; 202 once the valid ones are durably in the event log."""
    settings: Settings = request.app.state.settings
    denied = _check_token(request, settings)
    if denied is not None:
        return denied
    body = await _read_limited(request, settings.events_max_body_bytes)
    if body is None:
        return _error(413, f"body larger than {settings.events_max_body_bytes} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, f"body is not JSON: {exc}")
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        payload = payload["events"]
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        return _error(422, "no events")
    if len(items) > settings.events_max_batch:
        return _error(413, f"{len(items)} events: at most {settings.events_max_batch} per request")
    now = datetime.now(UTC)
    accepted: list[dict[str, str]] = []
    rejected: list[RejectedEvent] = []
    for index, raw in enumerate(items):
        outcome = validate_event(raw, settings, now)
        if isinstance(outcome, str):
            rejected.append(RejectedEvent(index=index, reason=outcome))
        else:
            accepted.append(outcome)
    if accepted:
        try:
            await run_in_threadpool(_event_log(request, settings).append, accepted)
        except OSError as exc:
            # Nothing was acknowledged: the client must retry (same event_ids: counted once).
            log.error("event log append failed: %s", exc)
            return _error(503, f"event log unavailable, nothing stored; retry: {exc}")
    response = EventsResponse(
        accepted=len(accepted), event_ids=[e["event_id"] for e in accepted], rejected=rejected
    )
    return JSONResponse(response.model_dump(), status_code=202 if accepted else 422)
