"""A user's published profile (GET /v1/users/{user_id}/profile), the publication's example
users (GET /v1/users), and erasing a user (DELETE /v1/users/{user_id}): at once in Redis,
durably queued for the lake.

The request is written first (recolake.erasure: fsynced, pseudonymised key only), so an
accepted erasure survives a crash of this process or of Redis; then the user's real-time
documents and published lists are deleted, so the very next request for them is served the
anonymous fallback. The lake (bronze ... gold, id maps, landing files) is erased by
`recolake forget --pending`, which the nightly runs first and which clears Redis once more
after scrubbing the landing files the streaming job may still read.
"""

from __future__ import annotations

import asyncio

from online.services import NotFoundError
from online.services.common import guarded
from recolake.erasure import ErasureRequests
from recolake.onlinestore.erasure import forget_user_async
from recolake.onlinestore.reader import Reader
from recolake.privacy import pseudonymise
from recolake.settings import Settings


async def forget(reader: Reader, settings: Settings, user_id: str) -> dict:
    user_key = pseudonymise(user_id, settings.require_pseudonymisation_key())
    requests = ErasureRequests(settings.erasure_requests_dir)
    await asyncio.to_thread(requests.add, user_key, "api")
    erased = await guarded(
        forget_user_async(reader.client, reader.layout, user_key),
        settings.api_redis_deadline_seconds,
    )
    return {
        "user_id": user_id,
        "online": erased.as_dict(),
        "lake": "queued: `recolake forget --pending` (run first by the nightly) erases the "
        "user's rows, landing files and id maps",
    }


async def profile_of(reader: Reader, settings: Settings, user_id: str) -> dict:
    """The response document of GET /v1/users/{user_id}/profile: the live publication's
    profile of the user (keyed by the pseudonymised id, as the published lists are); 404
    for a user it has none of."""
    user_key = pseudonymise(user_id, settings.require_pseudonymisation_key())
    pub, profile = await guarded(reader.profile(user_key), settings.api_redis_deadline_seconds)
    if profile is None:
        raise NotFoundError(
            f"user {user_id!r} has no profile in the live publication {pub.version} (no "
            f"events before its ds {pub.ds or 'unknown'}, erased, or not a user of this shop)"
        )
    for name, label in (("top_categories", "category"), ("top_brands", "brand")):
        profile[name] = [{label: k, "share": share} for k, share in profile[name]]
    return {"user_id": user_id, "publication": pub.version, **profile}


async def example_users(reader: Reader, settings: Settings, prefix: str, limit: int) -> dict:
    """The response document of GET /v1/users: the live publication's example users whose
    raw id starts with ``prefix`` (most active first, at most ``limit``).

    Why only examples: Redis keys users by an HMAC of their id (recolake.privacy), so the
    users a publication knows cannot be listed, and the raw ids stay in bronze. The publish
    job copies the raw ids of the ``publish_example_users`` most active users (default 20)
    into the publication, so the page can offer known users; that bounded list is all a
    read-token holder learns beyond what the ids they already know return, and an erasure
    removes the user from it at once."""
    pub, users = await guarded(reader.example_users(), settings.api_redis_deadline_seconds)
    matching = [u for u in users if u.startswith(prefix)]
    return {"publication": pub.version, "users": matching[:limit], "examples": len(users)}
