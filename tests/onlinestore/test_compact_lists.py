"""Compact per-user lists (codec 2) through the whole contract, on a single node and a Redis
Cluster: BatchWriter writes positions + the publication's item index, go_live records the
codec, the API's Reader turns them back into the same ranked items."""

from __future__ import annotations

import asyncio

import pytest

from recolake.onlinestore import KeyLayout, connect, connect_async
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import COMPACT_CODEC_VERSION, INDEX_BLOCK, index_width
from recolake.onlinestore.reader import Reader
from recolake.onlinestore.ttl import TtlPolicy

pytestmark = pytest.mark.redis

LAYOUT = KeyLayout("compact")
BUCKETS = 4


def test_compact_lists_read_back_as_the_ranked_items(store_url):
    # More items than one index block, odd ids included, so positions cross block borders.
    items = [f"SKU-{i:05d}/ü" for i in range(INDEX_BLOCK + 500)]
    width = index_width(len(items))
    lists = {f"user-{u}": [(u * 97 + j * 331) % len(items) for j in range(50)] for u in range(30)}
    writer = BatchWriter(
        url=store_url, layout=LAYOUT, version="v2", buckets=BUCKETS, ttl=TtlPolicy()
    )
    blocks = writer.write_item_index(items)
    assert blocks == 2
    rows = [(u, pos, [1.0 - j / 50 for j in range(50)]) for u, pos in lists.items()]
    assert writer.write_user_positions(rows, width) == 30
    writer.go_live(
        popular=[(items[0], 3.0)],
        meta={"model_version": "9"},
        grace_seconds=5,
        index_blocks=blocks,
        index_width=width,
    )
    client = connect(store_url)
    assert client.hget(LAYOUT.meta("v2"), "codec") == COMPACT_CODEC_VERSION
    assert all(client.ttl(LAYOUT.item_index("v2", b)) == -1 for b in range(blocks))
    client.close()

    async def read() -> dict[str, list]:
        reader = Reader(connect_async(store_url), LAYOUT)
        out = {}
        for user in ("user-3", "user-29", "nobody"):
            snap = await reader.snapshot(user, [])
            out[user] = snap.als
        await reader.client.aclose()
        return out

    got = asyncio.run(read())
    for user in ("user-3", "user-29"):
        assert [item for item, _ in got[user]] == [items[p] for p in lists[user]]
        scores = [score for _, score in got[user]]
        assert scores == sorted(scores, reverse=True)
        assert abs(scores[0] - 1.0) < 1e-3 and abs(scores[-1] - 0.02) < 1e-3
    assert got["nobody"] is None


def test_a_replaced_compact_publication_expires_with_its_index(store_url):
    client = connect(store_url)
    for version in ("a", "b"):
        writer = BatchWriter(url=store_url, layout=LAYOUT, version=version, buckets=BUCKETS)
        blocks = writer.write_item_index(["i1", "i2"])
        writer.write_user_positions([("u", [1, 0], [0.5, 0.4])], 2)
        writer.go_live(popular=[], meta={}, grace_seconds=1, index_blocks=blocks, index_width=2)
    assert client.get(LAYOUT.live) == "b"
    assert 0 < client.ttl(LAYOUT.item_index("a", 0)) <= 1
    assert client.ttl(LAYOUT.item_index("b", 0)) == -1
    client.close()
