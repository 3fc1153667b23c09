"""One OpenBLAS thread per Spark task: MLlib's JNI BLAS in the JVM and numpy in the Python
workers run under Spark's own task threads (benchmarks/README.md, ALS speed)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.spark


def test_session_pins_openblas_threads_for_jvm_and_workers(spark) -> None:
    assert spark.conf.get("spark.executorEnv.OPENBLAS_NUM_THREADS") == "1"
    # Local master: the JVM (driver = executor) was started with the driver's environment.
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert spark._jvm.java.lang.System.getenv("OPENBLAS_NUM_THREADS") == "1"

    def worker_env(batches):
        import pandas as pd

        for _batch in batches:
            yield pd.DataFrame({"threads": [os.environ.get("OPENBLAS_NUM_THREADS", "")]})

    seen = spark.range(4, numPartitions=2).mapInPandas(worker_env, "threads string").collect()
    assert {row.threads for row in seen} == {"1"}
