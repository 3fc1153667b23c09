"""The merchandising rules in Redis (KeyLayout.rules: one hash), versioned for audit.

Every write stores version n+1 (who and when) in one Lua script on one key, so concurrent
PUTs from several API processes never lose an update or reuse a number, on a single node or a
Cluster; the last ``history`` versions stay readable (``version(n)``). API processes cache the
current document for ``ttl`` seconds (~1 s): a PUT on one process is served by every other
within that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis

from recolake.onlinestore.codecs import decode_rules, encode_rules
from recolake.onlinestore.keys import KeyLayout
from recolake.rules import NO_RULES, Rule, RulesDocument, parse_rules

#: Versions kept for audit unless told otherwise.
HISTORY = 50

# KEYS[1] = the rules hash; ARGV = payload, versions kept, "1" to write only if none stored.
_WRITE = """
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], 'version') == 1 then return 0 end
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'v:' .. v, ARGV[1])
local old = v - tonumber(ARGV[2])
if old > 0 then redis.call('HDEL', KEYS[1], 'v:' .. old) end
return v
"""


def _decode(version: int, payload: str) -> RulesDocument:
    doc = decode_rules(payload)
    return RulesDocument(
        rules=parse_rules(doc["rules"]),
        version=version,
        author=doc.get("author"),
        updated_at=doc.get("updated_at"),
    )


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _payload(rules: Sequence[Rule], author: str | None, updated_at: str | None) -> str:
    return encode_rules([r.as_dict() for r in rules], author, updated_at or _now_iso())


def _document(reply: Sequence, version_asked: int | None = None) -> RulesDocument:
    version, payload = reply
    if version is None or payload is None:
        return NO_RULES
    return _decode(version_asked if version_asked is not None else int(version), payload)


class RulesStore:
    """Async read/write of the rules hash, with a per-process cache of the current one."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: KeyLayout,
        ttl: float = 1.0,
        history: int = HISTORY,
    ) -> None:
        self.client = client
        self.key = layout.rules
        self.ttl = ttl
        self.history = history
        self._cached: tuple[float, RulesDocument] | None = None

    async def current(self) -> RulesDocument:
        """The current document (NO_RULES: version 0 when none is stored); at most ``ttl``
        seconds old."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        doc = _document(await self.client.hmget(self.key, ["version", "doc"]))
        self._cached = (now, doc)
        return doc

    async def version(self, n: int) -> RulesDocument | None:
        """Version ``n`` if still kept (None: never written, or older than the history)."""
        payload = await self.client.hget(self.key, f"v:{n}")
        return _decode(n, payload) if payload is not None else None

    async def put(
        self,
        rules: Sequence[Rule],
        author: str | None,
        *,
        only_if_none: bool = False,
        updated_at: str | None = None,
    ) -> RulesDocument | None:
        """Store ``rules`` as the next version (None: ``only_if_none`` and some were stored)."""
        payload = _payload(rules, author, updated_at)
        flag = "1" if only_if_none else "0"
        version = int(await self.client.eval(_WRITE, 1, self.key, payload, self.history, flag))
        if version == 0:
            return None
        self._cached = None  # this process serves its own write at once
        return _decode(version, payload)


def put_sync(
    client: redis.Redis,
    layout: KeyLayout,
    rules: Sequence[Rule],
    author: str | None,
    history: int = HISTORY,
) -> int:
    """``RulesStore.put`` for the CLI (`recolake rules --load`): the stored version."""
    payload = _payload(rules, author, None)
    return int(client.eval(_WRITE, 1, layout.rules, payload, history, "0"))


def current_sync(client: redis.Redis, layout: KeyLayout) -> RulesDocument:
    return _document(client.hmget(layout.rules, ["version", "doc"]))
