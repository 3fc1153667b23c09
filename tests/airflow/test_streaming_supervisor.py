"""The streaming supervisor: its pieces on their own (no Airflow, no Spark), then the
recolake_streaming DAG under real Airflow supervising the real spark-submitted job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recolake import stream_supervisor as sup
from recolake.eventlog import LocalEventLog
from recolake.onlinestore import KeyLayout, user_subject
from recolake.privacy import pseudonymise
from tests.airflow.conftest import AIRFLOW_PYTHON, Airflow, build_dist, recolake_env
from tests.conftest import TEST_KEY, make_settings

# --------------------------------------------------------------------------- the process


def sleeper(marker: str = sup.STREAMING_APP) -> subprocess.Popen:
    """A live process whose command line names the marker (as spark-submit's does)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True
    )


def test_is_running_only_for_a_live_streaming_pid(tmp_path):
    pidfile = tmp_path / "streaming.pid"
    assert sup.is_running(pidfile) is None  # no pidfile
    pidfile.write_text("garbage")
    assert sup.is_running(pidfile) is None
    ours, other = sleeper(), sleeper("something-else.py")
    try:
        pidfile.write_text(str(ours.pid))
        assert sup.is_running(pidfile) == ours.pid
        pidfile.write_text(str(other.pid))  # a reused pid: alive, but not the job
        assert sup.is_running(pidfile) is None
        ours.kill()  # a zombie (not waited for): not running
        deadline = time.monotonic() + 10
        while Path(f"/proc/{ours.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pidfile.write_text(str(ours.pid))
        assert sup.is_running(pidfile) is None
        ours.wait()
        assert sup.is_running(pidfile) is None  # gone
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()


def test_start_detached_records_a_process_group_leader(tmp_path):
    pidfile = tmp_path / "run" / "streaming.pid"
    command = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    pid = sup.start_detached([*command, sup.STREAMING_APP], pidfile, settle_seconds=0.5)
    try:
        assert sup.read_pid(pidfile) == pid == sup.is_running(pidfile)
        assert os.getpgid(pid) == pid  # one killpg stops the JVM and its Python driver
        deadline = time.monotonic() + 10
        while b"up" not in pidfile.with_suffix(".log").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(pid, signal.SIGKILL)


def test_start_detached_fails_loudly_when_the_job_dies_at_once(tmp_path):
    pidfile = tmp_path / "streaming.pid"
    command = [sys.executable, "-c", "import sys; sys.exit('missing dist/recolake-py.zip')"]
    with pytest.raises(RuntimeError, match=r"exited at start-up with code 1(?s:.)*missing dist"):
        sup.start_detached(command, pidfile, settle_seconds=10)


# --------------------------------------------------------------------------- the lag


def land(landing: Path, name: str, age: float, now: float) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    (landing / name).write_text("{}\n")
    os.utime(landing / name, (now - age, now - age))


def source_log(checkpoint: Path, batch: int, names: list[str], landing: Path) -> None:
    """A file source log entry as Spark writes it (``v1`` + one JSON line per file)."""
    folder = checkpoint / "sources" / "0"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"path": (landing / n).as_uri(), "timestamp": 0, "batchId": batch})
        for n in names
    ]
    (folder / str(batch)).write_text("\n".join(["v1", *lines]))
    (folder / f".{batch}.crc").write_bytes(b"crc")


def commit(checkpoint: Path, batch: int) -> None:
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_lag_is_the_age_of_the_oldest_file_no_committed_batch_has_read(tmp_path):
    now = 1_800_000_000.0
    landing, ckpt = tmp_path / "landing dir", tmp_path / "ckpt"
    # Idle: old files, all read by committed batches -> not behind, however old.
    land(landing, "a.jsonl", 7200, now)
    land(landing, "b.jsonl", 3600, now)
    land(landing, ".c.jsonl.tmp", 9000, now)  # in flight: the file source skips it
    source_log(ckpt, 0, ["a.jsonl"], landing)
    source_log(ckpt, 1, ["b.jsonl"], landing)
    commit(ckpt, 0)
    commit(ckpt, 1)
    assert sup.lag_seconds(landing, ckpt, now) == 0.0
    # A new file not yet read (job down or slow): its age.
    land(landing, "d.jsonl", 40, now)
    assert sup.lag_seconds(landing, ckpt, now) == pytest.approx(40)
    # Planned in batch 2 but not committed: still waiting.
    source_log(ckpt, 2, ["d.jsonl"], landing)
    assert sup.lag_seconds(landing, ckpt, now) == pytest.approx(40)
    commit(ckpt, 2)
    assert sup.lag_seconds(landing, ckpt, now) == 0.0
    # Compaction: batch files replaced by <n>.compact holding all entries so far.
    for n in ("0", "1", "2"):
        (ckpt / "sources" / "0" / n).unlink()
    folder = ckpt / "sources" / "0"
    entries = [("a.jsonl", 0), ("b.jsonl", 1), ("d.jsonl", 2)]
    lines = [json.dumps({"path": (landing / n).as_uri(), "batchId": b}) for n, b in entries]
    (folder / "2.compact").write_text("\n".join(["v1", *lines]))
    assert sup.lag_seconds(landing, ckpt, now) == 0.0
    # No checkpoint yet (never started): every landed file waits.
    assert sup.lag_seconds(landing, tmp_path / "none", now) == pytest.approx(7200)
    assert sup.lag_seconds(tmp_path / "no-landing", ckpt, now) == 0.0


