"""The API's async Reader: the read side of the key layout (recolake.onlinestore.keys),
pipelined, with per-process caches of what never changes within a publication.

Subjects: the published ALS lists are keyed by the bare pseudonymised user key; the real-time
documents (recent, affinity) by the prefixed subjects ``user_subject(user_key)`` and
``session_subject(session_id, key)`` the streaming job writes.

Errors are left to the caller: ``NothingPublishedError`` when no publication is live, and
redis-py's ``RedisError`` (timeouts, refused connections, an exhausted pool) when Redis does
not answer within the client's timeouts (``connect_async`` with ``RedisTimeouts``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from recolake.onlinestore.catalog import LIVE_NEIGHBOUR_KIND, merged_info, overlay_bucket
from recolake.onlinestore.codecs import (
    COMPACT_CODEC_VERSION,
    INDEX_BLOCK,
    as_bytes,
    decode_example_users,
    decode_hidden,
    decode_index_block,
    decode_items,
    decode_positions,
    decode_profile,
    decode_ranked_positions,
)
from recolake.onlinestore.keys import KeyLayout
from recolake.onlinestore.meta import PublicationMeta
from recolake.onlinestore.stream import StreamProgress, decode_progress
from recolake.onlinestore.values import ItemInfo, RecentEvent, decode_item_info, decode_recent
from recolake.onlinestore.values import merge_recent as _merge_recent

#: Ranked [item_id, score] pairs, as published (JSON arrays, kept as decoded lists).
Items = list

_loads = json.loads


#: One publication as the API reads it: the typed meta hash (version, buckets, codec,
#: model_version, ds, the blend ``weights`` and where they came from).
Publication = PublicationMeta

#: Publications whose per-version caches a process keeps at once: the live one, plus those an
#: experiment's variants serve (recolake.experiments), least recently used dropped first.
CACHED_VERSIONS = 4


class NothingPublishedError(LookupError):
    """No publish is live (never published, or Redis lost its data: re-run publish)."""


@dataclass
class Snapshot:
    """What the first round trip of a recommendation request returns."""

    publication: Publication
    als: Items | None
    popular: Items
    trending: Items
    recent: list[RecentEvent]
    affinity_payloads: list[str | None] = field(default_factory=list)
    #: The publication asked for when it is not in Redis (the live one was read instead).
    fallback_from: str | None = None
    #: Items the user bought (the publication's purchased set; codec 2 publications only).
    purchased: frozenset[str] = frozenset()
    #: Items any of the subjects hid or disliked (the streaming job's hidden sets).
    hidden: frozenset[str] = frozenset()


class _VersionCache:
    """Published catalog entries and neighbour lists never change within a version, so
    each process keeps what it read (bounded; one per version: ``_PerVersion``). ``items``
    maps an item to its entry, or None when the publication has none."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.items: dict[str, ItemInfo | None] = {}
        self.neighbours: dict[tuple[str, str], Items] = {}

    def bounded(self) -> _VersionCache:
        if len(self.items) + len(self.neighbours) > self.max_items:
            self.items, self.neighbours = {}, {}
        return self


class _PerVersion(dict):
    """version -> value, the ``CACHED_VERSIONS`` most recently used only (an A/B test over two
    publications must not empty one cache on every request of the other)."""

    def get_or_make(self, version: str, make):
        value = self.pop(version, None)
        if value is None:
            value = make()
        self[version] = value  # most recent last
        while len(self) > CACHED_VERSIONS:
            del self[next(iter(self))]
        return value


