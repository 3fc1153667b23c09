"""The StreamWriter against real Redis, single node and a 3-master Cluster (store_url): what a
micro-batch does to the real-time documents, exactly once, also when the writer dies after
any number of its writes and the batch is replayed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recolake.onlinestore import (
    KeyLayout,
    RedisTimeouts,
    TtlPolicy,
    connect,
    session_subject,
    user_subject,
)
from recolake.onlinestore import stream as st
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY

KEY = TEST_KEY.encode()
NOW = 1_800_000_000.0
TTL = TtlPolicy(user_seconds=7 * 86400, session_seconds=3600, dedupe_seconds=600)
MERGE = st.MergeConfig(recent_n=50, half_life_seconds=1e12, trending_window_seconds=3600)
CATEGORIES = {"i1": "shoes", "i2": "hats", "i3": "shoes"}
WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}

ALICE = user_subject(pseudonymise("alice", KEY))
BOB = user_subject(pseudonymise("bob", KEY))
SESS = session_subject("sess-1", KEY)
ANON = session_subject("anon-1", KEY)


def rows_of(
    event_id: str, item: str, ts: float, user: str | None, session: str | None, kind="view"
):
    """The rows features.streaming.realtime_events makes of one event (its fan-out)."""
    primary = user or session
    return [
        {
            st.SUBJECT: subject,
            st.PRIMARY: primary,
            st.EVENT_ID: event_id,
            st.ITEM_ID: item,
            st.EVENT_TYPE: kind,
            st.TS: ts,
            st.WEIGHT: WEIGHTS[kind],
        }
        for subject in (user, session)
        if subject
    ]


@pytest.fixture
def client(store_url):
    c = connect(store_url, RedisTimeouts(connect_seconds=1.0, socket_seconds=5.0))
    yield c
    c.close()


def writer(client, namespace: str = "t", **kw) -> st.StreamWriter:
    return st.StreamWriter(client, KeyLayout(namespace), KEY, ttl=TTL, merge=MERGE, **kw)


def all_keys(client, namespace: str = "t") -> dict[str, str]:
    """Every key of the namespace with its value (on a Cluster: scanned on every master)."""
    keys = sorted(client.scan_iter(match=f"{namespace}:*", count=1000))
    return {k: client.get(k) for k in keys}


def doc(client, key: str):
    payload = client.get(key)
    return json.loads(payload) if payload else None


def trending(client, namespace: str = "t") -> dict[str, float]:
    return dict((i, s) for i, s in doc(client, KeyLayout(namespace).trending) or [])


BATCH0 = [
    *rows_of("e1", "i1", NOW - 30, ALICE, SESS, "add_to_cart"),
    *rows_of("e2", "i2", NOW - 20, ALICE, None),
    *rows_of("e1", "i3", NOW - 10, None, ANON),  # same client id, another subject
]


@pytest.mark.redis
def test_a_retried_or_empty_batch_changes_no_document(client):
    w = writer(client)
    first = w.write_batch("q", 0, BATCH0, NOW, CATEGORIES)
    assert first.new_events == 3 and not first.replay_of_complete_batch
    before = {k: v for k, v in all_keys(client).items() if ":rt:batch:" not in k}
    assert trending(client) == {"i1": 3.0, "i2": 1.0, "i3": 1.0}
    # A client retry of every event, in a later batch; then a batch of nothing valid.
    retry = w.write_batch("q", 1, BATCH0, NOW + 60, CATEGORIES)
    assert retry.new_events == 0 and retry.already_seen == 3 and retry.writes == 0
    w.write_batch("q", 2, [], NOW + 120, CATEGORIES)
    after = {k: v for k, v in all_keys(client).items() if ":rt:batch:" not in k}
    assert after == before  # trending too: not rebuilt from empty
    assert trending(client) == {"i1": 3.0, "i2": 1.0, "i3": 1.0}


@pytest.mark.redis
def test_event_ids_are_scoped_to_their_primary_subject_and_fan_out_counts_once(client):
    w = writer(client)
    w.write_batch("q", 0, BATCH0, NOW, CATEGORIES)
    # Bob reuses alice's event id "e1": another event. Alice's e1 again: a retry.
    batch = [
        *rows_of("e1", "i1", NOW - 5, BOB, None),
        *rows_of("e1", "i1", NOW - 30, ALICE, SESS, "add_to_cart"),
    ]
    outcome = w.write_batch("q", 1, batch, NOW, CATEGORIES)
    assert (outcome.new_events, outcome.already_seen) == (1, 1)
    # i1: alice's add_to_cart (3, counted once although it fanned out to user + session)
    # plus bob's view (1).
    assert trending(client) == {"i1": 4.0, "i2": 1.0, "i3": 1.0}
    layout = KeyLayout("t")
    assert [e["event_id"] for e in doc(client, layout.recent(BOB))] == ["e1"]
    assert [e["event_id"] for e in doc(client, layout.recent(ALICE))] == ["e2", "e1"]
    assert [e["event_id"] for e in doc(client, layout.recent(SESS))] == ["e1"]
    assert [e["item_id"] for e in doc(client, layout.recent(ANON))] == ["i3"]
    assert doc(client, layout.affinity(ALICE))["session_categories"] == {"shoes": 1, "hats": 1}
    # Repeats inside one batch count once too.
    w.write_batch("q", 2, rows_of("e9", "i2", NOW, BOB, None) * 3, NOW, CATEGORIES)
    assert trending(client)["i2"] == 2.0


@pytest.mark.redis
def test_every_real_time_key_expires_and_no_raw_event_id_is_in_a_key_name(client):
    w = writer(client)
    w.write_batch("q", 0, BATCH0, NOW, CATEGORIES)
    layout = KeyLayout("t")
    keys = all_keys(client)
    for key in keys:
        assert "e1" not in key.split(":") and "e2" not in key.split(":"), key
    for subject, seconds in ((ALICE, TTL.user_seconds), (SESS, TTL.session_seconds)):
        for key in (layout.recent(subject), layout.affinity(subject)):
            assert seconds - 5 < client.ttl(key) <= seconds, key
    markers = [k for k in keys if ":rt:seen:" in k or ":rt:batch:" in k]
    assert len(markers) == 4  # 3 events (alice's e1, anon's e1, e2) + the batch marker
    assert all(TTL.dedupe_seconds - 5 < client.ttl(k) <= TTL.dedupe_seconds for k in markers)
    assert client.ttl(layout.trending) == -1  # global: lives until replaced
    # A later write refreshes the subject's TTL.
    client.expire(layout.recent(ALICE), 100)
    w.write_batch("q", 1, rows_of("e3", "i2", NOW, ALICE, None), NOW, CATEGORIES)
    assert client.ttl(layout.recent(ALICE)) > TTL.user_seconds - 5


@pytest.mark.redis
def test_a_complete_batch_is_skipped_and_a_new_query_is_not_a_replay(client):
    w = writer(client)
    w.write_batch("q", 0, BATCH0, NOW, CATEGORIES)
    assert w.write_batch("q", 0, BATCH0, NOW, CATEGORIES).replay_of_complete_batch
    # A fresh checkpoint (another query id) starts at batch 0 again: not a replay, but the
    # events it re-reads were counted already.
    again = w.write_batch("q2", 0, [*BATCH0, *rows_of("n1", "i2", NOW, BOB, None)], NOW)
    assert not again.replay_of_complete_batch and again.new_events == 1
    assert trending(client) == {"i1": 3.0, "i2": 2.0, "i3": 1.0}


class CrashError(Exception):
    pass


def crash() -> None:
    raise CrashError


HISTORY = [
    BATCH0,
    [*rows_of("h1", "i1", NOW - 8, ALICE, SESS), *rows_of("h2", "i3", NOW - 7, None, ANON)],
]
#: The batch that dies: new events for every subject, a retry, a repeat of a subject-event.
VICTIM = [
    *rows_of("v1", "i2", NOW - 6, ALICE, SESS, "purchase"),
    *rows_of("v2", "i1", NOW - 5, BOB, SESS),
    *rows_of("v3", "i3", NOW - 4, None, ANON, "add_to_cart"),
    *rows_of("e2", "i2", NOW - 20, ALICE, None),  # a retry of batch 0's e2
    *rows_of("v4", "i1", NOW - 3, BOB, None),
    *rows_of("v4", "i1", NOW - 3, BOB, None),
]


def state_of(client, namespace: str) -> dict:
    """What a double count or a lost event would change (as_of aside)."""
    layout = KeyLayout(namespace)
    out: dict = {"trending": trending(client, namespace)}
    buckets = (doc(client, layout.trending_state) or {}).get("buckets")
    out["trending_state"] = buckets
    for name, subject in (("alice", ALICE), ("bob", BOB), ("sess", SESS), ("anon", ANON)):
        affinity = doc(client, layout.affinity(subject)) or {}
        out[name] = {
            "recent": doc(client, layout.recent(subject)),
            "items": affinity.get("items"),
            "categories": affinity.get("categories"),
            "session_categories": affinity.get("session_categories"),
        }
    return out


def run_history(w: st.StreamWriter) -> None:
    for batch_id, rows in enumerate(HISTORY):
        w.write_batch("q", batch_id, rows, NOW + batch_id, CATEGORIES)


@pytest.mark.redis
def test_a_replay_after_a_crash_after_any_number_of_writes_applies_the_batch_once(client):
    clean = writer(client, "clean")
    run_history(clean)
    outcome = clean.write_batch("q", 2, VICTIM, NOW + 2, CATEGORIES)
    n = outcome.writes
    assert n >= 12 and outcome.new_events == 4 and outcome.already_seen == 1
    expected = state_of(client, "clean")
    assert expected["trending"] == {"i1": 6.0, "i2": 6.0, "i3": 5.0}  # by hand
    assert expected["sess"]["session_categories"] == {"shoes": 3, "hats": 1}
    for k in range(n):
        ns = f"crash{k}"
        run_history(writer(client, ns))
        with pytest.raises(CrashError):
            writer(client, ns, kill_after_writes=k, crash=crash).write_batch(
                "q", 2, VICTIM, NOW + 2, CATEGORIES
            )
        assert not client.exists(KeyLayout(ns).stream_batch(2, "q"))  # died before its marker
        if k == 0:
            assert state_of(client, ns) != expected  # really unfinished
        # The restarted job replays batch 2 (its clock has moved on), then goes on.
        replay = writer(client, ns).write_batch("q", 2, VICTIM, NOW + 30, CATEGORIES)
        assert not replay.replay_of_complete_batch
        assert state_of(client, ns) == expected, f"crash after {k} of {n} writes"
        assert writer(client, ns).write_batch("q", 2, VICTIM, NOW + 40).replay_of_complete_batch


def test_the_stream_writer_imports_without_pyspark():
    """The Spark job calls it, but it is the online-store contract's: no pyspark inside."""
    code = "import sys, recolake.onlinestore.stream; assert 'pyspark' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def hide_rows(event_id: str, item: str, ts: float, user, session, kind: str = "hide"):
    rows = rows_of(event_id, item, ts, user, session)
    return [{**r, st.EVENT_TYPE: kind, st.WEIGHT: 0.0} for r in rows]


