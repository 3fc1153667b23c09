"""Deprecated location: the publish writers live in ``recolake.onlinestore.batch`` (BatchWriter)
and the value codecs in ``recolake.onlinestore.codecs``. These wrappers keep the old call
shapes only until every caller imports from there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.client import connect
from recolake.onlinestore.codecs import decode_items, encode_item_info, encode_items
from recolake.onlinestore.keys import KeyLayout
from recolake.onlinestore.ttl import TtlPolicy

__all__ = [
    "STAGING_TTL_SECONDS",
    "connect",
    "decode_items",
    "encode_item_info",
    "encode_items",
    "go_live",
    "write_catalog",
    "write_neighbours",
    "write_user_lists",
]

STAGING_TTL_SECONDS = TtlPolicy().staging_seconds


def _writer(url: str, layout: KeyLayout, version: str, buckets: int) -> BatchWriter:
    return BatchWriter(url=url, layout=layout, version=version, buckets=buckets)


def write_user_lists(
    rows: Iterable, *, url: str, layout: KeyLayout, version: str, buckets: int
) -> int:
    return _writer(url, layout, version, buckets).write_user_lists(rows)


def write_catalog(
    rows: Iterable, *, url: str, layout: KeyLayout, version: str, buckets: int
) -> int:
    return _writer(url, layout, version, buckets).write_catalog(rows)


def write_neighbours(
    rows: Iterable, *, url: str, layout: KeyLayout, version: str, buckets: int
) -> int:
    return _writer(url, layout, version, buckets).write_neighbours(rows)


def go_live(
    client: redis.Redis,
    *,
    layout: KeyLayout,
    version: str,
    buckets: int,
    popular: Sequence[tuple[str, float]],
    meta: dict[str, str],
    grace_seconds: int,
) -> str | None:
    """The old signature: switches through the caller's client (the writer's URL is unused)."""
    return _writer("", layout, version, buckets).go_live(
        popular=popular, meta=meta, grace_seconds=grace_seconds, client=client
    )
