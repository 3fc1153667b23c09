"""The Redis key layout, in one place: the publish job writes it, the streaming job keeps the
real-time part, the API reads it.

A publish writes everything under a fresh version namespace, then flips ``<ns>:live`` to it
with one SET (atomic), then lets the previous version expire after a grace period, so a
reader never sees a half-written publish. Per-user lists live in ``buckets`` hashes per
version (few keys to expire, spread over a Redis Cluster's slots).

Real-time keys are per *subject*: a pseudonymised user key (``u:<hmac>``) or a pseudonymised
anonymous session (``s:<hmac>``). The prefix decides the TTL (ttl.TtlPolicy): sessions live
hours, users days. Client event ids never appear in key names: ``event_token`` hashes them,
with the subject, under the pseudonymisation key.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass

from recolake.privacy import pseudonymise

#: Kinds of published item-item neighbour lists (mirrored by features.columns.NEIGHBOUR_KINDS).
NEIGHBOUR_KINDS = ("co_view", "bought_together", "content")

USER_PREFIX = "u:"
SESSION_PREFIX = "s:"


def user_subject(user_key: str) -> str:
    """The real-time subject of a user, from its pseudonymised key."""
    return USER_PREFIX + user_key


def session_subject(session_id: str, key: bytes) -> str:
    """The real-time subject of an anonymous session, from the raw session id: pseudonymised
    in a namespace of its own, so a session id can never collide with a user id."""
    return SESSION_PREFIX + pseudonymise(f"session:{session_id}", key)


def subject_kind(subject: str) -> str:
    """'user' or 'session' (what decides a real-time key's TTL)."""
    if subject.startswith(USER_PREFIX):
        return "user"
    if subject.startswith(SESSION_PREFIX):
        return "session"
    raise ValueError(f"not a real-time subject: {subject[:16]!r}")


def event_token(subject: str, event_id: str, key: bytes) -> str:
    """A client's idempotency key, scoped to its subject and hashed: the same ``event_id``
    from another user is another event, and raw ids stay out of key names."""
    digest = hmac.new(key, f"{subject}\0{event_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class KeyLayout:
    namespace: str

    # --- publications (BatchWriter writes, Reader reads) ----------------------------------

    @property
    def live(self) -> str:
        """String key: the version id currently served."""
        return f"{self.namespace}:live"

    def meta(self, version: str) -> str:
        """Hash: model_version, ds, published_at, buckets, users, codec, ..."""
        return f"{self.namespace}:pub:{version}:meta"

    def recs(self, version: str, bucket: int) -> str:
        """Hash: pseudonymised user key -> encoded list of (item_id, score)."""
        return f"{self.namespace}:pub:{version}:recs:{bucket}"

    def popular(self, version: str) -> str:
        """String: encoded list of (item_id, score), most popular first."""
        return f"{self.namespace}:pub:{version}:popular"

    def neighbours(self, version: str, kind: str, bucket: int) -> str:
        """Hash: item_id -> encoded list of (neighbour_id, score); kind in NEIGHBOUR_KINDS."""
        return f"{self.namespace}:pub:{version}:nbr:{kind}:{bucket}"

    def items(self, version: str, bucket: int) -> str:
        """Hash: item_id -> encoded {"title", "category", "available"[, "price"]}."""
        return f"{self.namespace}:pub:{version}:items:{bucket}"

    def content_terms(self, version: str, bucket: int) -> str:
        """Hash: term -> encoded {"idf", "items": [[item_id, weight], ...]} of the content
        model (gold.item_content_terms): what PUT /v1/items scores a new item's text with."""
        return f"{self.namespace}:pub:{version}:terms:{bucket}"

    def item_index(self, version: str, block: int) -> str:
        """String: the item ids at positions ``block * INDEX_BLOCK ...`` of the publication's
        item index (codecs.encode_index_block): compact user lists hold positions into it."""
        return f"{self.namespace}:pub:{version}:index:{block}"

    def purchased(self, version: str, bucket: int) -> str:
        """Hash: pseudonymised user key -> the items the user bought, as positions in the
        item index (codecs.encode_positions); codec 2 publications only."""
        return f"{self.namespace}:pub:{version}:bought:{bucket}"

    def profiles(self, version: str, bucket: int) -> str:
        """Hash: pseudonymised user key -> the user's profile (gold.user_profile as of the
        publication's ds, codecs.encode_profile): GET /v1/users/{user_id}/profile."""
        return f"{self.namespace}:pub:{version}:profile:{bucket}"

    def examples(self, version: str) -> str:
        """Hash: pseudonymised user key -> {"user_id": raw id, "rank": 1..n} of the
        publication's example users (codecs.encode_example_user; the most active first):
        the one place raw user ids are in Redis, bounded by ``publish_example_users``, so a
        page can offer known users (GET /v1/users); keyed by the pseudonym so an erasure
        removes the user's entry without knowing the raw id."""
        return f"{self.namespace}:pub:{version}:examples"

    def version_keys(self, version: str, buckets: int, index_blocks: int = 0) -> list[str]:
        """Every key a publication may own (used to make it permanent, then expire it)."""
        return [
            self.meta(version),
            self.popular(version),
            *(self.recs(version, b) for b in range(buckets)),
            *(self.purchased(version, b) for b in range(buckets)),
            *(self.items(version, b) for b in range(buckets)),
            *(self.neighbours(version, k, b) for k in NEIGHBOUR_KINDS for b in range(buckets)),
            *(self.item_index(version, b) for b in range(index_blocks)),
            *(self.content_terms(version, b) for b in range(buckets)),
            *(self.profiles(version, b) for b in range(buckets)),
            self.examples(version),
        ]

    # --- the live catalog overlay (PUT /v1/items writes, Reader reads; catalog.py) --------
    # Not versioned by publication: an update stays over every publication until the nightly
    # that includes it has been published (the lake gets it through the event log).

    @property
    def catalog_version(self) -> str:
        """String (INCR counter): bumped after every overlay write; the Reader reads it in
        the snapshot's pipeline and drops its cached catalog entries when it changes."""
        return f"{self.namespace}:catalog:version"

    def catalog_items(self, bucket: int) -> str:
        """Hash: item_id -> encoded live entry (catalog.CatalogEntry), ``bucket`` of
        catalog.OVERLAY_BUCKETS (spread over a Redis Cluster's slots)."""
        return f"{self.namespace}:catalog:items:{bucket}"

    def catalog_neighbours(self, bucket: int) -> str:
        """Hash: item_id -> encoded content neighbours (codecs.encode_items) of an item PUT
        since the publication, scored against its content terms (served when the
        publication has none for the item)."""
        return f"{self.namespace}:catalog:nbr:{bucket}"

    # --- real-time features (StreamWriter writes, Reader reads) ---------------------------
    # Values are whole documents written with SET, so replaying a micro-batch writes the same
    # values again (idempotent). Every per-subject key carries the subject's TTL.

    def recent(self, subject: str) -> str:
        """String: list of {"item_id", "event_type", "ts"}, newest first (last N)."""
        return f"{self.namespace}:rt:recent:{subject}"

    def affinity(self, subject: str) -> str:
        """String: {"items", "categories", "session_categories", "as_of", "last_ts"}."""
        return f"{self.namespace}:rt:affinity:{subject}"

    def hidden(self, subject: str) -> str:
        """String: [[item_id, ts], ...] the subject hid or disliked (negative_event_types),
        newest first (codecs.encode_hidden): never served to that subject again."""
        return f"{self.namespace}:rt:hidden:{subject}"

    @property
    def trending(self) -> str:
        """String: list of [item_id, score] over the sliding window, hottest first."""
        return f"{self.namespace}:rt:trending"

    @property
    def trending_state(self) -> str:
        """String: {"buckets": {bucket start epoch: {item_id: weight}}}: the sliding window
        behind ``trending`` (internal to the streaming job)."""
        return f"{self.namespace}:rt:trending:state"

    def stream_batch(self, batch_id: int, query: str = "") -> str:
        """Marker of a micro-batch whose Redis writes completed (written last, once the
        others are acknowledged: stream.StreamWriter). ``query`` is the streaming query's id
        (from its checkpoint), so a new checkpoint starting again at batch 0 is not mistaken
        for a replay."""
        return f"{self.namespace}:rt:batch:{query + ':' if query else ''}{batch_id}"

    @property
    def stream_progress(self) -> str:
        """Hash: streaming query name -> its last micro-batch's progress
        (stream.StreamProgress: duration, end time, newest event time), written after each
        batch by the streaming job; the API exports it as gauges on /metrics. No TTL: a
        stale end time is what an alert on a stopped job looks at."""
        return f"{self.namespace}:rt:progress"

    def stream_seen(self, token: str) -> str:
        """Marker (TTL) of an event already counted by the streaming job; ``token`` is
        ``event_token(subject, event_id, key)``."""
        return f"{self.namespace}:rt:seen:{token}"

    def idempotency(self, token: str) -> str:
        """String (TTL): the fingerprint and summary of the event the API accepted under
        ``token`` = ``event_token(subject, event_id, key)``; a different payload under the same
        token is a conflict (409)."""
        return f"{self.namespace}:idem:{token}"

    @property
    def rules(self) -> str:
        """Hash: the merchandising rules (onlinestore.rules.RulesStore): ``version`` (int),
        ``doc`` (the current document, codecs.encode_rules) and ``v:<n>`` (the last
        ``history`` versions, for audit). One key, so a PUT is one atomic script (Cluster
        too). No TTL."""
        return f"{self.namespace}:rules"

    @staticmethod
    def bucket_of(user_key: str, buckets: int) -> int:
        return zlib.crc32(user_key.encode("utf-8")) % buckets
