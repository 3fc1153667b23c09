"""DELETE /v1/users/{user_id}: the right to erasure (online/services/users.py does it)."""

from __future__ import annotations

from fastapi import APIRouter, status

from online.deps import ReaderDep, SettingsDep, WriteAuth
from online.routers.params import READ_ERRORS
from online.routers.recommendations import UserId
from online.schemas import ErasureResponse
from online.services.users import forget

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[WriteAuth])

_ERRORS = {
    **READ_ERRORS,
    401: {**READ_ERRORS[401], "description": "No bearer token was sent."},
    403: {**READ_ERRORS[403], "description": "Wrong token, or writes are disabled."},
}


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ErasureResponse,
    responses=_ERRORS,
    summary="Forget a user everywhere (right to erasure)",
)
async def delete_user(user_id: UserId, reader: ReaderDep, settings: SettingsDep) -> dict:
    """Needs the write token. Removes the user's real-time history and published lists from
    Redis at once (their next recommendations are the anonymous fallback) and queues the
    erasure of their rows in the lake; 202 once the request is durable."""
    return await forget(reader, settings, user_id)
