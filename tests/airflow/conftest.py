"""Real Airflow 3.3.2, run from its own venv (.venv-airflow) in a subprocess.

Airflow cannot live in the main venv (../shared/README.md), so these tests drive it through
`.venv-airflow/bin/python` with AIRFLOW_HOME in a temp dir and a SQLite metadata DB.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import zlib
from pathlib import Path

import pytest

from recolake.settings import PROJECT_ROOT
from tests.conftest import TEST_KEY

AIRFLOW_PYTHON = PROJECT_ROOT / ".venv-airflow" / "bin" / "python"
MAIN_BIN = PROJECT_ROOT / ".venv" / "bin"
PACKAGES = ["recolake", "pipelines", "features", "models", "online"]
SAMPLE = PROJECT_ROOT / "data" / "sample" / "online_retail_sample.csv.gz"


def sample_slice(path: Path, modulo: int = 8) -> Path:
    """Whole histories of about 1/modulo of the sample's customers: small but realistic."""
    with gzip.open(SAMPLE, "rt", newline="") as src, gzip.open(path, "wt", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            if zlib.crc32((row["CustomerID"] or row["InvoiceNo"]).encode()) % modulo == 0:
                writer.writerow(row)
    return path


def build_dist() -> Path:
    """dist/recolake-py.zip as `make dist` builds it (the DAG ships it with --py-files)."""
    subprocess.run(
        [str(MAIN_BIN / "python"), "-m", "zipfile", "-c", "dist/recolake-py.zip", *PACKAGES],
        cwd=PROJECT_ROOT,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return PROJECT_ROOT / "dist" / "recolake-py.zip"


def recolake_env(root: Path, redis_url: str) -> dict[str, str]:
    """The RECOLAKE_* settings every spark-submit of the DAG inherits (tests.make_settings)."""
    return {
        "RECOLAKE_LAKE_ROOT": str(root / "lake"),
        "RECOLAKE_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        "RECOLAKE_MLFLOW_ARTIFACT_ROOT": str(root / "mlflow" / "artifacts"),
        "RECOLAKE_REPORTS_DIR": str(root / "reports"),
        "RECOLAKE_REDIS_URL": redis_url,
        "RECOLAKE_PSEUDONYMISATION_KEY": TEST_KEY,
        "RECOLAKE_SPARK_SHUFFLE_PARTITIONS": "2",
        "RECOLAKE_REDIS_BUCKETS": "4",
        "RECOLAKE_PUBLISH_GRACE_SECONDS": "5",
        "RECOLAKE_ALS_MAX_ITER": "5",
        "RECOLAKE_ALS_RANK": "16",
        "RECOLAKE_ALS_TUNE_RANKS": "[]",
        "RECOLAKE_ALS_TUNE_REG_PARAMS": "[]",
        "RECOLAKE_ALS_TUNE_ALPHAS": "[]",
        "RECOLAKE_SPARK_DRIVER_MEMORY": "2g",
    }


class Airflow:
    """Runs Python code in .venv-airflow with a private AIRFLOW_HOME; returns its JSON output."""

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "airflow_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # spark-submit (and python3 for its launcher) from the main venv.
            "PATH": f"{MAIN_BIN}{os.pathsep}{os.environ['PATH']}",
            **(extra_env or {}),
        }
        self.env.pop("VIRTUAL_ENV", None)
        self.env.pop("PYTHONPATH", None)

    def run(self, code: str, timeout: float = 120) -> dict:
        proc = subprocess.run(
            [str(AIRFLOW_PYTHON), "-c", code],
            env=self.env,
            cwd=self.env["AIRFLOW_HOME"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"airflow subprocess failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            )
        last = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert last, proc.stdout[-4000:] + proc.stderr[-4000:]
        return json.loads(last[-1][len("RESULT ") :])

    def migrate(self) -> None:
        subprocess.run(
            [str(AIRFLOW_PYTHON), "-m", "airflow", "db", "migrate"],
            env=self.env,
            cwd=self.env["AIRFLOW_HOME"],
            check=True,
            capture_output=True,
            timeout=300,
        )


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    if not AIRFLOW_PYTHON.exists():
        pytest.fail("no .venv-airflow: run `make airflow-venv` (make test does)")
    return AIRFLOW_PYTHON
