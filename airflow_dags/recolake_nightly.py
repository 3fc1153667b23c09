"""recolake_nightly: the nightly batch as one Airflow task per Spark job.

    forget -> ingest -> silver -> gold -> (train, item_cf, content) -> evaluate -> promote
    -> publish -> retention
    silver -> experiments

`train` tunes ALS on a validation split and registers it as the candidate; item-item CF and
content run beside it. `evaluate` measures the candidate, the champion's configuration, CF,
content, the baselines and the offline hybrid on one time split (JSON + HTML report + MLflow);
`promote` is the gate (champion alias only when not worse); `publish` serves the champion.
`forget --pending` first erases the users the API was asked to forget (DELETE
/v1/users/{id}), so nothing downstream sees them; `retention` last deletes bronze rows older
than `bronze_retention_days` and VACUUMs.
`experiments` credits the day's events to the logged impressions and tests each variant
against its control (gold.experiment_results, MLflow, HTML) once silver holds the day.
Every task is `spark-submit pipelines/<job>.py --ds {{ ds }}`; each job overwrites only its
own partition/as-of state, so clearing a past run (or `airflow backfill create`) rebuilds
that date alone.

Thin on purpose: paths and ids from the environment (read once, no I/O at import), the
master from the Spark connection (`RECOLAKE_SPARK_CONN_ID`, default `recolake_spark`, e.g.
`AIRFLOW_CONN_RECOLAKE_SPARK='{"conn_type": "spark", "host": "spark://10.0.0.5", "port": 7077}'`),
the input file from the Airflow Variable `recolake_events` (rendered at run time).
`spark-submit` is the main `.venv`'s, found on PATH.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG

HOME = Path(os.environ.get("RECOLAKE_HOME", Path(__file__).resolve().parents[1]))
PYTHON = os.environ.get("RECOLAKE_PYTHON", str(HOME / ".venv" / "bin" / "python"))
CONN_ID = os.environ.get("RECOLAKE_SPARK_CONN_ID", "recolake_spark")
#: spark-submit's own default (1g) is too small for the nightly's broadcast joins.
DRIVER_MEMORY = os.environ.get("RECOLAKE_SPARK_DRIVER_MEMORY", "4g")
DEFAULT_EVENTS = str(HOME / "data" / "sample" / "online_retail_sample.csv.gz")

#: task id -> (extra job arguments, execution timeout)
JOBS: dict[str, tuple[list[str], timedelta]] = {
    "forget": (["--pending"], timedelta(minutes=30)),
    "ingest": (
        [
            "--events",
            "{{ var.value.get('recolake_events', '" + DEFAULT_EVENTS + "') }}",
            "--format",
            "{{ var.value.get('recolake_events_format', 'online_retail') }}",
        ],
        timedelta(minutes=30),
    ),
    "silver": ([], timedelta(minutes=30)),
    "gold": ([], timedelta(minutes=45)),
    "item_cf": ([], timedelta(minutes=45)),
    "content": ([], timedelta(minutes=30)),
    "train": ([], timedelta(hours=2)),
    "evaluate": ([], timedelta(hours=2)),
    "promote": ([], timedelta(minutes=10)),
    "publish": ([], timedelta(minutes=30)),
    "experiments": ([], timedelta(minutes=30)),
    "retention": ([], timedelta(minutes=30)),
}

#: (upstream, downstream): the graph the tests check.
EDGES = [
    ("forget", "ingest"),
    ("ingest", "silver"),
    ("silver", "gold"),
    ("gold", "item_cf"),
    ("gold", "content"),
    ("gold", "train"),
    ("train", "evaluate"),
    ("item_cf", "evaluate"),
    ("content", "evaluate"),
    ("evaluate", "promote"),
    ("promote", "publish"),
    ("publish", "retention"),
    ("silver", "experiments"),
]


def recolake_jars() -> str:
    """Jars for --jars, listed at render time (not at import)."""
    return ",".join(sorted(str(p) for p in (HOME / "jars").glob("*.jar")))


default_args = {
    "owner": "recolake",
    "conn_id": CONN_ID,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}

with DAG(
    dag_id="recolake_nightly",
    description="ingest, silver, gold, ALS + item_cf + content, evaluate, promote, publish; "
    "experiments",
    schedule="@daily",
    # Early enough that any date of the data (the sample ends 2011-12-09) can be backfilled;
    # harmless with catchup off.
    start_date=pendulum.datetime(2010, 12, 1, tz="UTC"),
    # No automatic catch-up: every run rebuilds features as of its ds from the whole lake, so
    # missed days need no replay; past dates are rebuilt on purpose with `airflow backfill`.
    catchup=False,
    # Runs share the Delta tables and the Redis "live" pointer: one at a time.
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=default_args,
    user_defined_macros={"recolake_jars": recolake_jars},
    tags=["recolake", "spark", "nightly"],
) as dag:
    tasks = {
        job: SparkSubmitOperator(
            task_id=job,
            application=str(HOME / "pipelines" / f"{job}.py"),
            application_args=["--ds", "{{ ds }}", *args],
            jars="{{ recolake_jars() }}",
            py_files=str(HOME / "dist" / "recolake-py.zip"),
            driver_memory=DRIVER_MEMORY,
            conf={"spark.pyspark.python": PYTHON, "spark.pyspark.driver.python": PYTHON},
            # The package runs from the zip: where the checkout's defaults (var/) live.
            env_vars={"RECOLAKE_HOME": str(HOME)},
            name=f"recolake-{job}-{{{{ ds }}}}",
            execution_timeout=timeout,
        )
        for job, (args, timeout) in JOBS.items()
    }
    for upstream, downstream in EDGES:
        tasks[upstream] >> tasks[downstream]
