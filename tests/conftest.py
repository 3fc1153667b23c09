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
    """A real redis-server process on loopback, owned by the test session."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: run `make redis` (Debian package)")
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
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

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


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
    session = build_session(make_settings(root), app_name="recolake-tests")
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
