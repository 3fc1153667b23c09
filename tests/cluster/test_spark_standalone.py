"""The nightly pipeline on a real standalone Spark cluster (master + worker on 127.0.0.1, started
with the pyspark package's sbin/spark-daemon.sh) equals the local[2] run on the same input: the
same row counts, and the same published lists (popular, neighbours, catalog item for item; ALS
within ALS_SCORE_TOLERANCE)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from recolake.onlinestore import NEIGHBOUR_KINDS, KeyLayout, connect
from recolake.onlinestore.codecs import (
    COMPACT_CODEC_VERSION,
    as_bytes,
    decode_index_block,
    decode_items,
    decode_ranked_positions,
)
from recolake.settings import PROJECT_ROOT
from tests.airflow.conftest import MAIN_BIN, build_dist, recolake_env, sample_slice
from tests.conftest import free_port

pytestmark = [
    pytest.mark.spark,
    pytest.mark.redis,
    pytest.mark.slow,
]

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    out = subprocess.run(
        [
            str(MAIN_BIN / "python"),
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def standalone_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("spark-cluster")
    home = spark_home()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_PID_DIR": str(root / "pid"),
        "SPARK_LOG_DIR": str(root / "log"),
        "SPARK_WORKER_DIR": str(root / "work"),
        "PATH": f"{MAIN_BIN}{os.pathsep}{os.environ['PATH']}",
    }
    daemon = str(home / "sbin" / "spark-daemon.sh")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    try:
        subprocess.run(
            [
                daemon,
                "start",
                MASTER,
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                daemon,
                "start",
                WORKER,
                "1",
                "--host",
                "127.0.0.1",
                "--cores",
                "2",
                "--memory",
                "3g",
                "--webui-port",
                str(worker_ui),
                url,
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 180  # a busy 2-core machine is slow to start JVMs
        while True:
            logs = "".join(p.read_text() for p in (root / "log").glob("*Master*.out"))
            if "Registering worker" in logs:
                break
            assert time.monotonic() < deadline, f"worker did not register:\n{logs[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        for cls in (WORKER, MASTER):
            subprocess.run([daemon, "stop", cls, "1"], env=env, capture_output=True)


def run_nightly(
    master: str, root: Path, redis_url: str, namespace: str, events: Path
) -> tuple[str, float]:
    env = {
        **os.environ,
        **recolake_env(root, redis_url),
        "RECOLAKE_REDIS_NAMESPACE": namespace,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": f"{MAIN_BIN}{os.pathsep}{os.environ['PATH']}",
        # The whole sample's nightly, as shipped (recolake_env's 2g is for the DAG's slice):
        # under local[2] the executors live in the driver, and 2g ran out building a broadcast.
        "RECOLAKE_SPARK_DRIVER_MEMORY": "4g",
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [
            str(PROJECT_ROOT / "scripts" / "spark-submit.sh"),
            "--master",
            master,
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--conf",
            "spark.executor.memory=1g",
            str(PROJECT_ROOT / "pipelines" / "nightly.py"),
            "--ds",
            "2011-12-09",
            "--events",
            str(events),
            "--format",
            "online_retail",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout, seconds


@dataclass
class Publication:
    """Everything a live publication serves, decoded (not its stored bytes)."""

    users: dict[str, list[tuple[str, float]]]
    popular: list[tuple[str, float]]
    catalog: dict[str, dict]
    neighbours: dict[str, dict[str, list[tuple[str, float]]]]


def published(client: redis.Redis, namespace: str) -> Publication:
    layout = KeyLayout(namespace)
    version = client.get(layout.live)
    assert version, f"nothing published in {namespace}"
    meta = client.hgetall(layout.meta(version))
    buckets = int(meta["buckets"])

    def merged(key_of) -> dict[str, str]:
        out: dict[str, str] = {}
        for b in range(buckets):
            out.update(client.hgetall(key_of(b)))
        return out

    recs = merged(lambda b: layout.recs(version, b))
    if meta["codec"] == COMPACT_CODEC_VERSION:  # positions in the publication's own index
        index = [
            item
            for b in range(int(meta["index_blocks"]))
            for item in decode_index_block(client.get(layout.item_index(version, b)))
        ]
        users = {
            u: [(index[p], s) for p, s in decode_ranked_positions(as_bytes(v))]
            for u, v in recs.items()
        }
    else:
        users = {u: decode_items(v) for u, v in recs.items()}
    return Publication(
        users=users,
        popular=decode_items(client.get(layout.popular(version))),
        catalog={i: json.loads(v) for i, v in merged(lambda b: layout.items(version, b)).items()},
        neighbours={
            kind: {
                i: decode_items(v)
                for i, v in merged(lambda b, k=kind: layout.neighbours(version, k, b)).items()
            }
            for kind in NEIGHBOUR_KINDS
        },
    )


#: ALS on another deployment may sum in another order: scores may move by this much, and two
#: items may trade places only when their scores are this close (plus, for compact lists, the
#: codec's quantisation step: 1/255 of the list's score range).
ALS_SCORE_TOLERANCE = 1e-3
#: Deterministic lists (popular, neighbours) are compared item for item; scores only through
#: the codec's 6-decimal rounding.
EXACT_SCORE = 1e-6


def als_differences(
    local: list[tuple[str, float]], cluster: list[tuple[str, float]]
) -> tuple[list[str], float]:
    """Violations of the ALS tolerance in one user's list, and the largest score difference."""
    problems, largest = [], 0.0
    if len(local) != len(cluster):
        return [f"lengths {len(local)} != {len(cluster)}"], float("inf")
    steps = [
        (max(s for _, s in x) - min(s for _, s in x)) / 255 if x else 0 for x in (local, cluster)
    ]
    tolerance = ALS_SCORE_TOLERANCE + sum(steps)
    for pos, ((li, ls), (ci, cs)) in enumerate(zip(local, cluster, strict=True)):
        largest = max(largest, abs(ls - cs))
        if abs(ls - cs) > tolerance:
            what = "score" if li == ci else "other item, not a near-tie:"
            problems.append(f"#{pos}: {what} {li} ({ls}) vs {ci} ({cs})")
    return problems, largest


