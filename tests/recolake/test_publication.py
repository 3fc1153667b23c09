"""Publishing to a real Redis: atomic switch, grace expiry, staging TTL."""

from __future__ import annotations

import pytest

from recolake import publication
from recolake.redis_layout import RedisLayout

pytestmark = pytest.mark.redis

LAYOUT = RedisLayout("t")


def publish(client, url, version, users, grace=30, buckets=4):
    publication.write_user_lists(
        users.items(), url=url, layout=LAYOUT, version=version, buckets=buckets
    )
    return publication.go_live(
        client,
        layout=LAYOUT,
        version=version,
        buckets=buckets,
        popular=[("p1", 9.0), ("p2", 8.0)],
        meta={"model_version": version[-1]},
        grace_seconds=grace,
    )


def test_staged_keys_expire_unless_switched_live(redis_client, redis_server):
    users = {f"user{i}": [("a", 1.0)] for i in range(20)}
    publication.write_user_lists(
        users.items(), url=redis_server.url, layout=LAYOUT, version="v1", buckets=4
    )
    staged = [k for k in LAYOUT.version_keys("v1", 4) if redis_client.exists(k)]
    assert staged, "lists were written"
    assert all(0 < redis_client.ttl(k) <= publication.STAGING_TTL_SECONDS for k in staged)
    assert redis_client.get(LAYOUT.live) is None  # nothing served until go_live


def test_switch_is_atomic_and_old_version_expires_after(redis_client, redis_server):
    assert publish(redis_client, redis_server.url, "v1", {"u": [("a", 1.0)]}) is None
    assert redis_client.get(LAYOUT.live) == "v1"
    assert all(
        redis_client.ttl(k) == -1 for k in LAYOUT.version_keys("v1", 4) if redis_client.exists(k)
    )

    replaced = publish(redis_client, redis_server.url, "v2", {"u": [("b", 2.0)]}, grace=30)
    assert replaced == "v1"
    assert redis_client.get(LAYOUT.live) == "v2"
    # The old version is still readable (in-flight readers) but now expires.
    bucket = LAYOUT.bucket_of("u", 4)
    assert publication.decode_items(redis_client.hget(LAYOUT.recs("v1", bucket), "u")) == [
        ("a", 1.0)
    ]
    assert 0 < redis_client.ttl(LAYOUT.recs("v1", bucket)) <= 30
    assert redis_client.ttl(LAYOUT.recs("v2", bucket)) == -1
    meta = redis_client.hgetall(LAYOUT.meta("v2"))
    assert meta["model_version"] == "2" and meta["buckets"] == "4" and meta["published_at"]


def test_buckets_spread_users_and_are_stable():
    counts = [0] * 8
    for i in range(800):
        counts[RedisLayout.bucket_of(f"user-{i}", 8)] += 1
    assert min(counts) > 50  # roughly even
    assert RedisLayout.bucket_of("abc", 8) == RedisLayout.bucket_of("abc", 8)
