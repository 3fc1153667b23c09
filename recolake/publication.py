"""Write a publication to Redis and switch it live atomically.

The writer runs on Spark executors (one Redis pipeline per partition chunk), so a publish
scales with the cluster. New keys carry a staging TTL until the switch makes them
permanent: a publish that dies half-way leaves nothing behind and changes nothing served.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

import redis

from recolake.onlinestore.codecs import decode_items, encode_item_info, encode_items
from recolake.redis_layout import RedisLayout

__all__ = ["decode_items", "encode_item_info", "encode_items"]

STAGING_TTL_SECONDS = 6 * 3600
WRITE_CHUNK = 500


def connect(url: str) -> redis.Redis:
    """A client for a single node, or for a Redis Cluster when the URL says so
    (``redis+cluster://host:port`` or ``?cluster=true``)."""
    if url.startswith("redis+cluster://") or "cluster=true" in url:
        from redis.cluster import RedisCluster

        plain = url.replace("redis+cluster://", "redis://").replace("?cluster=true", "")
        return RedisCluster.from_url(plain, decode_responses=True)  # type: ignore[return-value]
    return redis.Redis.from_url(url, decode_responses=True)


def write_user_lists(
    rows: Iterable[tuple[str, Sequence[tuple[str, float]]]],
    *,
    url: str,
    layout: RedisLayout,
    version: str,
    buckets: int,
) -> int:
    """HSET each user's list into its bucket hash; returns the number of users written."""
    client = connect(url)
    written = 0
    for chunk in _chunks(rows, WRITE_CHUNK):
        pipe = client.pipeline(transaction=False)
        touched: set[str] = set()
        for user_key, items in chunk:
            key = layout.recs(version, layout.bucket_of(user_key, buckets))
            pipe.hset(key, user_key, encode_items(items))
            touched.add(key)
        for key in touched:
            pipe.expire(key, STAGING_TTL_SECONDS)
        pipe.execute()
        written += len(chunk)
    client.close()
    return written


def write_catalog(
    rows: Iterable[tuple[str, str | None, str | None, bool]],
    *,
    url: str,
    layout: RedisLayout,
    version: str,
    buckets: int,
) -> int:
    """HSET each item's (title, category, available) into items(version, bucket)."""
    entries = (
        (layout.items(version, layout.bucket_of(item, buckets)), item, encode_item_info(t, c, a))
        for item, t, c, a in rows
    )
    return _write_hash_entries(entries, url)


def write_neighbours(
    rows: Iterable[tuple[str, str, Sequence[tuple[str, float]]]],
    *,
    url: str,
    layout: RedisLayout,
    version: str,
    buckets: int,
) -> int:
    """HSET each (kind, item, ranked neighbours) into neighbours(version, kind, bucket)."""
    entries = (
        (layout.neighbours(version, kind, layout.bucket_of(item, buckets)), item, encode_items(n))
        for kind, item, n in rows
    )
    return _write_hash_entries(entries, url)


def _write_hash_entries(entries: Iterable[tuple[str, str, str]], url: str) -> int:
    """Pipelined HSETs in chunks; every touched key gets the staging TTL (see go_live)."""
    client = connect(url)
    written = 0
    for chunk in _chunks(entries, WRITE_CHUNK):
        pipe = client.pipeline(transaction=False)
        touched: set[str] = set()
        for key, field, value in chunk:
            pipe.hset(key, field, value)
            touched.add(key)
        for key in touched:
            pipe.expire(key, STAGING_TTL_SECONDS)
        pipe.execute()
        written += len(chunk)
    client.close()
    return written


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def go_live(
    client: redis.Redis,
    *,
    layout: RedisLayout,
    version: str,
    buckets: int,
    popular: Sequence[tuple[str, float]],
    meta: dict[str, str],
    grace_seconds: int,
) -> str | None:
    """Make ``version`` the served one; returns the version it replaced.

    Order matters: the new keys are complete and permanent before the single SET of the live
    pointer; the old version expires only after, so in-flight readers can finish.
    """
    published_at = datetime.now(UTC).isoformat()
    pipe = client.pipeline(transaction=False)
    pipe.set(layout.popular(version), encode_items(popular))
    pipe.hset(
        layout.meta(version),
        mapping={**meta, "version": version, "buckets": str(buckets), "published_at": published_at},
    )
    for key in layout.version_keys(version, buckets):
        pipe.persist(key)
    pipe.execute()
    previous = client.getset(layout.live, version)
    if previous and previous != version:
        old_buckets = int(client.hget(layout.meta(previous), "buckets") or buckets)
        pipe = client.pipeline(transaction=False)
        for key in layout.version_keys(previous, old_buckets):
            pipe.expire(key, max(grace_seconds, 1))
        pipe.execute()
    return previous
