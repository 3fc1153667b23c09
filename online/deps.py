"""FastAPI dependencies, all opened once in the app's lifespan (online/app.py) and kept on
``app.state``; each is overridable in tests (``app.dependency_overrides[get_reader] = ...``).

They are ``async`` on purpose: FastAPI runs a sync dependency in the threadpool, a hop that
costs more than the whole blend on the hot path.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from recolake.eventlog import EventLog
from recolake.onlinestore.reader import Reader
from recolake.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_reader(request: Request) -> Reader:
    return request.app.state.reader


async def get_event_log(request: Request) -> EventLog:
    """The event log opened in the lifespan (``recolake.eventlog.open_event_log``)."""
    return request.app.state.event_log


SettingsDep = Annotated[Settings, Depends(get_settings)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
EventLogDep = Annotated[EventLog, Depends(get_event_log)]


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def require_read_token(request: Request) -> None:
    """When ``api_read_token`` is set, a /v1 read needs ``Authorization: Bearer <read token
    or write token>``: 401 without one, 403 with a wrong one. Unset or empty: reads are
    open."""
    settings: Settings = request.app.state.settings
    read = settings.api_read_token.get_secret_value() if settings.api_read_token else ""
    if not read:  # unset, or set empty (RECOLAKE_API_READ_TOKEN=""): reads are open
        return
    token = _bearer(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token (reads need the read or the write token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    accepted = [read]
    if settings.api_token is not None:
        accepted.append(settings.api_token.get_secret_value())
    given = token.encode()
    # compare against every accepted token (no short-circuit on the first match)
    matches = [bool(t) and secrets.compare_digest(given, t.encode()) for t in accepted]
    if not any(matches):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid token")


ReadAuth = Depends(require_read_token)


async def require_write_token(request: Request) -> None:
    """Writes need ``Authorization: Bearer <write token>`` (``api_token``): 401 without a
    token, 403 with a wrong one or when no write token is configured (writes disabled)."""
    settings: Settings = request.app.state.settings
    token = _bearer(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if not expected:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="writes are disabled: RECOLAKE_API_TOKEN is not set on the server",
        )
    if not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid token")


WriteAuth = Depends(require_write_token)
