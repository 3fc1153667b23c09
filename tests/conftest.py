"""Real services for the tests: a local Spark session, a redis-server on a free port, an
MLflow store and a Delta lake in temp directories. Nothing is mocked or silently skipped:
if redis-server is missing the Redis tests fail, loudly."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from recolake.settings import Settings

TEST_KEY = "test-pseudonymisation-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server process on loopback without persistence, on a port of its own that
    survives a restart (``stop()`` then ``start()``: same port, empty data)."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not on PATH: run `make redis` (Debian package)")
        self.port, self.workdir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Terminate (or ``kill``: a crash, nothing flushed) and wait."""
        if self.process is not None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


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


@pytest.fixture(scope="session")
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


@pytest.fixture(params=["single", "cluster"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The online-store contract suite runs against both: a single node and a 3-master
    Redis Cluster (every key of the contract must work across slots)."""
    if request.param == "single":
        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        return server.url
    url = request.getfixturevalue("redis_cluster")
    from recolake.onlinestore import connect

    client = connect(url)
    client.flushall(target_nodes="primaries")
    client.close()
    return url


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


def make_settings(root: Path, redis_url: str = "redis://127.0.0.1:1/0", **overrides) -> Settings:
    values = dict(
        lake_root=str(root / "lake"),
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        mlflow_artifact_root=str(root / "mlflow" / "artifacts"),
        reports_dir=str(root / "reports"),
        erasure_requests_dir=str(root / "erasure"),
        # The API logs impressions there on every read: never into the checkout's var/.
        landing_dir=str(root / "landing"),
        redis_url=redis_url,
        pseudonymisation_key=TEST_KEY,
        spark_shuffle_partitions=2,
        redis_buckets=4,
        publish_grace_seconds=5,
        # One ALS grid point (no tuning trials) unless a test asks for a grid.
        als_tune_ranks=[],
        als_tune_reg_params=[],
        als_tune_alphas=[],
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from recolake.spark import build_session

    root = tmp_path_factory.mktemp("spark")
    # One session serves the whole suite (hundreds of jobs, cached frames of every test):
    # 4g ran out of heap late in a full run; the machine has 24 GiB.
    session = build_session(
        make_settings(root, spark_driver_memory="8g"), app_name="recolake-tests"
    )
    yield session
    session.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a fresh lake and MLflow store in this test's temp dir."""
    return make_settings(tmp_path)


class ApiServer:
    """The real app under uvicorn, on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        import threading

        import uvicorn

        from online.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("API server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def api_server_factory() -> Iterator:
    servers: list[ApiServer] = []

    def start(settings: Settings) -> ApiServer:
        server = ApiServer(settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
