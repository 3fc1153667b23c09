"""The publish side of the online-store contract, on a single node and on a 3-master Redis
Cluster (``store_url``): nothing is served before go_live, one SET switches, the replaced
version expires after the grace period, a half-written publish leaves nothing served, and the
staging TTLs are removed on every node."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from recolake.onlinestore import KeyLayout, connect, is_cluster_url
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import CODEC_VERSION, decode_items
from recolake.onlinestore.ttl import TtlPolicy

pytestmark = pytest.mark.redis

LAYOUT = KeyLayout("bw")
BUCKETS = 8
STAGING = TtlPolicy(staging_seconds=600)


def writer(url: str, version: str) -> BatchWriter:
    return BatchWriter(url=url, layout=LAYOUT, version=version, buckets=BUCKETS, ttl=STAGING)


def users(tag: str, n: int = 40) -> list[tuple[str, list[tuple[str, float]]]]:
    return [(f"user-{i}", [(f"{tag}-{i}-{j}", 1.0 - j / 10) for j in range(3)]) for i in range(n)]


def stage(url: str, version: str, tag: str) -> BatchWriter:
    w = writer(url, version)
    assert w.write_user_lists(users(tag)) == 40
    assert w.write_catalog([(f"{tag}-0-0", "T", "C", True)]) == 1
    assert w.write_neighbours([("co_view", f"{tag}-0-0", [(f"{tag}-1-0", 0.5)])]) == 1
    return w


def served_list(client, user: str) -> list[tuple[str, float]] | None:
    """What a reader resolves: the live pointer, then the user's bucket in that version."""
    live = client.get(LAYOUT.live)
    if live is None:
        return None
    return decode_items(client.hget(LAYOUT.recs(live, LAYOUT.bucket_of(user, BUCKETS)), user))


def existing(client, version: str) -> list[str]:
    return [k for k in LAYOUT.version_keys(version, BUCKETS) if client.exists(k)]


@pytest.fixture
def client(store_url):
    c = connect(store_url)
    yield c
    c.close()


def test_publish_is_invisible_until_go_live(store_url, client):
    w = stage(store_url, "v1", "a")
    assert client.get(LAYOUT.live) is None
    assert served_list(client, "user-3") is None
    staged = existing(client, "v1")
    assert staged and all(0 < client.ttl(k) <= 600 for k in staged)

    assert w.go_live(popular=[("a-0-0", 3.0)], meta={"model_version": "1"}, grace_seconds=5) is None
    assert served_list(client, "user-3") == [("a-3-0", 1.0), ("a-3-1", 0.9), ("a-3-2", 0.8)]
    meta = client.hgetall(LAYOUT.meta("v1"))
    assert meta["codec"] == CODEC_VERSION and meta["buckets"] == str(BUCKETS)
    assert meta["model_version"] == "1" and meta["version"] == "v1" and meta["published_at"]


def test_one_set_switches_the_live_pointer(store_url, client):
    """Every command that touches the live key during a go_live, seen by MONITOR on the node
    that owns it: exactly one, a SET (GET'ting the replaced version)."""
    stage(store_url, "v1", "a").go_live(popular=[], meta={}, grace_seconds=60)
    w2 = stage(store_url, "v2", "b")
    if is_cluster_url(store_url):
        node = client.get_node_from_key(LAYOUT.live)
        host, port = node.host, node.port
    else:
        kw = client.connection_pool.connection_kwargs
        host, port = kw["host"], kw["port"]
    node_client = redis.Redis(host=host, port=port, decode_responses=True)
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with node_client.monitor() as m:
            ready.set()
            for entry in m.listen():
                if entry["command"] == "ECHO stop-monitor":
                    return
                if LAYOUT.live in entry["command"]:
                    seen.append(entry["command"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(5)
    time.sleep(0.2)  # MONITOR registered on the server
    assert w2.go_live(popular=[], meta={}, grace_seconds=60) == "v1"
    node_client.echo("stop-monitor")
    thread.join(10)
    assert not thread.is_alive()
    assert len(seen) == 1 and seen[0].split()[0].upper() == "SET", seen
    assert served_list(client, "user-5")[0] == ("b-5-0", 1.0)
    node_client.close()


def test_replaced_version_expires_after_the_grace_period(store_url, client):
    stage(store_url, "v1", "a").go_live(popular=[("a", 1.0)], meta={}, grace_seconds=60)
    old = existing(client, "v1")
    assert old and all(client.ttl(k) == -1 for k in old)

    assert stage(store_url, "v2", "b").go_live(popular=[], meta={}, grace_seconds=1) == "v1"
    # in-flight readers of v1 can still finish...
    assert decode_items(
        client.hget(LAYOUT.recs("v1", LAYOUT.bucket_of("user-0", BUCKETS)), "user-0")
    )
    assert all(0 < client.pttl(k) <= 1000 for k in old)
    time.sleep(1.5)
    # ...then every key of v1 is gone, v2 is permanent and served
    assert existing(client, "v1") == []
    assert all(client.ttl(k) == -1 for k in existing(client, "v2"))
    assert served_list(client, "user-0")[0] == ("b-0-0", 1.0)


def test_a_half_written_publish_leaves_nothing_served(store_url, client):
    stage(store_url, "v1", "a").go_live(popular=[("a", 1.0)], meta={}, grace_seconds=60)
    before = served_list(client, "user-7")

    def dying_rows():
        yield from users("b")[:25]
        raise RuntimeError("executor lost")

    # chunks of 10: two chunks reach Redis before the task dies
    w2 = BatchWriter(
        url=store_url, layout=LAYOUT, version="v2", buckets=BUCKETS, ttl=STAGING, chunk=10
    )
    with pytest.raises(RuntimeError, match="executor lost"):
        w2.write_user_lists(dying_rows())
    staged = existing(client, "v2")
    assert staged, "the first chunks were written"
    assert all(0 < client.ttl(k) <= 600 for k in staged)  # and will expire by themselves
    assert client.get(LAYOUT.live) == "v1"
    assert served_list(client, "user-7") == before
    assert client.hgetall(LAYOUT.meta("v2")) == {}  # no meta: never went live


def test_staging_ttls_removed_on_every_node(store_url, client):
    w = stage(store_url, "v1", "a")
    staged = existing(client, "v1")
    if is_cluster_url(store_url):
        nodes = {client.get_node_from_key(k).name for k in staged}
        assert len(nodes) == 3, "the publication must span every master"
    assert all(client.ttl(k) > 0 for k in staged)
    w.go_live(popular=[("a-0-0", 1.0)], meta={}, grace_seconds=5)
    keys = existing(client, "v1")
    assert set(staged) <= set(keys) and LAYOUT.popular("v1") in keys
    assert {k: client.ttl(k) for k in keys} == {k: -1 for k in keys}