class Reader:
    """What the API needs from Redis. The live pointer is cached for ``pointer_ttl`` seconds:
    a switch becomes visible that much later, and one round trip is saved per request."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: KeyLayout,
        pointer_ttl: float = 1.0,
        cache_items: int = 200_000,
    ):
        self.client = client
        self.layout = layout
        self.pointer_ttl = pointer_ttl
        self.cache_items = cache_items
        self._cached: tuple[float, Publication] | None = None
        #: version -> (read at, its meta or None when Redis has none): pinned publications
        self._pinned: dict[str, tuple[float, Publication | None]] = {}
        self._caches = _PerVersion()  # version -> _VersionCache
        self._popular = _PerVersion()  # version -> popular list
        self._last_popular: tuple[str, Items] | None = None
        self._trending: tuple[str | None, Items] = (None, [])
        #: version -> (block -> item ids) of the publication's item index (codec 2 lists)
        self._index = _PerVersion()
        #: The live catalog overlay's version (catalog.py) the cached entries were read at.
        self._catalog_version: str | None = None

    async def ping(self, deadline: float) -> bool:
        """PING within ``deadline`` seconds (asyncio.TimeoutError past it)."""
        return bool(await asyncio.wait_for(self.client.ping(), deadline))

    async def stream_progress(self) -> dict[str, StreamProgress]:
        """The streaming job's last batch per query (stream.write_progress): one HGETALL."""
        return decode_progress(await self.client.hgetall(self.layout.stream_progress))

    def forget_publication(self) -> None:
        """Drop the cached live pointer (the next read asks Redis again)."""
        self._cached = None

    async def publication(self) -> Publication:
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.pointer_ttl:
            return self._cached[1]
        version = await self.client.get(self.layout.live)
        if not version:
            self._cached = None
            raise NothingPublishedError(
                "nothing published: no recommendations are live in Redis (run `recolake "
                "publish`, or `recolake republish` after a Redis restart)"
            )
        meta = await self.client.hgetall(self.layout.meta(version))
        publication = Publication.from_hash(version, meta)
        self._cached = (now, publication)
        return publication

    async def pinned_publication(self, version: str) -> Publication | None:
        """The meta of a publication that may not be live (an experiment's variant serves
        it), or None when Redis does not hold it (expired, never published). Cached for
        ``pointer_ttl`` like the live pointer: one round trip per that long, not per request."""
        now = time.monotonic()
        cached = self._pinned.get(version)
        if cached is not None and now - cached[0] < self.pointer_ttl:
            return cached[1]
        meta = await self.client.hgetall(self.layout.meta(version))
        publication = Publication.from_hash(version, meta) if meta else None
        if len(self._pinned) > CACHED_VERSIONS:
            self._pinned.clear()
        self._pinned[version] = (now, publication)
        return publication

    async def serving(self, version: str | None = None) -> tuple[Publication, str | None]:
        """The publication to read: ``version`` if Redis holds it, else the live one; and
        the version asked for when it fell back (None when it did not)."""
        if version is not None:
            live = self._cached[1] if self._cached else None
            if live is not None and live.version == version:
                return live, None
            pinned = await self.pinned_publication(version)
            if pinned is not None:
                return pinned, None
            return await self.publication(), version
        return await self.publication(), None

    async def snapshot(
        self, user_key: str | None, subjects: Sequence[str], publication: str | None = None
    ) -> Snapshot:
        """Round trip 1: the published ALS list and purchased set of ``user_key`` (bare
        pseudonymised key), recent + affinity + hidden set of every real-time subject
        (prefixed), trending, and popular (only on the first request of a version: then
        cached). ``publication``: read that version
        instead of the live one, if Redis holds it (``Snapshot.fallback_from`` says when not)."""
        pub, fallback_from = await self.serving(publication)
        layout = self.layout
        popular = self._popular.get(pub.version)
        need_popular = popular is None
        async with self.client.pipeline(transaction=False) as pipe:
            if user_key is not None:
                pipe.hget(
                    layout.recs(pub.version, layout.bucket_of(user_key, pub.buckets)), user_key
                )
            pipe.get(layout.trending)
            pipe.get(layout.catalog_version)
            for subject in subjects:
                pipe.get(layout.recent(subject))
                pipe.get(layout.affinity(subject))
            for subject in subjects:
                pipe.get(layout.hidden(subject))
            wants_purchased = user_key is not None and pub.codec == COMPACT_CODEC_VERSION
            if wants_purchased:
                bucket = layout.bucket_of(user_key, pub.buckets)  # type: ignore[arg-type]
                pipe.hget(layout.purchased(pub.version, bucket), user_key)
            if need_popular:
                pipe.get(layout.popular(pub.version))
            replies = await pipe.execute()
        replies = list(replies)
        if need_popular:
            popular = self._popular.get_or_make(pub.version, lambda: decode_items(replies.pop()))
        self._last_popular = (pub.version, popular)
        als_payload = replies.pop(0) if user_key is not None else None
        trending_payload = replies.pop(0)
        self.observe_catalog(replies.pop(0))
        if trending_payload != self._trending[0]:  # changes once per micro-batch at most
            self._trending = (trending_payload, _loads(trending_payload or "[]"))
        recents = [decode_recent(replies[2 * i]) for i in range(len(subjects))]
        affinities = [replies[2 * i + 1] for i in range(len(subjects))]
        n = len(subjects)
        hidden = frozenset(
            i for payload in replies[2 * n : 3 * n] for i, _ in decode_hidden(payload)
        )
        bought_payload = replies[3 * n] if wants_purchased else None
        bought = decode_positions(as_bytes(bought_payload)) if bought_payload else []
        if als_payload is None:
            als = None
            if bought:  # the index blocks of the purchases only
                await self._positions_to_items(pub, [], bought)
        elif pub.codec == COMPACT_CODEC_VERSION:
            als = await self._positions_to_items(
                pub, decode_ranked_positions(as_bytes(als_payload)), bought
            )
        else:
            als = _loads(als_payload)
        purchased = self._ids_at(pub, bought) if bought else frozenset()
        return Snapshot(
            publication=pub,
            als=als,
            popular=popular,  # type: ignore[arg-type]
            trending=self._trending[1],
            recent=_merge_recent(*recents),
            affinity_payloads=affinities,
            fallback_from=fallback_from,
            purchased=purchased,
            hidden=hidden,
        )

    async def _positions_to_items(
        self, pub: Publication, ranked: list[tuple[int, float]], also: Sequence[int] = ()
    ) -> Items:
        """[item_id, score] pairs of a compact list: positions looked up in the item index,
        whose blocks this process reads once per publication (a round trip only for a block
        it has not seen yet); the blocks of the positions ``also`` are read in the same trip
        (a purchased set: ``_ids_at``)."""
        blocks = self._index.get_or_make(pub.version, dict)
        wanted = {p // INDEX_BLOCK for p, _ in ranked} | {p // INDEX_BLOCK for p in also}
        missing = sorted(wanted - blocks.keys())
        if missing:
            async with self.client.pipeline(transaction=False) as pipe:
                for block in missing:
                    pipe.get(self.layout.item_index(pub.version, block))
                replies = await pipe.execute()
            for block, payload in zip(missing, replies, strict=True):
                blocks[block] = decode_index_block(payload)
        return [[blocks[p // INDEX_BLOCK][p % INDEX_BLOCK], round(score, 6)] for p, score in ranked]

    async def profile(self, user_key: str) -> tuple[Publication, dict | None]:
        """The live publication and the profile of ``user_key`` (bare pseudonymised key) in
        it (codecs.decode_profile), or None when it has none: one HGET (the live pointer is
        cached)."""
        pub = await self.publication()
        bucket = self.layout.bucket_of(user_key, pub.buckets)
        payload = await self.client.hget(self.layout.profiles(pub.version, bucket), user_key)
        return pub, decode_profile(payload)

    async def example_users(self) -> tuple[Publication, list[str]]:
        """The live publication and the raw ids of its example users, most active first
        (codecs.decode_example_users): one HGETALL of a hash of at most
        ``publish_example_users`` fields, never cached, so an erased user is gone at once."""
        pub = await self.publication()
        entries = await self.client.hgetall(self.layout.examples(pub.version))
        return pub, decode_example_users(entries or {})

    def observe_catalog(self, version: str | bytes | None) -> None:
        """The overlay's version as just read: when it moved, every cached catalog entry
        (of every publication) may be stale, so they are dropped and read again."""
        version = version.decode() if isinstance(version, bytes) else version
        if version != self._catalog_version:
            self._catalog_version = version
            for cache in self._caches.values():
                cache.items = {}
                # an item without content neighbours may have got live ones (PUT)
                cache.neighbours = {k: v for k, v in cache.neighbours.items() if v}

    async def refresh_catalog(self) -> None:
        """Read the overlay's version (one GET): for requests that need no snapshot
        (similar items), whose warm path would otherwise not ask Redis at all."""
        self.observe_catalog(await self.client.get(self.layout.catalog_version))

    def _ids_at(self, pub: Publication, positions: Sequence[int]) -> frozenset[str]:
        """The item ids at ``positions`` of the index (blocks already read); a position past
        the index is skipped (a set from another publication's index would be wrong anyway)."""
        blocks = self._index.get_or_make(pub.version, dict)
        out = set()
        for p in positions:
            block = blocks.get(p // INDEX_BLOCK)
            if block is not None and p % INDEX_BLOCK < len(block):
                out.add(block[p % INDEX_BLOCK])
        return frozenset(out)

    def cached_popular(self) -> tuple[str, Items] | None:
        """(version, popular list) this process last read, if any."""
        return self._last_popular

    async def details(
        self,
        pub: Publication,
        items: Iterable[str],
        neighbour_keys: Iterable[tuple[str, str]],
    ) -> tuple[Mapping[str, ItemInfo | None], Mapping[tuple[str, str], Items]]:
        """Round trip 2, only for what this process has not cached yet: catalog entries of
        ``items`` (the live overlay's over the published ones: catalog.py) and the neighbour
        lists ``(kind, item)`` (content: the overlay's live list of an item the publication
        has none for). Returns read-only views covering
        at least those (an item the publication does not know maps to None)."""
        cache = self._caches.get_or_make(
            pub.version, lambda: _VersionCache(self.cache_items)
        ).bounded()
        known, lists = cache.items, cache.neighbours
        missing_items = [i for i in items if i not in known]
        missing_nbrs = [key for key in neighbour_keys if key not in lists]
        if not missing_items and not missing_nbrs:
            return known, lists
        missing_items = list(dict.fromkeys(missing_items))
        missing_nbrs = list(dict.fromkeys(missing_nbrs))
        layout = self.layout
        async with self.client.pipeline(transaction=False) as pipe:
            for item in missing_items:
                pipe.hget(layout.items(pub.version, layout.bucket_of(item, pub.buckets)), item)
                pipe.hget(layout.catalog_items(overlay_bucket(item)), item)
            for kind, item in missing_nbrs:
                bucket = layout.bucket_of(item, pub.buckets)
                pipe.hget(layout.neighbours(pub.version, kind, bucket), item)
                if kind == LIVE_NEIGHBOUR_KIND:  # an item PUT since: its live neighbours
                    pipe.hget(layout.catalog_neighbours(overlay_bucket(item)), item)
            replies = await pipe.execute()
        for n, item in enumerate(missing_items):  # published entry, then the overlay's
            known[item] = merged_info(decode_item_info(replies[2 * n]), replies[2 * n + 1], item)
        rest = iter(replies[2 * len(missing_items) :])
        for key in missing_nbrs:
            payload = next(rest)
            if key[0] == LIVE_NEIGHBOUR_KIND:
                live = next(rest)
                payload = payload or live  # the publication's list when it has one
            # tuples of atomic values: the garbage collector stops scanning them (a big
            # cache of lists would make every full collection a latency spike)
            lists[key] = tuple(map(tuple, _loads(payload))) if payload else ()
        return known, lists
