"""Read side of the Redis layout (see recolake.redis_layout), pipelined and async."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from recolake.publication import decode_items
from recolake.redis_layout import RedisLayout


def connect(url: str) -> aioredis.Redis:
    """Single node by default; Redis Cluster for ``redis+cluster://`` or ``?cluster=true``."""
    if url.startswith("redis+cluster://") or "cluster=true" in url:
        from redis.asyncio.cluster import RedisCluster

        plain = url.replace("redis+cluster://", "redis://").replace("?cluster=true", "")
        return RedisCluster.from_url(plain, decode_responses=True)  # type: ignore[return-value]
    return aioredis.Redis.from_url(url, decode_responses=True)


@dataclass(frozen=True)
class Publication:
    version: str
    model_version: str | None
    buckets: int


class NothingPublishedError(LookupError):
    """No publish has gone live yet."""


class RecommendationStore:
    """What the API needs from Redis. The live pointer is cached for ``pointer_ttl`` seconds:
    a switch becomes visible that much later, and one round trip is saved per request."""

    def __init__(self, client: aioredis.Redis, layout: RedisLayout, pointer_ttl: float = 1.0):
        self.client = client
        self.layout = layout
        self.pointer_ttl = pointer_ttl
        self._cached: tuple[float, Publication] | None = None

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def publication(self) -> Publication:
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.pointer_ttl:
            return self._cached[1]
        version = await self.client.get(self.layout.live)
        if not version:
            raise NothingPublishedError("no recommendations have been published yet")
        meta = await self.client.hgetall(self.layout.meta(version))
        publication = Publication(
            version=version,
            model_version=meta.get("model_version"),
            buckets=int(meta.get("buckets", 1)),
        )
        self._cached = (now, publication)
        return publication

    async def user_and_popular(
        self, user_key: str
    ) -> tuple[Publication, list[tuple[str, float]] | None, list[tuple[str, float]]]:
        """The user's list (None if unknown) and the popular list, in one round trip."""
        pub = await self.publication()
        bucket = self.layout.bucket_of(user_key, pub.buckets)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(self.layout.recs(pub.version, bucket), user_key)
            pipe.get(self.layout.popular(pub.version))
            user_payload, popular_payload = await pipe.execute()
        user = decode_items(user_payload) if user_payload is not None else None
        return pub, user, decode_items(popular_payload)
