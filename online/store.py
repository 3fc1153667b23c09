"""Read side of the Redis layout (see recolake.redis_layout), pipelined and async."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from online.blend import ItemInfo, RecentEvent, decode_item_info, decode_recent, merge_recent
from recolake.publication import decode_items
from recolake.redis_layout import RedisLayout

Items = list[tuple[str, float]]


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


@dataclass
class Snapshot:
    """What the first round trip of a recommendation request returns."""

    publication: Publication
    als: Items | None
    popular: Items
    trending: Items
    recent: list[RecentEvent]
    affinity_payloads: list[str | None] = field(default_factory=list)


class _VersionCache:
    """Published catalog entries and neighbour lists never change within a version, so
    each process keeps what it read (bounded; emptied when the version changes)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.version: str | None = None
        self.data: dict[tuple[str, str], object] = {}

    def for_version(self, version: str) -> dict[tuple[str, str], object]:
        if version != self.version or len(self.data) > self.max_items:
            self.version, self.data = version, {}
        return self.data


class RecommendationStore:
    """What the API needs from Redis. The live pointer is cached for ``pointer_ttl`` seconds:
    a switch becomes visible that much later, and one round trip is saved per request."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: RedisLayout,
        pointer_ttl: float = 1.0,
        cache_items: int = 200_000,
    ):
        self.client = client
        self.layout = layout
        self.pointer_ttl = pointer_ttl
        self._cached: tuple[float, Publication] | None = None
        self._cache = _VersionCache(cache_items)
        self._popular: tuple[str, Items] | None = None

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

    async def snapshot(self, subjects: Sequence[str], als_subject: str | None) -> Snapshot:
        """Round trip 1: the ALS list (of ``als_subject``), recent + affinity of every subject,
        trending, and popular (only on the first request of a version: then cached)."""
        pub = await self.publication()
        layout = self.layout
        need_popular = self._popular is None or self._popular[0] != pub.version
        async with self.client.pipeline(transaction=False) as pipe:
            if als_subject is not None:
                pipe.hget(
                    layout.recs(pub.version, layout.bucket_of(als_subject, pub.buckets)),
                    als_subject,
                )
            pipe.get(layout.trending)
            for subject in subjects:
                pipe.get(layout.recent(subject))
                pipe.get(layout.affinity(subject))
            if need_popular:
                pipe.get(layout.popular(pub.version))
            replies = await pipe.execute()
        replies = list(replies)
        if need_popular:
            self._popular = (pub.version, decode_items(replies.pop()))
        als_payload = replies.pop(0) if als_subject is not None else None
        trending = decode_items(replies.pop(0))
        recents = [decode_recent(replies[2 * i]) for i in range(len(subjects))]
        affinities = [replies[2 * i + 1] for i in range(len(subjects))]
        return Snapshot(
            publication=pub,
            als=decode_items(als_payload) if als_payload is not None else None,
            popular=self._popular[1],  # type: ignore[index]
            trending=trending,
            recent=merge_recent(*recents),
            affinity_payloads=affinities,
        )

    async def details(
        self,
        pub: Publication,
        items: Iterable[str],
        neighbour_keys: Iterable[tuple[str, str]],
    ) -> tuple[dict[str, ItemInfo], dict[tuple[str, str], Items]]:
        """Round trip 2 (skipped when everything is cached): catalog entries of ``items`` and
        the neighbour lists ``(kind, item)``. Unknown items are simply absent."""
        cache = self._cache.for_version(pub.version)
        layout = self.layout
        catalog: dict[str, ItemInfo] = {}
        neighbours: dict[tuple[str, str], Items] = {}
        missing_items: list[str] = []
        missing_nbrs: list[tuple[str, str]] = []
        for item in dict.fromkeys(items):
            hit = cache.get(("i", item), _MISS)
            if hit is _MISS:
                missing_items.append(item)
            elif hit is not None:
                catalog[item] = hit  # type: ignore[assignment]
        for kind, item in dict.fromkeys(neighbour_keys):
            hit = cache.get((kind, item), _MISS)
            if hit is _MISS:
                missing_nbrs.append((kind, item))
            else:
                neighbours[(kind, item)] = hit  # type: ignore[assignment]
        if not missing_items and not missing_nbrs:
            return catalog, neighbours
        async with self.client.pipeline(transaction=False) as pipe:
            for item in missing_items:
                pipe.hget(layout.items(pub.version, layout.bucket_of(item, pub.buckets)), item)
            for kind, item in missing_nbrs:
                bucket = layout.bucket_of(item, pub.buckets)
                pipe.hget(layout.neighbours(pub.version, kind, bucket), item)
            replies = await pipe.execute()
        for item, payload in zip(missing_items, replies, strict=False):
            info = decode_item_info(payload)
            cache[("i", item)] = info
            if info is not None:
                catalog[item] = info
        for key, payload in zip(missing_nbrs, replies[len(missing_items) :], strict=True):
            cache[key] = neighbours[key] = decode_items(payload)
        return catalog, neighbours


_MISS = object()
