"""A publication written to and served from a real Redis Cluster (3 masters, Debian redis-server).

The keys of one version hash to different slots, so everything that writes or reads them
must work without multi-key transactions: pipelines with transaction=False.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from online.store import RecommendationStore
from online.store import connect as connect_async
from recolake.publication import connect, go_live, write_user_lists
from recolake.redis_layout import RedisLayout
from tests.conftest import free_port

pytestmark = pytest.mark.redis

NODE_ARGS = [
    "--bind",
    "127.0.0.1",
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--save",
    "",
]
CREATE_ARGS = ["--cluster-replicas", "0", "--cluster-yes"]


def cluster_ports(n: int) -> list[int]:
    """Distinct free ports whose cluster bus port (port + 10000) is valid too."""
    ports: set[int] = set()
    while len(ports) < n:
        port = free_port()
        if port + 10000 <= 65535:
            ports.add(port)
    return sorted(ports)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.fail("redis-server/redis-cli missing: `make redis` installs them")
    root = tmp_path_factory.mktemp("redis-cluster")
    ports = cluster_ports(3)
    procs = []
    try:
        for port in ports:
            node = Path(root / str(port))
            node.mkdir()
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), *NODE_ARGS, "--dir", str(node)],
                    stdout=subprocess.DEVNULL,
                )
            )
        for port in ports:
            deadline = time.monotonic() + 10
            while (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
                ).stdout.strip()
                != "PONG"
            ):
                assert time.monotonic() < deadline, f"node {port} did not start"
                time.sleep(0.05)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), *CREATE_ARGS],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while (
            "cluster_state:ok"
            not in subprocess.run(
                ["redis-cli", "-p", str(ports[0]), "cluster", "info"],
                capture_output=True,
                text=True,
            ).stdout
        ):
            assert time.monotonic() < deadline, "cluster did not reach state ok"
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_publish_and_serve_through_a_redis_cluster(redis_cluster):
    layout = RedisLayout("clustertest")
    buckets = 8
    users = [(f"user-{i}", [(f"item-{i}-{j}", 1.0 - j / 10) for j in range(5)]) for i in range(50)]
    assert write_user_lists(
        users, url=redis_cluster, layout=layout, version="v1", buckets=buckets
    ) == len(users)
    client = connect(redis_cluster)
    slots = {client.keyslot(layout.recs("v1", b)) for b in range(buckets)}
    assert len(slots) > 1, "the test must span several slots"
    popular = [("item-0-0", 9.0), ("item-1-0", 8.0)]
    assert (
        go_live(
            client,
            layout=layout,
            version="v1",
            buckets=buckets,
            popular=popular,
            meta={"model_version": "7"},
            grace_seconds=5,
        )
        is None
    )
    # Staging TTLs were removed on every node that holds a bucket.
    assert all(client.ttl(layout.recs("v1", b)) == -1 for b in range(buckets))
    client.close()

    async def read() -> tuple:
        store = RecommendationStore(connect_async(redis_cluster), layout)
        snap = await store.snapshot(["user-7"], "user-7")
        await store.client.aclose()
        return snap

    snap = asyncio.run(read())
    assert snap.publication.version == "v1" and snap.publication.model_version == "7"
    assert [item for item, _ in snap.als] == [f"item-7-{j}" for j in range(5)]
    assert [item for item, _ in snap.popular] == ["item-0-0", "item-1-0"]
