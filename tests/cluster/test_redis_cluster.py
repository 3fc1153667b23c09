"""A publication written to and served from a real Redis Cluster (3 masters, Debian redis-server).

The keys of one version hash to different slots, so everything that writes or reads them
must work without multi-key transactions: pipelines with transaction=False.
"""

from __future__ import annotations

import asyncio

import pytest

from recolake.onlinestore import KeyLayout, connect, connect_async
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.reader import Reader

pytestmark = pytest.mark.redis


def test_publish_and_serve_through_a_redis_cluster(redis_cluster):
    layout = KeyLayout("clustertest")
    buckets = 8
    users = [(f"user-{i}", [(f"item-{i}-{j}", 1.0 - j / 10) for j in range(5)]) for i in range(50)]
    writer = BatchWriter(url=redis_cluster, layout=layout, version="v1", buckets=buckets)
    assert writer.write_user_lists(users) == len(users)
    client = connect(redis_cluster)
    slots = {client.keyslot(layout.recs("v1", b)) for b in range(buckets)}
    assert len(slots) > 1, "the test must span several slots"
    popular = [("item-0-0", 9.0), ("item-1-0", 8.0)]
    assert writer.go_live(popular=popular, meta={"model_version": "7"}, grace_seconds=5) is None
    # Staging TTLs were removed on every node that holds a bucket.
    assert all(client.ttl(layout.recs("v1", b)) == -1 for b in range(buckets))
    client.close()

    async def read() -> tuple:
        store = Reader(connect_async(redis_cluster), layout)
        snap = await store.snapshot("user-7", [])
        await store.client.aclose()
        return snap

    snap = asyncio.run(read())
    assert snap.publication.version == "v1" and snap.publication.model_version == "7"
    assert [item for item, _ in snap.als] == [f"item-7-{j}" for j in range(5)]
    assert [item for item, _ in snap.popular] == ["item-0-0", "item-1-0"]
