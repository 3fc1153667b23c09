"""``POST /v1/events``: parse the request, hand the events to online.services.events, shape
the answer.

Body: one event object, a JSON list of them, or ``{"events": [...]}``, at most
``settings.events_max_batch`` events and ``settings.events_max_body_bytes`` bytes (checked
before parsing: 413), UTF-8 JSON (``Content-Type: application/json``, or none). Each event is
validated on its own (partial acceptance): the valid ones are stored and the answer is 202
with their ids and a per-index reason for every rejected one; when none is valid nothing is
stored and the answer is 422 (409 when every rejection is an idempotency conflict).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from online.deps import EventLogDep, ReaderDep, SettingsDep
from online.schemas import EventIn, EventsResponse
from online.services.events import EventIntake, IntakeError, parse_body
from recolake.settings import DEFAULT_EVENT_WEIGHTS, Settings


@asynccontextmanager
async def _document_event_types(app: FastAPI) -> AsyncIterator[None]:
    """Document this app's event types (settings.event_weights) in the request body schema.
    Routes are shared by every app that includes the router, so the app's own document is
    patched (this runs after the app's lifespan has put the settings on app.state)."""
    settings = getattr(app.state, "settings", None)
    if settings is not None and not getattr(app.state, "events_documented", False):
        app.state.events_documented = True
        generate, types = app.openapi, sorted(settings.event_weights)

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                _set_event_types(generate(), types)
            return app.openapi_schema

        app.openapi = openapi  # type: ignore[method-assign]
        app.openapi_schema = None
    yield


def _set_event_types(document: dict[str, Any], types: list[str]) -> None:
    body = document["paths"]["/v1/events"]["post"]["requestBody"]
    one, batch, envelope = body["content"]["application/json"]["schema"]["anyOf"]
    for event in (one, batch["items"], envelope["properties"]["events"]["items"]):
        event["properties"]["event_type"]["enum"] = types


router = APIRouter(tags=["events"], lifespan=_document_event_types)

JSON_TYPES = ("application/json",)


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _check_token(request: Request, settings: Settings) -> JSONResponse | None:
    """401 without a bearer token, 403 with a wrong one (or when writes are disabled)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if not expected:
        return _error(403, "writes are disabled: RECOLAKE_API_TOKEN is not set on the server")
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        return _error(403, "invalid token")
    return None


def _is_json(content_type: str | None) -> bool:
    """No Content-Type, application/json or application/<x>+json (any charset parameter)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


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


def _request_body_schema(event_types: list[str]) -> dict[str, Any]:
    """One event, a list of them, or {"events": [...]}: parsed by hand from the size-limited
    body (partial acceptance needs each event validated on its own), documented here."""
    event = EventIn.model_json_schema()
    event["properties"]["event_type"] = {
        **event["properties"]["event_type"],
        "enum": event_types,
        "description": "One of the configured event types (RECOLAKE_EVENT_WEIGHTS); "
        "case and surrounding spaces are ignored.",
    }
    batch = {"type": "array", "items": event, "minItems": 1}
    envelope = {
        "type": "object",
        "title": "EventsEnvelope",
        "properties": {"events": batch},
        "required": ["events"],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": [event, batch, envelope]}}},
        }
    }


def _error_doc(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    from online.schemas import ErrorResponse

    doc: dict[str, Any] = {"description": description, "model": ErrorResponse}
    if headers:
        doc["headers"] = headers
    return doc


RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


@router.post(
    "/v1/events",
    response_model=EventsResponse,
    status_code=202,
    openapi_extra=_request_body_schema(sorted(DEFAULT_EVENT_WEIGHTS)),
    responses={
        400: _error_doc("Not UTF-8 JSON, no events, or `events` not a list."),
        401: _error_doc(
            "No bearer token.",
            {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
        ),
        403: _error_doc("Wrong token, or writes disabled."),
        409: {
            "description": "Every event conflicts with another event accepted before under the "
            "same event_id for the same user (or session): nothing stored; each rejection "
            "carries the stored event's summary.",
            "model": EventsResponse,
        },
        413: _error_doc("Body too large, or too many events."),
        415: _error_doc("Content-Type is not JSON."),
        422: {"description": "No event was valid: per-index reasons.", "model": EventsResponse},
        503: _error_doc(
            "Redis or the event log failed: nothing stored, retry (same event_ids).",
            RETRY_AFTER_HEADER,
        ),
    },
)
async def post_events(
    request: Request, settings: SettingsDep, reader: ReaderDep, event_log: EventLogDep
) -> JSONResponse:
    """Accept one event or a batch; 202 once the valid ones are durably in the event log."""
    denied = _check_token(request, settings)
    if denied is not None:
        return denied
    body = await _read_limited(request, settings.events_max_body_bytes)
    if body is None:
        return _error(413, f"body larger than {settings.events_max_body_bytes} bytes")
    if not _is_json(request.headers.get("content-type")):
        return _error(415, "Content-Type must be application/json")
    try:
        items = parse_body(body, settings.events_max_batch)
        intake = EventIntake(settings, reader.client, event_log)
        result = await intake.ingest(items)
    except IntakeError as exc:
        return _error(exc.status, exc.detail, exc.headers)
    return JSONResponse(result.response.model_dump(), status_code=result.status)
