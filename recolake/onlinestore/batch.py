"""BatchWriter: the publish side of the online-store contract.

A publication is written under a fresh version namespace (``KeyLayout`` keys), every key with
the staging TTL (``TtlPolicy.staging_seconds``), from the Spark executors: one writer is
pickled into the tasks and each partition opens its own client (``connect`` with the jobs'
timeouts). ``go_live`` then makes the keys permanent, writes the popular list and the meta
(``meta.PublicationMeta``: the codec readers must decode with, the blend weights the API ranks
with), and switches the live pointer with one SET;
the replaced version expires after the grace period. A publish that dies before ``go_live``
changes nothing served and its keys expire by themselves.

Nothing here needs multi-key transactions, so it works the same on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from recolake.onlinestore.catalog import encode_term, term_bucket
from recolake.onlinestore.client import RedisTimeouts, connect
from recolake.onlinestore.codecs import (
    CODEC_VERSION,
    COMPACT_CODEC_VERSION,
    INDEX_BLOCK,
    encode_example_user,
    encode_index_block,
    encode_item_info,
    encode_items,
    encode_positions,
    encode_profile,
    encode_ranked_positions,
)
from recolake.onlinestore.keys import KeyLayout
from recolake.onlinestore.meta import TYPED_FIELDS, PublicationMeta
from recolake.onlinestore.ttl import TtlPolicy
from recolake.ranking import Weights

WRITE_CHUNK = 500

#: One published catalog entry: (item_id, title, category, available) or the same + price.
CatalogRow = (
    tuple[str, str | None, str | None, bool]
    | tuple[str, str | None, str | None, bool, float | None]
)

#: Meta fields go_live sets itself (a caller's meta cannot override them).
RESERVED_META = tuple(f for f in TYPED_FIELDS if f not in ("model_version", "ds"))


@dataclass(frozen=True)
class BatchWriter:
    """Writes one publication ``version``. Plain fields only: it is shipped to executors."""

    url: str
    layout: KeyLayout
    version: str
    buckets: int
    timeouts: RedisTimeouts = field(default_factory=RedisTimeouts)
    ttl: TtlPolicy = field(default_factory=TtlPolicy)
    chunk: int = WRITE_CHUNK

    @classmethod
    def from_settings(cls, settings, version: str) -> BatchWriter:
        return cls(
            url=settings.redis_url,
            layout=KeyLayout(settings.redis_namespace),
            version=version,
            buckets=settings.redis_buckets,
            timeouts=RedisTimeouts.for_jobs(settings),
            ttl=TtlPolicy.from_settings(settings),
        )

    def connect(self) -> redis.Redis:
        return connect(self.url, self.timeouts)

    # --- staged writes (executors) --------------------------------------------------------

    def write_user_lists(self, rows: Iterable[tuple[str, Sequence[tuple[str, float]]]]) -> int:
        """Each user's ranked (item, score) list into recs(version, bucket); returns users."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (layout.recs(version, layout.bucket_of(user, buckets)), user, encode_items(items))
            for user, items in rows
        )

    def write_user_positions(
        self, rows: Iterable[tuple[str, Sequence[int], Sequence[float]]], width: int
    ) -> int:
        """Compact form (codec 2) of each user's list: positions in the publication's item
        index (``write_item_index``) and scores; ~4x smaller than the JSON form."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (
                layout.recs(version, layout.bucket_of(user, buckets)),
                user,
                encode_ranked_positions(positions, scores, width),
            )
            for user, positions, scores in rows
        )

    def write_user_purchased(self, rows: Iterable[tuple[str, Sequence[int]]], width: int) -> int:
        """Each user's purchased items (positions in the item index, as the compact lists)
        into purchased(version, bucket): the API drops them from every source."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (
                layout.purchased(version, layout.bucket_of(user, buckets)),
                user,
                encode_positions(positions, width),
            )
            for user, positions in rows
        )

    def write_user_profiles(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Each user's profile (codecs.PROFILE_FIELDS, from gold.user_profile) into
        profiles(version, bucket): GET /v1/users/{user_id}/profile reads it."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (layout.profiles(version, layout.bucket_of(user, buckets)), user, encode_profile(p))
            for user, p in rows
        )

    def write_example_users(self, rows: Iterable[tuple[str, str]]) -> int:
        """The publication's example users, (user key, raw id) most active first, into
        examples(version): GET /v1/users lists them (the page's user search)."""
        key = self.layout.examples(self.version)
        return self._write_hash_entries(
            (key, user_key, encode_example_user(user_id, rank))
            for rank, (user_key, user_id) in enumerate(rows, start=1)
        )

    def write_item_index(self, item_ids: Iterable[str]) -> int:
        """The publication's item index, ids in position order, in blocks of INDEX_BLOCK;
        returns the number of blocks (pass it to go_live)."""
        layout, version = self.layout, self.version
        client = self.connect()
        blocks = 0
        try:
            pipe = client.pipeline(transaction=False)
            for block in _chunks(item_ids, INDEX_BLOCK):
                key = layout.item_index(version, blocks)
                pipe.set(key, encode_index_block(block), ex=self.ttl.staging_seconds)
                blocks += 1
                if blocks % 16 == 0:
                    pipe.execute()
                    pipe = client.pipeline(transaction=False)
            pipe.execute()
        finally:
            client.close()
        return blocks

    def write_catalog(self, rows: Iterable[CatalogRow]) -> int:
        """Each item's (item_id, title, category, available[, price]) into items(version,
        bucket); rows without a price (or a None one) publish none."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (
                layout.items(version, layout.bucket_of(row[0], buckets)),
                row[0],
                encode_item_info(row[1], row[2], row[3], row[4] if len(row) > 4 else None),
            )
            for row in rows
        )

    def write_neighbours(self, rows: Iterable[tuple[str, str, Sequence[tuple[str, float]]]]) -> int:
        """Each (kind, item, ranked neighbours) into neighbours(version, kind, bucket)."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (layout.neighbours(version, k, layout.bucket_of(i, buckets)), i, encode_items(n))
            for k, i, n in rows
        )

    def write_content_terms(
        self, rows: Iterable[tuple[str, float, Sequence[tuple[str, float]]]]
    ) -> int:
        """Each (term, idf, top items by weight) of the content model into
        content_terms(version, bucket): what PUT /v1/items scores new items with."""
        layout, version, buckets = self.layout, self.version, self.buckets
        return self._write_hash_entries(
            (layout.content_terms(version, term_bucket(t, buckets)), t, encode_term(idf, items))
            for t, idf, items in rows
        )

    def _write_hash_entries(self, entries: Iterable[tuple[str, str, str]]) -> int:
        """Pipelined HSETs in chunks; every touched key (re)gets the staging TTL, so it is
        never permanent before go_live."""
        client = self.connect()
        written = 0
        try:
            for chunk in _chunks(entries, self.chunk):
                pipe = client.pipeline(transaction=False)
                touched: set[str] = set()
                for key, field_, value in chunk:
                    pipe.hset(key, field_, value)
                    touched.add(key)
                for key in touched:
                    pipe.expire(key, self.ttl.staging_seconds)
                pipe.execute()
                written += len(chunk)
        finally:
            client.close()
        return written

    # --- the switch (driver) --------------------------------------------------------------

    def go_live(
        self,
        *,
        popular: Sequence[tuple[str, float]],
        meta: Mapping[str, str],
        grace_seconds: int,
        client: redis.Redis | None = None,
        index_blocks: int = 0,
        index_width: int = 0,
        weights: Weights | None = None,
    ) -> str | None:
        """Make this version the served one; returns the version it replaced.

        ``meta``: ``model_version``, ``ds`` and informational counts; ``weights``: the blend
        weights chosen for the model (None: the ranker's defaults, recorded as such).
        Order matters: the new keys are complete and permanent before the single SET of the
        live pointer; the old version expires only after, so in-flight readers can finish.
        ``client``: an open client to use (and leave open); by default one is opened here.
        """
        layout, version = self.layout, self.version
        fields = PublicationMeta(
            version=version,
            buckets=self.buckets,
            model_version=_text(meta.get("model_version")),
            ds=_text(meta.get("ds")),
            published_at=datetime.now(UTC).isoformat(),
            codec=COMPACT_CODEC_VERSION if index_blocks else CODEC_VERSION,
            index_blocks=index_blocks,
            index_width=index_width,
            weights=weights if weights is not None else Weights(),
            weights_source="evaluation" if weights is not None else "default",
            stats={k: str(v) for k, v in meta.items() if k not in TYPED_FIELDS},
        ).to_hash()
        own = client is None
        client = client if client is not None else self.connect()
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(layout.popular(version), encode_items(popular))
            pipe.hset(layout.meta(version), mapping=fields)
            for key in layout.version_keys(version, self.buckets, index_blocks):
                pipe.persist(key)
            pipe.execute()
            previous = client.set(layout.live, version, get=True)
            if previous and previous != version:
                old = client.hmget(layout.meta(previous), ["buckets", "index_blocks"])
                old_buckets = int(old[0] or self.buckets)
                pipe = client.pipeline(transaction=False)
                for key in layout.version_keys(previous, old_buckets, int(old[1] or 0)):
                    pipe.expire(key, max(grace_seconds, 1))
                pipe.execute()
        finally:
            if own:
                client.close()
        return previous


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