@pytest.mark.redis
def test_hide_and_dislike_go_to_the_subjects_hidden_sets_only(client):
    w = writer(client)
    w.write_batch("q", 0, BATCH0, NOW, CATEGORIES)
    layout = KeyLayout("t")
    before = {k: doc(client, k) for k in (layout.recent(ALICE), layout.affinity(ALICE))}
    batch = [
        *hide_rows("n1", "i1", NOW - 2, ALICE, SESS),
        *hide_rows("n2", "i3", NOW - 1, ALICE, None, "dislike"),
    ]
    outcome = w.write_batch("q", 1, batch, NOW, CATEGORIES)
    assert outcome.new_events == 2
    # fanned out like any event: the user's and the session's set, newest first
    assert [i for i, _ in doc(client, layout.hidden(ALICE))] == ["i3", "i1"]
    assert [i for i, _ in doc(client, layout.hidden(SESS))] == ["i1"]
    assert client.get(layout.hidden(BOB)) is None
    # not in the recent list, the affinity or trending
    after = {k: doc(client, k) for k in (layout.recent(ALICE), layout.affinity(ALICE))}
    assert after == before
    assert trending(client) == {"i1": 3.0, "i2": 1.0, "i3": 1.0}
    # the subject's TTL
    assert TTL.user_seconds - 5 < client.ttl(layout.hidden(ALICE)) <= TTL.user_seconds
    assert TTL.session_seconds - 5 < client.ttl(layout.hidden(SESS)) <= TTL.session_seconds
    # hiding again (a later event) keeps one entry per item, with the newest time
    w.write_batch("q", 2, hide_rows("n3", "i1", NOW + 5, ALICE, None), NOW + 10, CATEGORIES)
    assert doc(client, layout.hidden(ALICE)) == [["i1", NOW + 5], ["i3", NOW - 1]]
    # a replay of a batch that crashed half-way changes nothing more
    w2 = writer(client, kill_after_writes=0, crash=crash)
    with pytest.raises(CrashError):
        w2.write_batch("q", 3, hide_rows("n4", "i2", NOW + 6, ALICE, None), NOW + 10)
    w.write_batch("q", 3, hide_rows("n4", "i2", NOW + 6, ALICE, None), NOW + 10)
    w.write_batch("q", 4, hide_rows("n4", "i2", NOW + 6, ALICE, None), NOW + 10)  # a retry
    assert [i for i, _ in doc(client, layout.hidden(ALICE))] == ["i2", "i1", "i3"]


def test_merge_hidden_keeps_the_newest_n_items_once():
    events = [st.Event(f"e{n}", f"i{n % 3}", "hide", float(n), None, 0.0) for n in range(6)]
    assert st.merge_hidden([], events, 10) == [("i2", 5.0), ("i1", 4.0), ("i0", 3.0)]
    assert st.merge_hidden([("old", 100.0)], events, 2) == [("old", 100.0), ("i2", 5.0)]
    assert st.merge_hidden(st.merge_hidden([], events, 10), events, 10) == st.merge_hidden(
        [], events, 10
    )
