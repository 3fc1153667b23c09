"""/v1/users/{user_id}: the published profile (read token) and the right to erasure (write
token); the logic is online/services/users.py."""

from __future__ import annotations

from fastapi import APIRouter, status

from online.deps import ReadAuth, ReaderDep, SettingsDep, WriteAuth
from online.routers.params import READ_ERRORS, SingleValued
from online.routers.recommendations import UserId
from online.schemas import ErasureResponse, ErrorResponse, UserProfileResponse
from online.services.users import forget, profile_of

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


#: Reads of /v1/users (a router of its own: the erasure router above needs the write token).
profiles = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[ReadAuth, SingleValued])


@profiles.get(
    "/{user_id}/profile",
    response_model=UserProfileResponse,
    responses={
        **READ_ERRORS,
        404: {
            "model": ErrorResponse,
            "description": "The live publication has no profile of this user (no events "
            "before its ds, erased, or unknown).",
        },
    },
    summary="The user's profile: RFM with segment, affinities, price band, hours",
)
async def user_profile(user_id: UserId, reader: ReaderDep, settings: SettingsDep) -> dict:
    """The shop's view of one customer as of the live publication's ds (gold.user_profile,
    published with it): recency, frequency, monetary value and their 1-5 scores with a
    named segment, category and brand affinity, price band, preferred hours (UTC)."""
    return await profile_of(reader, settings, user_id)
