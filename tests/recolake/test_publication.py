"""``recolake.publication`` is a deprecated shim over ``onlinestore.batch.BatchWriter`` (the
contract itself is tested in tests/onlinestore/test_batch_writer.py): its old call shapes
must still write and switch exactly as the writer does, until the last caller moves."""

from __future__ import annotations

import pytest

from recolake import publication
from recolake.onlinestore import KeyLayout
from recolake.onlinestore.codecs import CODEC_VERSION

LAYOUT = KeyLayout("t")


@pytest.mark.redis
def test_old_call_shapes_write_stage_and_switch(redis_client, redis_server):
    users = {f"user{i}": [("a", 1.0)] for i in range(20)}
    written = publication.write_user_lists(
        users.items(), url=redis_server.url, layout=LAYOUT, version="v1", buckets=4
    )
    assert written == 20
    staged = [k for k in LAYOUT.version_keys("v1", 4) if redis_client.exists(k)]
    assert staged and all(
        0 < redis_client.ttl(k) <= publication.STAGING_TTL_SECONDS for k in staged
    )
    assert redis_client.get(LAYOUT.live) is None

    replaced = publication.go_live(
        redis_client,
        layout=LAYOUT,
        version="v1",
        buckets=4,
        popular=[("p1", 9.0)],
        meta={"model_version": "1"},
        grace_seconds=30,
    )
    assert replaced is None and redis_client.get(LAYOUT.live) == "v1"
    assert all(redis_client.ttl(k) == -1 for k in staged)
    assert redis_client.hget(LAYOUT.meta("v1"), "codec") == CODEC_VERSION
    bucket = LAYOUT.bucket_of("user3", 4)
    assert publication.decode_items(redis_client.hget(LAYOUT.recs("v1", bucket), "user3")) == [
        ("a", 1.0)
    ]


def test_buckets_spread_users_and_are_stable():
    counts = [0] * 8
    for i in range(800):
        counts[KeyLayout.bucket_of(f"user-{i}", 8)] += 1
    assert min(counts) > 50  # roughly even
    assert KeyLayout.bucket_of("abc", 8) == KeyLayout.bucket_of("abc", 8)
