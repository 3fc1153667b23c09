"""The Redis key layout, in one place: the publish job writes it, the API reads it.

A publish writes everything under a fresh version namespace, then flips ``<ns>:live`` to
it with one SET (atomic), then lets the previous version expire after a grace period, so a
reader never sees a half-written publish. Per-user lists live in ``buckets`` hashes per
version (few keys to expire, spread over a Redis Cluster's slots).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: Kinds of published item-item neighbour lists (mirrors features.columns.NEIGHBOUR_KINDS;
#: kept here so the API does not import the Spark side).
NEIGHBOUR_KINDS = ("co_view", "bought_together", "content")


@dataclass(frozen=True)
class RedisLayout:
    namespace: str

    @property
    def live(self) -> str:
        """String key: the version id currently served."""
        return f"{self.namespace}:live"

    def meta(self, version: str) -> str:
        """Hash: model_version, ds, published_at, buckets, users."""
        return f"{self.namespace}:pub:{version}:meta"

    def recs(self, version: str, bucket: int) -> str:
        """Hash: pseudonymised user key -> JSON list of [item_id, score]."""
        return f"{self.namespace}:pub:{version}:recs:{bucket}"

    def popular(self, version: str) -> str:
        """String: JSON list of [item_id, score], most popular first."""
        return f"{self.namespace}:pub:{version}:popular"

    def neighbours(self, version: str, kind: str, bucket: int) -> str:
        """Hash: item_id -> JSON list of [neighbour_id, score]; kind in NEIGHBOUR_KINDS."""
        return f"{self.namespace}:pub:{version}:nbr:{kind}:{bucket}"

    def items(self, version: str, bucket: int) -> str:
        """Hash: item_id -> JSON {"title", "category", "available"} (catalog for reasons and
        filters)."""
        return f"{self.namespace}:pub:{version}:items:{bucket}"

    def version_keys(self, version: str, buckets: int) -> list[str]:
        """Every key a publication may own (used to make it permanent, then expire it)."""
        return [
            self.meta(version),
            self.popular(version),
            *(self.recs(version, b) for b in range(buckets)),
            *(self.items(version, b) for b in range(buckets)),
            *(self.neighbours(version, k, b) for k in NEIGHBOUR_KINDS for b in range(buckets)),
        ]

    # --- real-time features (written by pipelines/streaming.py, not versioned) -------------
    # A "subject" is a pseudonymised user key, or a pseudonymised session key for anonymous
    # visitors (recolake.privacy.session_subject). Values are whole JSON documents written
    # with SET, so replaying a micro-batch writes the same values again (idempotent).

    def recent(self, subject: str) -> str:
        """String: JSON list of {"item_id", "event_type", "ts"}, newest first (last N)."""
        return f"{self.namespace}:rt:recent:{subject}"

    def affinity(self, subject: str) -> str:
        """String: JSON {"items": {item: score}, "categories": {category: score},
        "session_categories": {category: count}, "as_of": epoch seconds}."""
        return f"{self.namespace}:rt:affinity:{subject}"

    @property
    def trending(self) -> str:
        """String: JSON list of [item_id, score] over the sliding window, hottest first."""
        return f"{self.namespace}:rt:trending"

    def stream_batch(self, batch_id: int, query: str = "") -> str:
        """Marker of a micro-batch whose Redis writes completed (written in the same MULTI as
        the documents). ``query`` is the streaming query's id (from its checkpoint), so a new
        checkpoint starting again at batch 0 is not mistaken for a replay."""
        return f"{self.namespace}:rt:batch:{query + ':' if query else ''}{batch_id}"

    @property
    def trending_state(self) -> str:
        """String: JSON {"buckets": {bucket start epoch: {item_id: weight}}}: the sliding
        window behind ``trending`` (internal to the streaming job)."""
        return f"{self.namespace}:rt:trending:state"

    def stream_seen(self, event_id: str) -> str:
        """Marker (with a TTL) of an event id already counted: a client retry with the same
        event_id in a later micro-batch is counted once."""
        return f"{self.namespace}:rt:seen:{event_id}"

    @staticmethod
    def bucket_of(user_key: str, buckets: int) -> int:
        return zlib.crc32(user_key.encode("utf-8")) % buckets
