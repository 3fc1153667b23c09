"""The one way to open a Redis client: single node or Redis Cluster (``redis+cluster://`` or
``?cluster=true``), always with connect and socket timeouts, and a bounded pool that waits a
short, bounded time for a free connection instead of failing with "Too many connections" or
queueing without bound when Redis stalls."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis


@dataclass(frozen=True)
class RedisTimeouts:
    connect_seconds: float = 0.3
    socket_seconds: float = 0.3
    pool_size: int = 64
    pool_wait_seconds: float = 0.2

    @classmethod
    def for_api(cls, settings) -> RedisTimeouts:
        return cls(
            connect_seconds=settings.redis_connect_timeout_seconds,
            socket_seconds=settings.redis_socket_timeout_seconds,
            pool_size=settings.redis_pool_size,
            pool_wait_seconds=settings.redis_pool_timeout_seconds,
        )

    @classmethod
    def for_jobs(cls, settings) -> RedisTimeouts:
        """Batch writers send big pipelines: same connect timeout, a longer socket one."""
        return cls(
            connect_seconds=settings.redis_connect_timeout_seconds,
            socket_seconds=settings.redis_job_socket_timeout_seconds,
            pool_size=8,
            pool_wait_seconds=max(settings.redis_pool_timeout_seconds, 1.0),
        )


def is_cluster_url(url: str) -> bool:
    return url.startswith("redis+cluster://") or "cluster=true" in url


def _plain_url(url: str) -> str:
    """The URL redis-py understands: scheme redis://, without our cluster=true flag."""
    parts = urlsplit(url.replace("redis+cluster://", "redis://", 1))
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "cluster"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _client_options(t: RedisTimeouts) -> dict:
    return dict(
        decode_responses=True,
        # compact values are binary (codecs.as_bytes recovers them exactly)
        encoding_errors="surrogateescape",
        socket_connect_timeout=t.connect_seconds,
        socket_timeout=t.socket_seconds,
    )


def connect(url: str, timeouts: RedisTimeouts | None = None) -> redis.Redis:
    """A synchronous client (jobs, executors, CLI)."""
    t = timeouts or RedisTimeouts()
    common = _client_options(t)
    if is_cluster_url(url):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(_plain_url(url), **common)  # type: ignore[return-value]
    pool = redis.BlockingConnectionPool.from_url(
        _plain_url(url), max_connections=t.pool_size, timeout=t.pool_wait_seconds, **common
    )
    return redis.Redis(connection_pool=pool)


def connect_async(url: str, timeouts: RedisTimeouts | None = None) -> aioredis.Redis:
    """An asyncio client (the API)."""
    t = timeouts or RedisTimeouts()
    common = _client_options(t)
    if is_cluster_url(url):
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(  # type: ignore[return-value]
            _plain_url(url), max_connections=t.pool_size, **common
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        _plain_url(url), max_connections=t.pool_size, timeout=t.pool_wait_seconds, **common
    )
    return aioredis.Redis(connection_pool=pool)