def test_check_lag_names_each_query_behind(tmp_path):
    now = time.time()
    settings = make_settings(
        tmp_path,
        landing_dir=str(tmp_path / "landing"),
        stream_checkpoint_dir=str(tmp_path / "ckpt"),
        stream_max_lag_seconds=60,
    )
    landing, root = Path(settings.landing_dir), Path(settings.stream_checkpoint_dir)
    land(landing, "old.jsonl", 600, now)
    land(landing, "new.jsonl", 5, now)
    for query in sup.QUERIES:  # both read old.jsonl; only redis committed new.jsonl too
        source_log(root / query, 0, ["old.jsonl"], landing)
        commit(root / query, 0)
    source_log(root / "redis", 1, ["new.jsonl"], landing)
    commit(root / "redis", 1)
    assert sup.check_lag(settings, now) == {"redis": 0.0, "lake": pytest.approx(5)}
    os.utime(landing / "new.jsonl", (now - 120, now - 120))  # the lake query stalls
    with pytest.raises(sup.StreamBehindError, match=r"behind: lake query 120 s .*limit 60 s"):
        sup.check_lag(settings, now)


def test_prune_deletes_only_old_files_every_query_committed(tmp_path):
    now = time.time()
    settings = make_settings(
        tmp_path,
        landing_dir=str(tmp_path / "landing"),
        stream_checkpoint_dir=str(tmp_path / "ckpt"),
        landing_retention_hours=1,
    )
    landing, root = Path(settings.landing_dir), Path(settings.stream_checkpoint_dir)
    for name, age in (("old.jsonl", 7200), ("recent.jsonl", 60), ("half.jsonl", 7200)):
        land(landing, name, age, now)
    land(landing, "unread.jsonl", 9000, now)
    for query in sup.QUERIES:
        source_log(root / query, 0, ["old.jsonl", "recent.jsonl"], landing)
        commit(root / query, 0)
    source_log(root / "redis", 1, ["half.jsonl"], landing)  # the lake query has not read it
    commit(root / "redis", 1)
    assert sup.prune_landed(settings, now) == ["old.jsonl"]
    assert sorted(p.name for p in landing.iterdir()) == [
        "half.jsonl",
        "recent.jsonl",
        "unread.jsonl",
    ]
    assert sup.prune_landed(settings.model_copy(update={"event_log": "kafka"}), now) == []


# --------------------------------------------------------------------------- the live DAG

STREAMING_DAG_TEST = """
import json, os, time
from airflow.dag_processing.dagbag import DagBag
folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
bag = DagBag(dag_folder=os.path.join(folder, "recolake_streaming.py"))
assert not bag.import_errors, bag.import_errors
started = time.perf_counter()
run = bag.dags["recolake_streaming"].test()
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states,
                              "seconds": time.perf_counter() - started}))
"""


def run_streaming_dag(airflow: Airflow) -> tuple[dict, str]:
    """One dag.test() of recolake_streaming: (result, the subprocess's output for logs)."""
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", STREAMING_DAG_TEST],
        env=airflow.env,
        cwd=airflow.env["AIRFLOW_HOME"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :]), output


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


