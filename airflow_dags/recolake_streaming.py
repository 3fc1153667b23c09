"""recolake_streaming: keep the streaming job running, fail (= alert) when it falls behind.

Every 5 minutes:
  ensure_running  starts `spark-submit pipelines/streaming.py` detached when the pid in
                  RECOLAKE_STREAM_PIDFILE is not alive (the job runs until stopped, so it is
                  supervised rather than run as a task).
  check_lag       compares the newest file in the landing dir with the newest committed batch
                  in the checkpoint (`commits/`); when events wait longer than
                  RECOLAKE_STREAM_MAX_LAG_SECONDS the task fails, which is the alert (Airflow's
                  failure notifications / on_failure_callback).
Paths come from the same RECOLAKE_* variables the job reads; nothing is done at import.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

HOME = Path(os.environ.get("RECOLAKE_HOME", Path(__file__).resolve().parents[1]))
VAR = HOME / "var"


def _newest_mtime(folder: Path) -> float | None:
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    return max(times) if times else None


with DAG(
    dag_id="recolake_streaming",
    description="supervise pipelines/streaming.py: start when down, alert on lag",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # a supervisor: only the current state matters
    max_active_runs=1,
    default_args={"owner": "recolake", "retries": 0, "execution_timeout": timedelta(minutes=2)},
    tags=["recolake", "streaming"],
) as dag:

    @task
    def ensure_running() -> int:
        """Start the streaming job unless the recorded pid is alive; return the pid."""
        import subprocess

        pidfile = Path(os.environ.get("RECOLAKE_STREAM_PIDFILE", VAR / "streaming.pid"))
        if pidfile.exists():
            pid = int(pidfile.read_text().strip() or 0)
            try:
                os.kill(pid, 0)
                return pid
            except (ProcessLookupError, ValueError):
                pass
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        log = open(pidfile.with_suffix(".log"), "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [str(HOME / "scripts" / "spark-submit.sh"), str(HOME / "pipelines" / "streaming.py")],
            cwd=HOME,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pidfile.write_text(str(proc.pid))
        return proc.pid

    @task
    def check_lag() -> float:
        """Seconds the newest landed event waits for a committed batch; fail past the limit."""
        landing = Path(os.environ.get("RECOLAKE_LANDING_DIR", VAR / "landing" / "events"))
        checkpoint = Path(
            os.environ.get("RECOLAKE_STREAM_CHECKPOINT_DIR", VAR / "checkpoints" / "streaming")
        )
        limit = float(os.environ.get("RECOLAKE_STREAM_MAX_LAG_SECONDS", "300"))
        landed = _newest_mtime(landing) if landing.exists() else None
        if landed is None:
            return 0.0
        committed = (
            _newest_mtime(checkpoint / "commits") if (checkpoint / "commits").exists() else None
        )
        lag = landed - committed if committed is not None else float("inf")
        if lag > limit:
            raise RuntimeError(f"streaming job is {lag:.0f} s behind the landing dir (> {limit})")
        return max(lag, 0.0)

    ensure_running() >> check_lag()
