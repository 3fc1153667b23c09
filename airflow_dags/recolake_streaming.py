"""recolake_streaming: keep the streaming job running, fail (= alert) when it falls behind.

Every 5 minutes (one run at a time):
  ensure_running  starts `scripts/spark-submit.sh pipelines/streaming.py` detached (own process
                  group, log next to the pidfile) unless the pid in RECOLAKE_STREAM_PIDFILE is
                  alive and still the streaming job. The job runs until stopped, so it is
                  supervised rather than run as a task.
  check_lag       for each query (redis, lake: one checkpoint each under
                  RECOLAKE_STREAM_CHECKPOINT_DIR) the age of the oldest landed file that no
                  committed batch has read; past RECOLAKE_STREAM_MAX_LAG_SECONDS (300) the task
                  fails with "streaming job is behind: ...", which is the alert (Airflow's
                  failure e-mails/notifiers, plus `on_failure_callback` below). An idle log whose
                  files are all committed is not behind, however old they are. With
                  RECOLAKE_EVENT_LOG=kafka the same check runs over the topic: the offsets of
                  each query's last committed batch against the partitions' end offsets; the
                  lag is the age of the first unread message (confluent-kafka, pinned in
                  requirements-airflow.lock too).
The logic is in recolake/stream_supervisor.py (no pyspark: it runs in Airflow's venv); paths
come from the same RECOLAKE_* settings the job reads. Nothing is done at import.

The job lives in its own session, so Airflow killing a task's process group (timeout) does not
reach it; but it runs on the worker host, next to the pidfile: use a LocalExecutor or a Celery
queue pinned to one host. Where tasks run in throw-away pods (KubernetesExecutor), run the job
as a Deployment/systemd service instead and keep only check_lag here.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

HOME = Path(os.environ.get("RECOLAKE_HOME", Path(__file__).resolve().parents[1]))
if str(HOME) not in sys.path:  # recolake.stream_supervisor (Airflow's venv has no recolake)
    sys.path.append(str(HOME))


def alert(context) -> None:
    """Failure hook: one log line to grep/route; swap in a notifier (Slack, PagerDuty) here."""
    logging.getLogger("recolake.streaming.supervisor").error(
        "ALERT recolake_streaming.%s failed: %s",
        context["task_instance"].task_id,
        context.get("exception"),
    )


with DAG(
    dag_id="recolake_streaming",
    description="supervise pipelines/streaming.py: start when down, alert on lag",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # a supervisor: only the current state matters
    max_active_runs=1,
    default_args={
        "owner": "recolake",
        "retries": 0,
        "execution_timeout": timedelta(minutes=2),
        "on_failure_callback": alert,
    },
    tags=["recolake", "streaming"],
) as dag:

    @task
    def ensure_running() -> int:
        """Start the streaming job unless it runs; return its pid."""
        from recolake.settings import Settings
        from recolake.stream_supervisor import ensure_running

        settings = Settings()
        pid, started = ensure_running(settings, HOME)
        print(f"streaming job {'started' if started else 'running'}: pid {pid}")
        return pid

    @task
    def check_lag() -> dict[str, float]:
        """Per query, seconds the oldest unprocessed event (landed file, or Kafka message)
        has waited; fail past the limit."""
        from recolake.settings import Settings
        from recolake.stream_supervisor import check_lag

        return check_lag(Settings())

    @task
    def prune_landing() -> int:
        """Delete landed files every query has committed, past the retention."""
        from recolake.settings import Settings
        from recolake.stream_supervisor import prune_landed

        pruned = prune_landed(Settings())
        print(f"pruned {len(pruned)} landed file(s)")
        return len(pruned)

    ensure_running() >> check_lag() >> prune_landing()
