"""The Redis key layout, in one place: the publish job writes it, the API reads it.

A publish writes everything under a fresh version namespace, then flips ``<ns>:live`` to
it with one SET (atomic), then lets the previous version expire after a grace period, so a
reader never sees a half-written publish. Per-user lists live in ``buckets`` hashes per
version (few keys to expire, spread over a Redis Cluster's slots).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


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

    def version_keys(self, version: str, buckets: int) -> list[str]:
        return [
            self.meta(version),
            self.popular(version),
            *(self.recs(version, b) for b in range(buckets)),
        ]

    @staticmethod
    def bucket_of(user_key: str, buckets: int) -> int:
        return zlib.crc32(user_key.encode("utf-8")) % buckets
