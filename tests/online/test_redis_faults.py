"""Redis faults against a real redis-server of the test's own: a stall (CLIENT PAUSE) must
not pile requests up, and a restart without persistence must say what to do.

The stall run prints its figures (requests sent, answered within the bound, 5xx, recovery
time): `pytest -s tests/online/test_redis_faults.py`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import TEST_KEY, RedisServer, free_port, make_settings
from tests.online.conftest import publish_sample

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

PAUSE_MS = 3000
CONCURRENCY = 16


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (it is stalled, killed and restarted)."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


class ApiProcess:
    """The app under uvicorn in its own process (as served: the load generator of the test
    does not share its interpreter), configured through RECOLAKE_* variables."""

    def __init__(self, settings, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "RECOLAKE_REDIS_URL": settings.redis_url,
            "RECOLAKE_REDIS_BUCKETS": str(settings.redis_buckets),
            "RECOLAKE_PSEUDONYMISATION_KEY": TEST_KEY,
            "RECOLAKE_LANDING_DIR": str(root / "landing"),
            "RECOLAKE_LAKE_ROOT": str(root / "lake"),
        }
        args = [sys.executable, "-m", "uvicorn", "online.app:create_app", "--factory"]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(args, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                assert self.process.poll() is None, "API process exited"
                assert time.monotonic() < deadline, "API process did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


@pytest.fixture
def api(own_redis, tmp_path):
    settings = make_settings(tmp_path, redis_url=own_redis.url)
    publish_sample(own_redis.url, settings)
    server = ApiProcess(settings, tmp_path)
    yield settings, server
    server.stop()


def bound_seconds(settings) -> float:
    """The longest a read should take while Redis stalls: the per-request Redis deadline
    (which bounds pool wait, reconnects and commands together) plus a margin for a loaded
    2-core machine."""
    return settings.api_redis_deadline_seconds + 0.5


async def _load(
    base: str, until: float, paths: list[str]
) -> list[tuple[float, float, int, str, str]]:
    """CONCURRENCY clients each sending requests back to back until ``until``: (start,
    duration, status, body) per request."""
    results: list[tuple[float, float, int, str, str]] = []
    limits = httpx.Limits(max_connections=CONCURRENCY + 4)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker(n: int) -> None:
            i = n
            while time.monotonic() < until:
                path = paths[i % len(paths)]
                i += 1
                started = time.monotonic()
                response = await client.get(path)
                results.append(
                    (started, time.monotonic() - started, response.status_code, response.text, path)
                )

        await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
    return results


async def _health(base: str, until: float) -> list[tuple[float, int]]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            out.append((started, (await client.get("/healthz")).status_code))
            await asyncio.sleep(0.1)
    return out


def test_stalled_redis_answers_503_within_bound_and_recovers(api, own_redis):
    settings, server = api
    paths = [
        "/v1/recommendations/alice?k=5",
        "/v1/recommendations?session_id=s1&k=3",
        "/v1/items/shoe/similar",
    ]
    for path in paths:  # warm: caches filled, connections open
        assert httpx.get(f"{server.url}{path}").status_code == 200
    bound = bound_seconds(settings)

    async def scenario():
        start = time.monotonic()
        until = start + 0.5 + PAUSE_MS / 1000 + 2.5
        paused: list[float] = []

        async def pause():
            await asyncio.sleep(0.5)
            admin = redis.asyncio.Redis.from_url(own_redis.url)
            sent = time.monotonic()
            await admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
            paused.extend([sent, time.monotonic()])  # the pause began between the two
            await admin.aclose()

        load, health, _ = await asyncio.gather(
            _load(server.url, until, paths), _health(server.url, until), pause()
        )
        # inside [pause_at, resume_at] Redis was paused for sure
        return paused[1], paused[0] + PAUSE_MS / 1000, load, health

    pause_at, resume_at, load, health = asyncio.run(scenario())

    during = [r for r in load if pause_at + 0.05 < r[0] < resume_at]
    statuses = {r[2] for r in load}
    within = [r for r in load if r[1] <= bound]
    five_xx = [r for r in load if r[2] >= 500]
    other_5xx = [r for r in five_xx if r[2] != 503]
    ok_after = [r for r in load if r[0] >= resume_at and r[2] == 200]
    failed_after = [r for r in load if r[0] + r[1] > resume_at and r[2] != 200]
    latencies = sorted(r[1] for r in load)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    recovered_at = max((r[0] + r[1] for r in failed_after), default=resume_at)
    print(
        f"\nRedis stall (CLIENT PAUSE {PAUSE_MS} ms, {CONCURRENCY} concurrent clients): "
        f"requests sent {len(load)}, answered within {bound:.1f} s {len(within)}, "
        f"5xx {len(five_xx)} (all 503: {not other_5xx}), 503 of those started during the "
        f"pause {sum(r[2] == 503 for r in during)}/{len(during)}, p50 {p50:.3f} s, p99 "
        f"{p99:.3f} s, slowest "
        f"{max(r[1] for r in load):.3f} s, recovery {max(0.0, recovered_at - resume_at):.3f} s "
        f"after the pause ended; healthz {[s for _, s in health]}"
    )
    # The stall is answered, not waited out: every read that started in the pause (up to a
    # deadline before its end) was answered before the pause ended. (Without timeouts they
    # all end when Redis resumes; the per-request bound itself is reported, since CPU
    # contention on a shared machine adds to it.)
    recs = [r for r in during if r[4].startswith("/v1/recommendations")]
    late = [
        (round(r[0] - pause_at, 3), round(r[1], 3), r[2])
        for r in during
        if r[0] < resume_at - 1.5 and r[0] + r[1] >= resume_at
    ]
    assert not late, late
    assert statuses <= {200, 503} and not other_5xx
    # recommendations always read the user's lists: 503 once the cached live pointer (1 s)
    # expired; items pages may still be answered from the process cache of the publication
    served = [
        (round(r[0] - pause_at, 3), r[1], r[2], r[4])
        for r in recs
        if r[2] != 503 and r[0] > pause_at + 1.1 and r[0] + r[1] < resume_at
    ]
    assert recs and not served, served
    for _, _, status, body, _ in load:
        if status == 503:
            assert "Too many connections" not in body
            assert body.startswith('{"detail":')
    assert ok_after, "reads did not recover after the pause"
    assert recovered_at - resume_at < 2.0
    # healthz: 503 while paused, 200 again after
    assert all(s == 503 for t, s in health if pause_at + 0.05 < t < resume_at - 0.6)
    assert [s for t, s in health if t > resume_at + 1.0] and all(
        s == 200 for t, s in health if t > resume_at + 1.0
    )


def test_503_carries_retry_after_and_error_body(api, own_redis):
    _settings, server = api
    own_redis.stop(kill=True)
    response = httpx.get(f"{server.url}/v1/recommendations/alice", timeout=10)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "recommendation store unavailable" in response.json()["detail"]
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["redis"] is False


def test_redis_restarted_without_persistence_says_nothing_published_until_republish(api, own_redis):
    settings, server = api
    assert httpx.get(f"{server.url}/v1/recommendations/alice").status_code == 200
    own_redis.stop(kill=True)
    own_redis.start()  # same port, empty: no persistence
    deadline = time.monotonic() + 5
    while True:  # the live pointer is cached for 1 s
        response = httpx.get(f"{server.url}/v1/recommendations/alice", timeout=10)
        if response.status_code == 503 and "nothing published" in response.json()["detail"]:
            break
        assert time.monotonic() < deadline, (response.status_code, response.text)
        time.sleep(0.2)
    assert response.headers["retry-after"] == "30"
    assert "republish" in response.json()["detail"]
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 503
    assert health.json()["redis"] is True and "nothing published" in health.json()["detail"]

    publish_sample(own_redis.url, settings, version="v8")  # what `recolake republish` does
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/v1/recommendations/alice").status_code != 200:
        assert time.monotonic() < deadline, "not serving again after the re-publish"
        time.sleep(0.2)
    body = httpx.get(f"{server.url}/v1/recommendations/alice").json()
    assert body["publication"] == "v8" and body["items"][0]["source"] == "als"
    assert httpx.get(f"{server.url}/healthz").json()["publication"] == "v8"
