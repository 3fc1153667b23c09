"""StreamWriter: one micro-batch of the streaming job merged into the real-time documents
(recent, affinity per subject; trending), exactly once, on a single node or a Redis Cluster.

No pyspark here: the Spark job (pipelines/streaming.py) collects a batch's rows
(features.streaming.realtime_events: one row per subject of an event) and calls
:meth:`StreamWriter.write_batch`; the merges are pure functions of (previous document, events,
time), tested on their own.

Exactly once without a cross-slot transaction (a Cluster has none): every write of a batch is a
whole-document SET, pipelined (``transaction=False``), and each one can be replayed safely.

- A batch's tag is ``<query id>:<batch id>``. Affinity documents and the trending state record
  the tag of the last batch applied to them: on a replay of batch b, a document that already
  has b is left as is, the others are merged. The recent list drops an event already in it
  (same id, item, type, time), so merging it again changes nothing.
- An event is identified by its *primary* subject (the user if known, else the session) and
  the client's ``event_id``: its seen marker ``stream_seen(event_token(primary, id, key))``
  (no raw id in a key name) holds the tag of the batch that counted it. A marker of another
  batch means "already counted" (a client retry); a marker of b itself, on a replay of b,
  means "counted by the attempt that crashed", i.e. not seen, so b's events are merged into the
  documents that attempt did not reach. An event fans out to user and session documents but
  counts once in trending.
- The batch marker is written last, after every other write has been acknowledged: a batch
  with its marker is complete and is skipped whole.
- A batch with nothing new (all retries, all invalid, empty) changes no document.

Negative feedback (``MergeConfig.negative_types``: hide, dislike) goes into the subject's hidden
set (``KeyLayout.hidden``, ``merge_hidden``) only: not into recent, affinity or trending.

Per-subject keys get the subject's TTL (``TtlPolicy.for_subject``, refreshed by each write);
seen and batch markers ``TtlPolicy.dedupe_seconds``.

Fault injection (tests): ``kill_after_writes=N`` (setting ``stream_fault_kill_after_writes``)
makes the writer SIGKILL its own process after the first N writes of a batch that has more,
i.e. deterministically inside a batch, before its marker.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recolake.onlinestore.codecs import decode_hidden, encode_document, encode_hidden
from recolake.onlinestore.keys import KeyLayout, event_token
from recolake.onlinestore.ttl import TtlPolicy

# Fields of a batch row (features.streaming.realtime_events produces them).
SUBJECT = "subject"
PRIMARY = "primary_subject"
EVENT_ID = "event_id"
ITEM_ID = "item_id"
EVENT_TYPE = "event_type"
TS = "ts"
WEIGHT = "weight"

#: Field of affinity documents and of the trending state: the last batch applied.
BATCH_FIELD = "batch"


# --------------------------------------------------------------------------- pure merges


@dataclass(frozen=True)
class Event:
    """One event of one subject, as the merge functions see it."""

    event_id: str
    item_id: str
    event_type: str
    ts: float
    category: str | None
    weight: float


def _decay(age_seconds: float, half_life_seconds: float) -> float:
    return math.pow(2.0, -max(age_seconds, 0.0) / half_life_seconds)


def _identity(entry: Mapping[str, Any]) -> tuple:
    return (entry.get("event_id"), entry.get("item_id"), entry.get("event_type"), entry.get("ts"))


def merge_recent(
    previous: Sequence[Mapping[str, Any]], events: Iterable[Event], n: int
) -> list[dict[str, Any]]:
    """The last ``n`` events, newest first; an event already in the list (same id, item, type
    and time: a replay) is not added again."""
    seen = {_identity(e) for e in previous}
    merged = [dict(e) for e in previous]
    for event in events:
        entry = {
            "item_id": event.item_id,
            "event_type": event.event_type,
            "ts": event.ts,
            "event_id": event.event_id,
        }
        if _identity(entry) in seen:
            continue
        seen.add(_identity(entry))
        merged.append(entry)
    merged.sort(key=lambda e: (-(e.get("ts") or 0.0), str(e.get("event_id", ""))))
    return merged[:n]


def merge_hidden(
    previous: Sequence[tuple[str, float]], events: Iterable[Event], n: int
) -> list[tuple[str, float]]:
    """The subject's hidden items, newest first, at most ``n``: each item once, with the
    time it was last hidden (merging the same events again changes nothing)."""
    latest: dict[str, float] = {}
    for item, ts in (*previous, *((e.item_id, e.ts) for e in events)):
        if ts >= latest.get(item, float("-inf")):
            latest[item] = ts
    return sorted(latest.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _top(scores: Mapping[str, float], n: int) -> dict[str, float]:
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {k: round(v, 6) for k, v in ranked if v > 1e-9}


def merge_affinity(
    previous: Mapping[str, Any] | None,
    events: Iterable[Event],
    *,
    as_of: float,
    half_life_seconds: float,
    session_gap_seconds: float,
    max_items: int = 100,
    max_categories: int = 50,
) -> dict[str, Any]:
    """Recency-decayed item and category affinity as of ``as_of`` (epoch seconds), plus the
    category counts of the current session window: a session ends after
    ``session_gap_seconds`` without events (gap-based session window on event time).

    Document: {"items", "categories", "session_categories", "as_of", "last_ts"}.
    """
    previous = previous or {}
    old_as_of = float(previous.get("as_of", as_of))
    as_of = max(as_of, old_as_of)
    carry = _decay(as_of - old_as_of, half_life_seconds)
    items = {k: v * carry for k, v in (previous.get("items") or {}).items()}
    categories = {k: v * carry for k, v in (previous.get("categories") or {}).items()}
    session = dict(previous.get("session_categories") or {})
    last_ts = previous.get("last_ts")
    for event in sorted(events, key=lambda e: (e.ts, e.event_id)):
        score = event.weight * _decay(as_of - event.ts, half_life_seconds)
        items[event.item_id] = items.get(event.item_id, 0.0) + score
        if last_ts is not None and event.ts - last_ts > session_gap_seconds:
            session = {}
        last_ts = event.ts if last_ts is None else max(last_ts, event.ts)
        if event.category:
            categories[event.category] = categories.get(event.category, 0.0) + score
            session[event.category] = session.get(event.category, 0) + 1
    return {
        "items": _top(items, max_items),
        "categories": _top(categories, max_categories),
        "session_categories": session,
        "as_of": as_of,
        "last_ts": last_ts,
    }


def merge_trending(
    previous: Mapping[str, Any] | None,
    events: Iterable[Event],
    *,
    now: float,
    window_seconds: float,
    bucket_seconds: float = 60.0,
) -> dict[str, Any]:
    """Sliding-window state of trending items: summed event weight per item per time bucket
    (event time), buckets older than the window dropped. {"buckets": {start: {item: w}}}."""
    horizon = now - window_seconds
    buckets: dict[str, dict[str, float]] = {
        b: dict(items)
        for b, items in ((previous or {}).get("buckets") or {}).items()
        if float(b) + bucket_seconds > horizon
    }
    for event in events:
        if event.ts <= horizon or event.ts > now + window_seconds:
            continue
        start = str(int(event.ts // bucket_seconds * bucket_seconds))
        bucket = buckets.setdefault(start, {})
        bucket[event.item_id] = bucket.get(event.item_id, 0.0) + max(event.weight, 0.0)
    return {"buckets": buckets}


def trending_list(state: Mapping[str, Any], top_n: int) -> list[list[Any]]:
    """The published trending list: [[item_id, score], ...], hottest first."""
    totals: dict[str, float] = {}
    for items in (state.get("buckets") or {}).values():
        for item, weight in items.items():
            totals[item] = totals.get(item, 0.0) + weight
    return [[k, v] for k, v in _top(totals, top_n).items()]


# --------------------------------------------------------------------------- progress

#: Query names the progress hash accepts (they become a label on /metrics: kept bounded).
PROGRESS_QUERY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: Queries read back at most (a bounded number of gauge series whatever the hash holds).
MAX_PROGRESS_QUERIES = 16


@dataclass(frozen=True)
class StreamProgress:
    """A streaming query's last micro-batch, as the API exports it (gauges on /metrics):
    how long it took, when it ended, and how old its newest event was by then."""

    batch_id: int
    duration_seconds: float
    ended_at: float  #: epoch seconds
    rows: int
    newest_event_at: float | None = None  #: epoch seconds of the newest event time; None: empty

    @property
    def lag_seconds(self) -> float | None:
        """Input lag: from the newest event's time to the end of the batch that applied it
        (0 for events stamped ahead of the clock; None for a batch without events)."""
        if self.newest_event_at is None:
            return None
        return max(0.0, self.ended_at - self.newest_event_at)

    def encode(self) -> str:
        return encode_document(
            {
                "batch_id": self.batch_id,
                "duration_seconds": round(self.duration_seconds, 6),
                "ended_at": self.ended_at,
                "rows": self.rows,
                "newest_event_at": self.newest_event_at,
            }
        )

    @classmethod
    def decode(cls, payload: str | bytes) -> StreamProgress:
        """ValueError for anything that is not a progress document."""
        try:
            doc = json.loads(payload)
            newest = doc.get("newest_event_at")
            return cls(
                batch_id=int(doc["batch_id"]),
                duration_seconds=float(doc["duration_seconds"]),
                ended_at=float(doc["ended_at"]),
                rows=int(doc["rows"]),
                newest_event_at=None if newest is None else float(newest),
            )
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a stream progress document: {exc}") from exc


def write_progress(client, layout: KeyLayout, query: str, progress: StreamProgress) -> None:
    """Record ``query``'s last batch (one HSET on ``layout.stream_progress``); ``client`` is a
    sync Redis client (the streaming job's)."""
    if not PROGRESS_QUERY_PATTERN.fullmatch(query):
        raise ValueError(f"not a progress query name: {query!r}")
    client.hset(layout.stream_progress, query, progress.encode())


def decode_progress(fields: Mapping[Any, Any]) -> dict[str, StreamProgress]:
    """The progress hash (HGETALL) as query -> StreamProgress: names that are not query
    names, documents that do not decode and entries past MAX_PROGRESS_QUERIES are left out."""
    out: dict[str, StreamProgress] = {}
    for name, payload in sorted((_text(k), v) for k, v in fields.items()):
        if len(out) >= MAX_PROGRESS_QUERIES or not PROGRESS_QUERY_PATTERN.fullmatch(name):
            continue
        try:
            out[name] = StreamProgress.decode(payload)
        except ValueError:
            continue
    return out


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# --------------------------------------------------------------------------- the writer


@dataclass(frozen=True)
class MergeConfig:
    """The merge parameters (from settings)."""

    recent_n: int = 20
    half_life_seconds: float = 24 * 3600.0
    session_gap_seconds: float = 30 * 60.0
    trending_window_seconds: float = 3600.0
    trending_top_n: int = 100
    #: Event types that hide their item from the subject (settings.negative_event_types).
    negative_types: frozenset[str] = frozenset({"hide", "dislike"})
    hidden_n: int = 500

    @classmethod
    def from_settings(cls, settings) -> MergeConfig:
        return cls(
            negative_types=frozenset(settings.negative_event_types),
            hidden_n=settings.hidden_max_items,
            recent_n=settings.recent_n,
            half_life_seconds=settings.affinity_half_life_hours * 3600,
            session_gap_seconds=settings.session_window_minutes * 60,
            trending_window_seconds=settings.trending_window_minutes * 60,
            trending_top_n=settings.trending_top_n,
        )


@dataclass
class BatchOutcome:
    """What write_batch did (for the job's log line and the tests)."""

    replay_of_complete_batch: bool = False
    rows: int = 0
    new_events: int = 0
    already_seen: int = 0
    writes: int = 0
    subjects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Write:
    key: str
    value: str
    ttl: int | None


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class StreamWriter:
    """Merges micro-batches of subject-events into the real-time documents."""

    def __init__(
        self,
        client,
        layout: KeyLayout,
        key: bytes,
        *,
        ttl: TtlPolicy | None = None,
        merge: MergeConfig | None = None,
        kill_after_writes: int | None = None,
        crash: Callable[[], None] = _sigkill_self,
    ) -> None:
        self.client = client
        self.layout = layout
        self.key = key
        self.ttl = ttl or TtlPolicy()
        self.merge = merge or MergeConfig()
        self.kill_after_writes = kill_after_writes
        self.crash = crash

    @classmethod
    def from_settings(cls, client, settings, **overrides) -> StreamWriter:
        values: dict[str, Any] = dict(
            ttl=TtlPolicy.from_settings(settings),
            merge=MergeConfig.from_settings(settings),
            kill_after_writes=settings.stream_fault_kill_after_writes,
        )
        values.update(overrides)
        return cls(
            client,
            KeyLayout(settings.redis_namespace),
            settings.require_pseudonymisation_key(),
            **values,
        )

    # --- reads and writes (pipelined, no transaction: they may span Cluster slots) --------

    def _get_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.get(k)
        return list(pipe.execute())

    def _apply(self, writes: Sequence[_Write]) -> None:
        """Every write, pipelined; with the fault setting, only the first N, then the crash."""
        limit = self.kill_after_writes
        crash = limit is not None and limit < len(writes)
        todo = writes[:limit] if crash else writes
        if todo:
            pipe = self.client.pipeline(transaction=False)
            for w in todo:
                pipe.set(w.key, w.value, ex=w.ttl)
            pipe.execute()
        if crash:
            self.crash()

    def write_progress(self, query: str, progress: StreamProgress) -> None:
        """Record ``query``'s last batch for /metrics (module ``write_progress``)."""
        write_progress(self.client, self.layout, query, progress)

    # --- one batch ----------------------------------------------------------------------

    def write_batch(
        self,
        query_id: str,
        batch_id: int,
        rows: Iterable[Mapping[str, Any]],
        now: float,
        categories: Mapping[str, str] | None = None,
    ) -> BatchOutcome:
        """Merge one micro-batch (rows: SUBJECT, PRIMARY, EVENT_ID, ITEM_ID, EVENT_TYPE, TS,
        WEIGHT) into the documents; idempotent per (query_id, batch_id), also after a crash
        half-way through."""
        layout, merge = self.layout, self.merge
        tag = f"{query_id}:{batch_id}"
        marker = layout.stream_batch(batch_id, query_id)
        outcome = BatchOutcome()
        if self.client.exists(marker):
            outcome.replay_of_complete_batch = True
            return outcome
        categories = categories or {}

        # One event per (primary subject, event id), with every subject it fans out to; a
        # repeat inside the batch counts once (the smallest payload: the same on a replay).
        events: dict[tuple[str, str], Event] = {}
        fanout: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in rows:
            outcome.rows += 1
            subject = r[SUBJECT]
            primary = r[PRIMARY] or subject
            ident = (primary, r[EVENT_ID])
            event = Event(
                r[EVENT_ID],
                r[ITEM_ID],
                r[EVENT_TYPE],
                float(r[TS]),
                categories.get(r[ITEM_ID]),
                float(r[WEIGHT]),
            )
            old = events.get(ident)
            if old is None or _event_order(event) < _event_order(old):
                events[ident] = event
            fanout[ident].add(subject)
        idents = sorted(events)
        tokens = {i: event_token(i[0], i[1], self.key) for i in idents}
        subjects = sorted({s for i in idents for s in fanout[i]})
        doc_keys = [k for s in subjects for k in (layout.recent(s), layout.affinity(s))]
        negative = merge.negative_types
        hiders = sorted({s for i in idents if events[i].event_type in negative for s in fanout[i]})
        current = self._get_many(
            [
                *(layout.stream_seen(tokens[i]) for i in idents),
                *doc_keys,
                *(layout.hidden(s) for s in hiders),
                layout.trending_state,
            ]
        )
        seen_flags = current[: len(idents)]
        docs = current[len(idents) : len(idents) + len(doc_keys)]
        hidden_docs = dict(zip(hiders, current[len(idents) + len(doc_keys) : -1], strict=True))
        state_doc = _loads(current[-1]) if current else None

        fresh = [i for i, flag in zip(idents, seen_flags, strict=True) if flag in (None, tag)]
        outcome.new_events = len(fresh)
        outcome.already_seen = len(idents) - len(fresh)
        by_subject: dict[str, list[Event]] = defaultdict(list)
        for ident in fresh:
            for subject in fanout[ident]:
                by_subject[subject].append(events[ident])

        writes: list[_Write] = []
        for n, subject in enumerate(subjects):
            mine = by_subject.get(subject)
            if not mine:
                continue
            ttl = self.ttl.for_subject(subject)
            hides = [e for e in mine if e.event_type in negative]
            if hides:
                old_hidden = decode_hidden(hidden_docs.get(subject))
                merged = merge_hidden(old_hidden, hides, merge.hidden_n)
                writes.append(_Write(layout.hidden(subject), encode_hidden(merged), ttl))
                mine = [e for e in mine if e.event_type not in negative]
                if not mine:
                    continue
            recent_old = _loads(docs[2 * n]) or []
            recent = merge_recent(recent_old, mine, merge.recent_n)
            writes.append(_Write(layout.recent(subject), encode_document(recent), ttl))
            affinity_old = _loads(docs[2 * n + 1])
            if affinity_old is None or affinity_old.get(BATCH_FIELD) != tag:
                affinity = merge_affinity(
                    affinity_old,
                    mine,
                    as_of=now,
                    half_life_seconds=merge.half_life_seconds,
                    session_gap_seconds=merge.session_gap_seconds,
                )
                affinity[BATCH_FIELD] = tag
                writes.append(_Write(layout.affinity(subject), encode_document(affinity), ttl))
        outcome.subjects = sorted(by_subject)

        if fresh:
            if state_doc is not None and state_doc.get(BATCH_FIELD) == tag:
                state = state_doc  # applied by the crashed attempt: the list may lag it
                changed = True
            else:
                state = merge_trending(
                    state_doc,
                    [events[i] for i in fresh if events[i].event_type not in negative],
                    now=now,
                    window_seconds=merge.trending_window_seconds,
                )
                changed = state["buckets"] != (state_doc or {}).get("buckets")
                state[BATCH_FIELD] = tag
            if changed:
                if state is not state_doc:
                    writes.append(_Write(layout.trending_state, encode_document(state), None))
                top = trending_list(state, merge.trending_top_n)
                writes.append(_Write(layout.trending, encode_document(top), None))

        # Seen markers first (any order is safe; this one makes a crash between them and the
        # documents the likely case, so the tests prove a marker of b is "not seen" for b).
        dedupe = self.ttl.dedupe_seconds
        writes[:0] = [_Write(layout.stream_seen(tokens[i]), tag, dedupe) for i in fresh]
        self._apply(writes)
        outcome.writes = len(writes)
        # Last, and only once everything above is acknowledged: the batch is complete.
        self.client.set(marker, int(now), ex=dedupe)
        return outcome


def _event_order(e: Event) -> tuple:
    return (e.ts, e.item_id, e.event_type, e.weight)


def _loads(payload: str | None) -> Any:
    return json.loads(payload) if payload else None
