"""The publication's meta as one typed shape: what go_live writes is what the Reader reads
(weights included), older and newer hashes are handled on purpose, and a Reader serving two
publications at once (an experiment) keeps both versions' caches."""

from __future__ import annotations

import asyncio

import pytest

from recolake.onlinestore import KeyLayout, connect_async
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.meta import META_CODEC, PublicationMeta
from recolake.onlinestore.reader import Reader
from recolake.ranking import Weights

LAYOUT = KeyLayout("meta")


def test_hash_round_trip_keeps_every_field():
    meta = PublicationMeta(
        version="v3",
        buckets=16,
        model_version="12",
        ds="2026-12-01",
        published_at="2026-12-02T06:00:00+00:00",
        codec="2",
        index_blocks=3,
        index_width=2,
        weights=Weights(als=0.6, popular=0.9),
        weights_source="evaluation",
        stats={"users": "41", "neighbours_co_view": "7"},
    )
    fields = meta.to_hash()
    assert all(isinstance(v, str) for v in fields.values())  # a Redis hash
    assert fields["meta_codec"] == META_CODEC
    assert PublicationMeta.from_hash("v3", fields) == meta


def test_a_meta_without_weights_reads_the_defaults():
    """A publication of before the weights (no meta codec, no weights) ranks with the
    ranker's defaults and says so."""
    old = {"version": "v1", "buckets": "4", "codec": "1", "model_version": "3", "users": "9"}
    meta = PublicationMeta.from_hash("v1", old)
    assert (meta.weights, meta.weights_source) == (Weights(), "default")
    assert (meta.buckets, meta.model_version, meta.stats) == (4, "3", {"users": "9"})
    assert PublicationMeta.from_hash("v1", {}) == PublicationMeta(version="v1")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"meta_codec": "99"}, "meta codec '99'"),
        ({"weights": '{"als": 1, "bogus": 2}'}, "unknown blend weights"),
        ({"weights": "{}", "weights_source": "guess"}, "unknown weights_source"),
    ],
)
def test_a_meta_this_reader_cannot_understand_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        PublicationMeta.from_hash("v1", fields)


def writer(url: str, version: str) -> BatchWriter:
    return BatchWriter(url=url, layout=LAYOUT, version=version, buckets=2)


@pytest.mark.redis
def test_go_live_writes_what_the_reader_reads(redis_server, redis_client):
    chosen = Weights(als=0.3, trending=0.9, anchor_decay=0.5)
    w = writer(redis_server.url, "v1")
    w.write_user_lists([("u", [("a", 1.0)])])
    w.go_live(
        popular=[("a", 1.0)],
        meta={"model_version": 5, "ds": "2026-12-01", "users": 1, "codec": "forged"},
        grace_seconds=5,
        weights=chosen,
    )
    writer(redis_server.url, "v2").go_live(popular=[], meta={}, grace_seconds=60)

    async def read() -> tuple[PublicationMeta, PublicationMeta | None, PublicationMeta | None]:
        reader = Reader(connect_async(redis_server.url), LAYOUT)
        live = await reader.publication()
        held = await reader.pinned_publication("v1")
        missing = await reader.pinned_publication("never")
        await reader.client.aclose()
        return live, held, missing

    live, held, missing = asyncio.run(read())
    assert (live.version, live.weights, live.weights_source) == ("v2", Weights(), "default")
    assert held is not None and held.weights == chosen and held.weights_source == "evaluation"
    assert (held.model_version, held.ds, held.stats["users"]) == ("5", "2026-12-01", "1")
    assert held.codec == "1"  # a caller's meta cannot forge what go_live sets
    assert missing is None


@pytest.mark.redis
def test_two_publications_served_at_once_keep_their_caches(redis_server, redis_client):
    """An A/B over two publications: once each is warm, reading either again costs only
    the one pipelined round trip of the snapshot (no catalog or neighbour re-reads)."""
    for version in ("v1", "v2"):
        w = writer(redis_server.url, version)
        w.write_user_lists([("u", [(f"{version}-a", 1.0)])])
        w.write_catalog([(f"{version}-a", "A", "c", True)])
        w.write_neighbours([("co_view", f"{version}-a", [(f"{version}-b", 0.5)])])
        w.go_live(popular=[(f"{version}-a", 1.0)], meta={}, grace_seconds=600)

    async def request(reader: Reader, version: str) -> list[str]:
        snap = await reader.snapshot("u", [], publication=version)
        assert snap.publication.version == version and snap.fallback_from is None
        item = snap.als[0][0]
        catalog, lists = await reader.details(snap.publication, [item], [("co_view", item)])
        return [catalog[item].title, *(n[0] for n in lists[("co_view", item)])]

    async def run() -> list[int]:
        reader = Reader(connect_async(redis_server.url), LAYOUT, pointer_ttl=60)
        for version in ("v1", "v2"):  # warm both
            await request(reader, version)
        calls = []
        for version in ("v1", "v2", "v1", "v2"):
            redis_client.config_resetstat()
            assert await request(reader, version) == ["A", f"{version}-b"]
            stats = redis_client.info("commandstats")
            calls.append(sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info") - 1)
        await reader.client.aclose()
        return calls

    # HGET of the list + GET trending + GET of the live catalog's version: the snapshot's
    # pipeline, nothing else
    assert asyncio.run(run()) == [3, 3, 3, 3]