def assert_same_ranked(name: str, local: list, cluster: list) -> None:
    assert [i for i, _ in local] == [i for i, _ in cluster], name
    assert [s for _, s in local] == pytest.approx([s for _, s in cluster], abs=EXACT_SCORE), name


def metrics_table(summary: str) -> dict[str, dict[str, float]]:
    """The nightly summary's table (``models on the hold-out (N users):``, a header of
    metric names, one row per model) as {model: {metric: value}}."""
    lines = summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("models on the hold-out"))
    header = lines[start + 1].split()[1:]
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("  "):
            break
        name, *values = line.split()
        table[name] = {m: float(v) for m, v in zip(header, values, strict=True)}
    assert table, summary
    return table


@pytest.mark.timeout(3600)  # two whole nightlies (about 6 min on an idle machine)
def test_standalone_cluster_equals_local(standalone_master, tmp_path, redis_server):
    build_dist()
    events = sample_slice(tmp_path / "slice.csv.gz", modulo=16)
    local_out, local_s = run_nightly(
        "local[2]", tmp_path / "local", redis_server.url, "loc", events
    )
    cluster_out, cluster_s = run_nightly(
        standalone_master, tmp_path / "cluster", redis_server.url, "clu", events
    )
    print(f"local[2] nightly: {local_s:.1f} s; standalone cluster nightly: {cluster_s:.1f} s")
    print(local_out[-1500:])
    print(cluster_out[-1500:])

    def counts(out: str) -> list[str]:
        """The rows line and the data steps' counts (their step lines without the seconds)."""
        data_steps = ("ingest", "silver", "gold", "item_cf", "content")
        step = re.compile(rf"^({'|'.join(data_steps)})\s+[0-9.]+ s\s+[0-9]+ jobs\s+(.*)$")
        return [line for line in out.splitlines() if line.startswith("rows:")] + [
            f"{m.group(1)} {m.group(2)}" for m in map(step.match, out.splitlines()) if m
        ]

    assert len(counts(local_out)) == 6, counts(local_out)
    assert counts(local_out) == counts(cluster_out)
    client = connect(redis_server.url)  # reads binary (compact) values losslessly
    local, cluster = published(client, "loc"), published(client, "clu")
    # Deterministic models: the same lists, item for item, in the same order.
    assert local.popular and local.catalog
    assert_same_ranked("popular", local.popular, cluster.popular)
    assert local.catalog == cluster.catalog
    assert set(local.neighbours) == set(cluster.neighbours)
    assert any(local.neighbours.values()), "no neighbours published: nothing compared"
    for kind, lists in local.neighbours.items():
        assert set(lists) == set(cluster.neighbours[kind]), kind
        for item, ranked in lists.items():
            assert_same_ranked(f"{kind} {item}", ranked, cluster.neighbours[kind][item])
    # ALS: the same users, each list the same items in the same order within the tolerance.
    assert local.users and set(local.users) == set(cluster.users)
    largest, problems = 0.0, {}
    for user, ranked in local.users.items():
        found, diff = als_differences(ranked, cluster.users[user])
        largest = max(largest, diff)
        if found:
            problems[user] = found
    print(f"ALS lists: {len(local.users)} users, largest score difference {largest:.2e}")
    assert not problems, dict(list(problems.items())[:5])
    # Deterministic given the same data: the evaluated users and the popularity baseline.
    evaluated = [line for line in local_out.splitlines() if line.startswith("models on the hold")]
    assert evaluated and evaluated[0] in cluster_out.splitlines()
    local_metrics, cluster_metrics = metrics_table(local_out), metrics_table(cluster_out)
    assert set(local_metrics) == set(cluster_metrics)
    for name in ("ndcg@10", "recall@10", "hit_rate@10"):
        assert cluster_metrics["popularity"][name] == local_metrics["popularity"][name]
        # ALS is pinned (models.als.pinned): the same lists within the score tolerance above.
        assert cluster_metrics["als"][name] == pytest.approx(local_metrics["als"][name], abs=1e-3)
