"""Jobs are quiet by default and detailed with --verbose, against a real Spark JVM."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from recolake import logs
from recolake.settings import PROJECT_ROOT

#: A job in miniature: the shared argument parsing, the session builder, a global window
#: (Spark's "No Partition Defined for Window operation" WARN) and a step line.
JOB = """
import sys
from pyspark.sql import Window, functions as F
from pipelines.common import job_parser, parse, session_and_settings
parse(job_parser("logging check"), sys.argv[1:])
spark, _ = session_and_settings("logging-check", None, None)
ranked = spark.range(5).withColumn("r", F.row_number().over(Window.orderBy("id")))
print("step  rows=%d" % len(ranked.collect()), flush=True)  # collect: count() prunes the window
spark.stop()
"""


def run_job(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", JOB, "--ds", "2024-05-01", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_python_side_levels():
    logs.configure(verbose=False)
    assert logging.getLogger("recolake").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("py4j").getEffectiveLevel() == logging.WARNING
    assert (
        logs.driver_java_options()
        == f"-Dlog4j2.configurationFile={logs.LOG4J2_PROPERTIES.as_uri()}"
    )
    assert logs.LOG4J2_PROPERTIES.is_file()
    logs.configure(verbose=True)
    try:
        assert logging.getLogger("recolake").getEffectiveLevel() == logging.INFO
        assert logs.driver_java_options() is None  # Spark's own profile
    finally:
        logs.configure(verbose=False)


@pytest.mark.spark
@pytest.mark.slow
def test_quiet_by_default_detailed_with_verbose():
    quiet = run_job()
    assert "step  rows=5" in quiet.stdout
    noise = quiet.stdout + quiet.stderr
    for expected_only in ("No Partition Defined", "NativeCodeLoader", "default log4j profile"):
        assert expected_only not in noise, noise
    assert " WARN " not in noise and " INFO " not in noise, noise

    verbose = run_job("--verbose")
    detail = verbose.stdout + verbose.stderr
    assert "step  rows=5" in verbose.stdout
    assert "No Partition Defined for Window operation" in detail, detail
