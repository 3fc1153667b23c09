"""The DAGs under real Airflow 3.3.2 (its own venv): import, graph, and a full dag.test()."""

from __future__ import annotations

import time

import httpx
import pytest

from recolake.onlinestore import KeyLayout
from tests.airflow.conftest import Airflow, build_dist, recolake_env, sample_slice
from tests.conftest import make_settings

NIGHTLY_EDGES = {
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
}

LOAD = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "edges": sorted([u, t.task_id] for t in dag.tasks for u in t.upstream_task_ids),
        "catchup": dag.catchup, "tags": sorted(dag.tags), "schedule": str(dag.schedule),
        "tasks": {t.task_id: {"retries": t.retries, "backoff": t.retry_exponential_backoff,
                  "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                  "args": [str(a) for a in getattr(t, "application_args", None) or []],
                  "conn_id": getattr(t, "_conn_id", None)} for t in dag.tasks},
    }
print("RESULT " + json.dumps(out))
"""


@pytest.mark.airflow
def test_dagbag_imports_and_nightly_graph(airflow_python, tmp_path):
    started = time.perf_counter()
    result = Airflow(tmp_path).run(LOAD)
    assert result["errors"] == {}
    assert set(result["dags"]) == {"recolake_nightly", "recolake_streaming"}
    nightly = result["dags"]["recolake_nightly"]
    assert {tuple(e) for e in nightly["edges"]} == NIGHTLY_EDGES
    assert nightly["catchup"] is False and "recolake" in nightly["tags"]
    for task_id, task in nightly["tasks"].items():
        assert task["args"][:2] == ["--ds", "{{ ds }}"], task_id
        assert task["retries"] >= 1 and task["backoff"] is True, task_id
        assert task["timeout"] and task["timeout"] <= 2 * 3600, task_id
        assert task["conn_id"] == "recolake_spark", task_id
    assert result["dags"]["recolake_streaming"]["edges"] == [
        ["check_lag", "prune_landing"],
        ["ensure_running", "check_lag"],
    ]
    # Loading is cheap: no Spark, no I/O at import.
    assert time.perf_counter() - started < 60


DAG_TEST = """
import json, os, time
from datetime import datetime, timezone
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags["recolake_nightly"]
started = time.perf_counter()
run = dag.test(logical_date=datetime(2011, 12, 9, tzinfo=timezone.utc))
seconds = time.perf_counter() - started
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states, "seconds": seconds}))
"""


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.redis
@pytest.mark.airflow
@pytest.mark.timeout(1800)  # ten spark-submits, each a JVM start
def test_nightly_dag_test_serves_recommendations(
    airflow_python, tmp_path, redis_server, redis_client, api_server_factory
):
    build_dist()
    events = sample_slice(tmp_path / "slice.csv.gz")
    airflow = Airflow(
        tmp_path / "airflow",
        {
            **recolake_env(tmp_path, redis_server.url),
            "AIRFLOW_CONN_RECOLAKE_SPARK": '{"conn_type": "spark", "host": "local[2]"}',
            "AIRFLOW_VAR_RECOLAKE_EVENTS": str(events),
        },
    )
    (tmp_path / "airflow").mkdir()
    airflow.migrate()
    result = airflow.run(DAG_TEST, timeout=1800)
    print(f"dag.test() wall time: {result['seconds']:.1f} s")
    assert result["tasks"] == {t: "success" for t in result["tasks"]}
    assert set(result["tasks"]) == {t for e in NIGHTLY_EDGES for t in e}
    assert result["state"] == "success"

    settings = make_settings(tmp_path, redis_url=redis_server.url)
    layout = KeyLayout(settings.redis_namespace)
    assert redis_client.get(layout.live)
    api = api_server_factory(settings)
    body = httpx.get(f"{api.url}/v1/recommendations/nobody-knows-me", params={"k": 3}).json()
    assert len(body["items"]) == 3
