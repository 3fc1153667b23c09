"""/v1/users: the publication's example users and a user's published profile (read token),
and the right to erasure (write token); the logic is online/services/users.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from online.deps import ReadAuth, ReaderDep, SettingsDep, WriteAuth
from online.routers.params import MAX_ID_LENGTH, READ_ERRORS, SingleValued
from online.routers.recommendations import UserId
from online.schemas import (
    ErasureResponse,
    ErrorResponse,
    ExampleUsersResponse,
    UserProfileResponse,
)
from online.services.users import example_users, forget, profile_of

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


Prefix = Annotated[
    str,
    Query(max_length=MAX_ID_LENGTH, description="Only ids starting with this (case-sensitive)."),
]
Limit = Annotated[int, Query(ge=1, le=100, description="How many ids to return at most.")]


@profiles.get(
    "",
    response_model=ExampleUsersResponse,
    responses=READ_ERRORS,
    summary="Example users of the live publication (search by id prefix)",
)
async def list_example_users(
    reader: ReaderDep, settings: SettingsDep, prefix: Prefix = "", limit: Limit = 20
) -> dict:
    """Raw ids of the live publication's example users (the most active users of its data,
    at most `RECOLAKE_PUBLISH_EXAMPLE_USERS`, default 20; the page's user search) starting
    with `prefix`, most active first. Never the whole user base: Redis keys users by a
    pseudonym, and these examples are the only raw ids a publication carries (an erased user
    leaves the list at once)."""
    return await example_users(reader, settings, prefix, limit)
