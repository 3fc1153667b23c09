"""A real Apache Kafka broker (KRaft: broker and controller in one JVM, no ZooKeeper) for
the Kafka event log's tests, from the jars `make kafka-jars` resolves (scripts/kafka/pom.xml)
into ./jars-kafka. Started once for this folder's tests, on free loopback ports, with its data
and log in a temp dir. Nothing is skipped: without Java or the jars the tests fail, loudly."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recolake.settings import PROJECT_ROOT
from tests.conftest import free_port

JARS_DIR = PROJECT_ROOT / "jars-kafka"
LOG4J = PROJECT_ROOT / "scripts" / "kafka" / "log4j.properties"
JVM_OPTS = ["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]


class KafkaBroker:
    """One KRaft node (process.roles=broker,controller) as a subprocess."""

    def __init__(self, workdir: Path) -> None:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java is not on PATH (the Kafka broker is a JVM)")
        if not (JARS_DIR / "kafka_2.13-3.9.2.jar").exists():
            raise RuntimeError(f"No Kafka broker jars in {JARS_DIR}: run `make kafka-jars`")
        self.workdir = workdir
        self.port, controller = free_port(), free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        config = workdir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={workdir / 'data'}",
                    # Topics are created explicitly (AdminClient): a typo fails, loudly.
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        classpath = ["-cp", f"{JARS_DIR}/*", f"-Dlog4j.configuration=file:{LOG4J}"]
        logs = [f"-Dkafka.logs.dir={workdir}"]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        format_args = ["--cluster-id", cluster_id, "--config", str(config)]
        subprocess.run(
            [java, *JVM_OPTS, *classpath, *logs, "kafka.tools.StorageTool", "format", *format_args],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.stdout = open(workdir / "stdout.log", "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [java, *JVM_OPTS, *classpath, *logs, "kafka.Kafka", str(config)],
            stdout=self.stdout,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready(timeout=90)

    def log_tail(self) -> str:
        log = self.workdir / "server.log"
        out = (self.workdir / "stdout.log").read_text()[-2000:]
        return out + (log.read_text()[-3000:] if log.exists() else "")

    def wait_ready(self, timeout: float) -> None:
        """Until the broker answers a metadata request (the controller has elected itself
        and the broker has registered)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kafka broker exited:\n{self.log_tail()}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kafka broker not ready:\n{self.log_tail()}") from None
            time.sleep(0.2)

    def create_topic(self, name: str, partitions: int = 2) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)
        futures[name].result(timeout=60)

    def stop(self) -> None:
        self.process.terminate()  # SIGTERM: a controlled shutdown
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.stdout.close()


@pytest.fixture(scope="package")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    started = time.perf_counter()
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))  # stopped when tests/kafka is done
    print(f"Kafka broker ready in {time.perf_counter() - started:.1f} s")
    yield broker
    broker.stop()


@pytest.fixture
def kafka_topic(kafka_broker: KafkaBroker) -> str:
    """A fresh topic (2 partitions) for one test."""
    name = f"events-{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topic(name)
    return name


@pytest.fixture
def kafka_api(api_server_factory):
    """api_server_factory, and each app's Kafka producer closed afterwards (the app does not
    close its event log at shutdown: it would go on reconnecting to the stopped broker)."""
    servers = []

    def start(settings):
        server = api_server_factory(settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        log = getattr(server.server.config.app.state, "event_log", None)
        if log is not None:
            log.close()