@pytest.fixture
def supervised(tmp_path, redis_server, airflow_python):
    """Airflow home + RECOLAKE_* env in tmp dirs; every job the DAG started is killed after."""
    build_dist()  # the job is spark-submitted with dist/recolake-py.zip
    env = {
        **recolake_env(tmp_path, redis_server.url),
        "RECOLAKE_LANDING_DIR": str(tmp_path / "landing"),
        "RECOLAKE_STREAM_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "RECOLAKE_STREAM_PIDFILE": str(tmp_path / "run" / "streaming.pid"),
        "RECOLAKE_STREAM_LAKE_TRIGGER_SECONDS": "1",
    }
    (tmp_path / "airflow").mkdir()
    airflow = Airflow(tmp_path / "airflow", env)
    airflow.migrate()
    pids: set[int] = set()
    yield airflow, Path(env["RECOLAKE_STREAM_PIDFILE"]), pids
    last = sup.read_pid(env["RECOLAKE_STREAM_PIDFILE"])
    for pid in pids | ({last} if last else set()):
        kill_group(pid)


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.redis
@pytest.mark.airflow
def test_dag_starts_keeps_and_restarts_the_job_and_alerts_when_behind(
    supervised, tmp_path, redis_client
):
    airflow, pidfile, pids = supervised
    settings = make_settings(
        tmp_path,
        airflow.env["RECOLAKE_REDIS_URL"],
        landing_dir=airflow.env["RECOLAKE_LANDING_DIR"],
        stream_checkpoint_dir=airflow.env["RECOLAKE_STREAM_CHECKPOINT_DIR"],
    )
    layout = KeyLayout(settings.redis_namespace)
    log = LocalEventLog(settings.landing_dir)

    def event(event_id: str, user: str) -> dict:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return {
            "event_id": event_id,
            "user_id": user,
            "item_id": "item-1",
            "event_type": "view",
            "timestamp": now,
        }

    def wait_recent(user: str, pid: int, timeout: float = 180) -> list:
        key = layout.recent(user_subject(pseudonymise(user, TEST_KEY.encode())))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if payload := redis_client.get(key):
                return json.loads(payload)
            assert alive(pid), pidfile.with_suffix(".log").read_text()[-4000:]
            time.sleep(0.2)
        raise AssertionError(pidfile.with_suffix(".log").read_text()[-4000:])

    # 1. Nothing runs: the DAG starts the job; an empty log is not behind.
    result, _ = run_streaming_dag(airflow)
    print(f"dag.test() #1 (starts the job): {result['seconds']:.1f} s")
    assert result["tasks"] == {
        "ensure_running": "success",
        "check_lag": "success",
        "prune_landing": "success",
    }
    first = sup.read_pid(pidfile)
    assert first and alive(first) and os.getpgid(first) == first
    pids.add(first)
    started = time.monotonic()
    log.append([event("e1", "alice")])
    assert [e["event_id"] for e in wait_recent("alice", first)] == ["e1"]
    print(f"job start -> first event in Redis: {time.monotonic() - started:.1f} s")

    # 2. Running: the DAG leaves it alone (no second job) and finds no lag.
    result, _ = run_streaming_dag(airflow)
    print(f"dag.test() #2 (job running): {result['seconds']:.1f} s")
    assert result["tasks"] == {
        "ensure_running": "success",
        "check_lag": "success",
        "prune_landing": "success",
    }
    assert sup.read_pid(pidfile) == first and alive(first)
    assert sup.query_lags(settings)["redis"] == 0.0  # the real checkpoint, parsed

    # 3. Killed (SIGKILL, whole group) while events keep landing, one of them an hour ago:
    # the DAG restarts the job and alerts, because the file has waited past the limit.
    kill_group(first)
    log.append([event("e2", "bob")])
    stale = log.append([event("e3", "carol")])
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    airflow.env["RECOLAKE_STREAM_MAX_LAG_SECONDS"] = "60"
    result, output = run_streaming_dag(airflow)
    print(f"dag.test() #3 (restarts the job, alerts): {result['seconds']:.1f} s")
    restarted = time.monotonic()
    assert result["tasks"] == {
        "ensure_running": "success",
        "check_lag": "failed",
        "prune_landing": "upstream_failed",
    }
    assert result["state"] == "failed"
    assert re.search(r"streaming job is behind: lake query 36\d\d s, redis query 36\d\d s", output)
    assert "ALERT recolake_streaming.check_lag failed" in output  # the on_failure_callback
    second = sup.read_pid(pidfile)
    assert second != first and alive(second)
    pids.add(second)
    # The restarted job resumes from its checkpoints: the waiting events arrive, e1 once.
    assert [e["event_id"] for e in wait_recent("carol", second)] == ["e3"]
    assert [e["event_id"] for e in wait_recent("bob", second)] == ["e2"]
    assert [e["event_id"] for e in wait_recent("alice", second)] == ["e1"]
    print(f"restart -> waiting events in Redis: {time.monotonic() - restarted:.1f} s")
    deadline = time.monotonic() + 60  # the lake query commits on its own trigger
    while max(sup.query_lags(settings).values()) > 0:
        assert time.monotonic() < deadline, sup.query_lags(settings)
        time.sleep(0.5)
