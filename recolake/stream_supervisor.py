"""Supervising the long-running streaming job from outside (the recolake_streaming DAG).

Plain Python (no pyspark, no Airflow), so it runs in Airflow's own venv and is unit-tested
without either:

- ``is_running``: the pid recorded in the pidfile is alive, not a zombie, and (on Linux) still
  the streaming job, so a pid reused by another process after a crash does not count.
- ``start_detached``: spark-submit in its own session (process group = its pid, so one
  ``killpg`` stops the JVM and its Python driver), stdout/stderr appended to a log; the pid
  is written atomically to the pidfile.
- ``lag_seconds``: how long the oldest landed file has been waiting for one query. A file is
  done once the batch that read it is committed: the file source's log
  (``<checkpoint>/sources/0/<batch>`` and its ``.compact`` files, one JSON line per file)
  says which batch read it, ``<checkpoint>/commits/<batch>`` that the batch finished. An idle
  log whose files are all committed has lag 0 however old they are; a job that is down or
  stuck has a lag that grows with the age of what it has not read.
  With the Kafka event log (``event_log == "kafka"``) the same question is asked of the topic:
  the offsets of the last committed batch (``<checkpoint>/offsets/<batch>``, the Kafka
  source's line ``{"<topic>": {"<partition>": next offset}}``) against the partitions' end
  offsets (the broker's watermarks); the lag is the age (broker timestamp) of the first
  message no committed batch has read, 0 when every partition is read to its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from recolake.settings import PROJECT_ROOT, Settings

#: The streaming queries of pipelines/streaming.py, one checkpoint each under
#: settings.stream_checkpoint_dir.
QUERIES = ("redis", "lake")
STREAMING_APP = "pipelines/streaming.py"


class StreamBehindError(RuntimeError):
    """A query has left landed events unprocessed for longer than the limit (the alert)."""


# --------------------------------------------------------------------------- the process


def read_pid(pidfile: str | Path) -> int | None:
    try:
        text = Path(pidfile).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def is_running(pidfile: str | Path, marker: str = STREAMING_APP) -> int | None:
    """The recorded pid if that process is alive and still ours, else None."""
    pid = read_pid(pidfile)
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive but someone else's: a reused pid
        return None
    proc = Path("/proc") / str(pid)
    if proc.is_dir():  # Linux: rule out zombies and reused pids
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited meanwhile
            return None
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X") or marker not in cmdline:
            return None
    return pid


def start_detached(
    command: Sequence[str],
    pidfile: str | Path,
    *,
    cwd: str | Path = PROJECT_ROOT,
    env: Mapping[str, str] | None = None,
    settle_seconds: float = 3.0,
) -> int:
    """Start ``command`` in a new session (it outlives the caller), log to ``<pidfile>.log``,
    record its pid. Fails when it exits within ``settle_seconds`` (a missing zip or jar, a
    bad setting), with the log's tail, instead of leaving a dead pid behind."""
    pidfile = Path(pidfile)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    log_path = pidfile.with_suffix(".log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tmp = pidfile.with_name(f".{pidfile.name}.tmp")
    tmp.write_text(str(proc.pid))
    os.replace(tmp, pidfile)
    try:
        code = proc.wait(timeout=settle_seconds)
    except subprocess.TimeoutExpired:
        return proc.pid
    tail = log_path.read_bytes()[-3000:].decode(errors="replace")
    raise RuntimeError(f"streaming job exited at start-up with code {code}; {log_path}:\n{tail}")


def streaming_command(home: str | Path = PROJECT_ROOT) -> list[str]:
    """spark-submit of the streaming job, shipped like every other job."""
    home = Path(home)
    return [str(home / "scripts" / "spark-submit.sh"), str(home / STREAMING_APP)]


def ensure_running(settings: Settings, home: str | Path = PROJECT_ROOT) -> tuple[int, bool]:
    """(pid, started): the running job's pid, or start one."""
    pid = is_running(settings.stream_pidfile)
    if pid is not None:
        return pid, False
    return start_detached(streaming_command(home), settings.stream_pidfile, cwd=home), True


# --------------------------------------------------------------------------- the lag


def _batch_files(folder: Path) -> list[Path]:
    """Entries of a Spark metadata log folder: ``<n>`` and ``<n>.compact`` (no .crc/tmp)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.split(".", 1)[0].isdigit()]


def last_committed_batch(checkpoint: str | Path) -> int | None:
    batches = [int(p.name) for p in _batch_files(Path(checkpoint) / "commits") if p.name.isdigit()]
    return max(batches, default=None)


def committed_files(checkpoint: str | Path) -> set[str]:
    """Names of the files read by committed batches of the query's file source."""
    last = last_committed_batch(checkpoint)
    if last is None:
        return set()
    names: set[str] = set()
    for entry in _batch_files(Path(checkpoint) / "sources" / "0"):
        if int(entry.name.split(".", 1)[0]) > last and not entry.name.endswith(".compact"):
            continue  # planned, not committed (a compact file may cover later batches)
        lines = entry.read_text().splitlines()
        for line in lines[1:]:  # line 0 is the log version ("v1")
            if line.strip():
                record = json.loads(line)
                if record["batchId"] <= last:
                    names.add(Path(unquote(urlparse(record["path"]).path)).name)
    return names


def landed_files(landing_dir: str | Path) -> dict[str, float]:
    """name -> mtime of the files Spark's file source reads (it skips names starting with . or
    _, e.g. the event log's in-flight temp files)."""
    out: dict[str, float] = {}
    try:
        entries = os.scandir(landing_dir)
    except FileNotFoundError:
        return out
    with entries:
        for entry in entries:
            if entry.name[0] not in "._" and entry.is_file():
                out[entry.name] = entry.stat().st_mtime
    return out


def lag_seconds(
    landing_dir: str | Path,
    checkpoint: str | Path,
    now: float | None = None,
    landed: Mapping[str, float] | None = None,
) -> float:
    """Age of the oldest landed file no committed batch of this query has read (0: none)."""
    landed = landed_files(landing_dir) if landed is None else landed
    done = committed_files(checkpoint)
    waiting = [mtime for name, mtime in landed.items() if name not in done]
    if not waiting:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - min(waiting))


