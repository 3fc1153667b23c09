"""Erasure in Redis: every key and hash field of one user, for the right to be forgotten.

What the online store holds about a user, by the key layout (keys.KeyLayout):

- the real-time documents of the subject ``u:<user key>`` (``recent``, ``affinity``):
  deleted;
- the user's published list in every publication still in Redis (the live one and any
  previous one inside its grace period): the field ``<user key>`` of its bucket, deleted
  (counted in ``published_lists``), and so are the user's purchased set and profile
  beside it, and their entry among the publication's example users (the raw id: keys.
  KeyLayout.examples);
- the subject's hidden set (negative feedback): deleted with the real-time documents;
- idempotency records and "seen" markers: named by ``event_token`` = HMAC(subject, event
  id), so no key names the user and none can be found without the client's event ids; they
  hold item ids and times only and expire (``stream_dedupe_ttl_seconds``). Left to expire.

Sync and async flavours (the forget job, the API's DELETE) share the plan; each command
touches one key, so it runs the same on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from recolake.onlinestore.keys import KeyLayout, user_subject


@dataclass(frozen=True)
class Erased:
    """What one erasure removed from Redis."""

    realtime_keys: int
    published_lists: int
    publications: int

    def as_dict(self) -> dict[str, int]:
        return {
            "realtime_keys": self.realtime_keys,
            "published_lists": self.published_lists,
            "publications": self.publications,
        }


def realtime_keys(layout: KeyLayout, user_key: str) -> list[str]:
    subject = user_subject(user_key)
    return [layout.recent(subject), layout.affinity(subject), layout.hidden(subject)]


def meta_pattern(layout: KeyLayout) -> str:
    """SCAN pattern of every publication's meta hash (one per version still in Redis)."""
    return layout.meta("*")


def version_of(layout: KeyLayout, meta_key: str) -> str:
    prefix, suffix = layout.meta("\0").split("\0")
    return meta_key[len(prefix) : len(meta_key) - len(suffix)]


def _lists_of(layout: KeyLayout, user_key: str, metas: Iterable[tuple[str, str | None]]):
    """(recs bucket key) of the user in each publication, from (meta key, buckets)."""
    for meta_key, buckets in metas:
        version = version_of(layout, meta_key)
        yield layout.recs(version, layout.bucket_of(user_key, int(buckets or 1)))


def _purchased_of(layout: KeyLayout, user_key: str, metas: Iterable[tuple[str, str | None]]):
    """(purchased bucket key) of the user in each publication, from (meta key, buckets)."""
    for meta_key, buckets in metas:
        version = version_of(layout, meta_key)
        yield layout.purchased(version, layout.bucket_of(user_key, int(buckets or 1)))


def _profile_of(layout: KeyLayout, user_key: str, metas: Iterable[tuple[str, str | None]]):
    """(profile bucket key) of the user in each publication, from (meta key, buckets)."""
    for meta_key, buckets in metas:
        version = version_of(layout, meta_key)
        yield layout.profiles(version, layout.bucket_of(user_key, int(buckets or 1)))


def _examples_of(layout: KeyLayout, metas: Iterable[tuple[str, str | None]]):
    """(examples hash key) of each publication, from (meta key, buckets)."""
    for meta_key, _ in metas:
        yield layout.examples(version_of(layout, meta_key))


def _fields_of(layout: KeyLayout, user_key: str, metas: list[tuple[str, str | None]]):
    """Every hash beside the lists that holds a field ``user_key`` in some publication."""
    return (
        *_purchased_of(layout, user_key, metas),
        *_profile_of(layout, user_key, metas),
        *_examples_of(layout, metas),
    )


def forget_user(client: redis.Redis, layout: KeyLayout, user_key: str) -> Erased:
    deleted = sum(int(client.delete(k)) for k in realtime_keys(layout, user_key))
    metas = [(m, client.hget(m, "buckets")) for m in client.scan_iter(match=meta_pattern(layout))]
    lists = sum(int(client.hdel(k, user_key)) for k in _lists_of(layout, user_key, metas))
    for key in _fields_of(layout, user_key, metas):
        client.hdel(key, user_key)
    return Erased(deleted, lists, len(metas))


async def forget_user_async(client: aioredis.Redis, layout: KeyLayout, user_key: str) -> Erased:
    deleted = 0
    for key in realtime_keys(layout, user_key):
        deleted += int(await client.delete(key))
    metas = []
    async for meta_key in client.scan_iter(match=meta_pattern(layout)):
        metas.append((meta_key, await client.hget(meta_key, "buckets")))
    lists = 0
    for key in _lists_of(layout, user_key, metas):
        lists += int(await client.hdel(key, user_key))
    for key in _fields_of(layout, user_key, metas):
        await client.hdel(key, user_key)
    return Erased(deleted, lists, len(metas))