# --------------------------------------------------------------------------- Kafka


def kafka_committed_offsets(checkpoint: str | Path, topic: str) -> dict[int, int]:
    """partition -> next offset to read, after the last committed batch of the query ({}:
    nothing committed yet). The offset log's file of batch n holds the version, the batch
    metadata, then one line per source: the end offsets that batch read up to."""
    last = last_committed_batch(checkpoint)
    if last is None:
        return {}
    path = Path(checkpoint) / "offsets" / str(last)
    if not path.exists():  # committed but its offsets purged: never the case for the last one
        raise ValueError(f"no offset log for committed batch {last} in {checkpoint}")
    for line in path.read_text().splitlines()[2:]:
        line = line.strip()
        if line.startswith("{") and topic in (offsets := json.loads(line)):
            return {int(p): int(o) for p, o in offsets[topic].items()}
    return {}


def kafka_backlog(
    committed: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]
) -> dict[int, tuple[int, int]]:
    """partition -> (first unread offset, messages waiting) for the partitions with a backlog.
    ``watermarks``: partition -> (low, high) from the broker (high = next offset written). A
    partition the checkpoint does not know (new, or nothing committed) is read from its low
    watermark (startingOffsets=earliest); an offset below low was deleted by retention."""
    out: dict[int, tuple[int, int]] = {}
    for partition, (low, high) in watermarks.items():
        first = max(committed.get(partition, low), low)
        if high > first:
            out[partition] = (first, high - first)
    return out


def kafka_lag_seconds(
    settings: Settings, checkpoint: str | Path, now: float | None = None, timeout: float = 10.0
) -> float:
    """Age of the first message of the topic that no committed batch of the query has read
    (0: read to the end), from the broker's timestamps."""
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.kafka_topic
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": "recolake-stream-supervisor",  # never commits: only reads watermarks
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"Kafka topic {topic}: {metadata.error}")
        watermarks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            for p in metadata.partitions
        }
        backlog = kafka_backlog(kafka_committed_offsets(checkpoint, topic), watermarks)
        oldest: float | None = None
        for partition, (first, _) in sorted(backlog.items()):
            consumer.assign([TopicPartition(topic, partition, first)])
            message = consumer.poll(timeout)
            if message is None or message.error() is not None:
                raise RuntimeError(f"could not read {topic}/{partition}@{first}: {message}")
            ts = message.timestamp()[1] / 1000.0
            oldest = ts if oldest is None else min(oldest, ts)
    finally:
        consumer.close()
    if oldest is None:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - oldest)


def query_lags(settings: Settings, now: float | None = None) -> dict[str, float]:
    """lag_seconds of each streaming query: over the landing dir, or over the Kafka topic."""
    root = Path(settings.stream_checkpoint_dir)
    if settings.event_log == "kafka":
        return {q: kafka_lag_seconds(settings, root / q, now) for q in QUERIES}
    landed = landed_files(settings.landing_dir)
    return {q: lag_seconds(settings.landing_dir, root / q, now, landed) for q in QUERIES}


def check_lag(settings: Settings, now: float | None = None) -> dict[str, float]:
    """query_lags, raising StreamBehindError when any exceeds ``stream_max_lag_seconds``."""
    lags = query_lags(settings, now)
    limit = settings.stream_max_lag_seconds
    behind = {q: lag for q, lag in lags.items() if lag > limit}
    if behind:
        detail = ", ".join(f"{q} query {lag:.0f} s" for q, lag in sorted(behind.items()))
        where = (
            f"message in topic {settings.kafka_topic} arrived"
            if settings.event_log == "kafka"
            else f"file in {settings.landing_dir} landed"
        )
        raise StreamBehindError(
            f"streaming job is behind: {detail} since the oldest unprocessed {where} "
            f"(limit {limit:.0f} s)"
        )
    return lags


def prune_landed(settings: Settings, now: float | None = None) -> list[str]:
    """Delete landed files that every query has committed and that are older than
    ``landing_retention_hours``; returns their names. Files a query has not committed are
    never touched (the job still needs them), so the landing dir stays bounded without
    `cleanSource` (which one query would run under the other's feet)."""
    if settings.event_log != "local":
        return []
    landed = landed_files(settings.landing_dir)
    root = Path(settings.stream_checkpoint_dir)
    done = set(landed)
    for query in QUERIES:
        done &= committed_files(root / query)
    cutoff = (time.time() if now is None else now) - settings.landing_retention_hours * 3600
    pruned = []
    for name in sorted(done):
        if landed[name] < cutoff:
            Path(settings.landing_dir, name).unlink(missing_ok=True)
            pruned.append(name)
    return pruned
