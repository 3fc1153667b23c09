"""The one Spark session builder: Delta, UTC, jars from `make jars`, master from settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark import SparkConf
from pyspark.sql import SparkSession

from recolake import logs
from recolake.settings import Settings


def jar_paths(settings: Settings) -> list[str]:
    """The jars resolved by Maven into ``settings.jars_dir``; a clear error if missing."""
    jars_dir = Path(settings.jars_dir)
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if not any("delta-spark" in Path(j).name for j in jars):
        raise RuntimeError(
            f"No Delta jar in {jars_dir}. Run `make jars` (Maven resolves pom.xml into it)."
        )
    return jars


_BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def build_session(settings: Settings, app_name: str = "recolake") -> SparkSession:
    """Get or create the session. Under spark-submit, an existing master is kept."""
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.ui.enabled", str(settings.spark_ui_enabled).lower())
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        # Delta reconstructs table state with this many tasks (default 50: slow on 2 cores).
        .config("spark.databricks.delta.snapshotPartitions", str(settings.spark_shuffle_partitions))
        # Python workers (numpy in mapInPandas) and executors: one BLAS thread per task.
        .config(f"spark.executorEnv.{_BLAS_THREADS}", "1")
    )
    if not _launched_by_spark_submit() and (java_options := logs.driver_java_options()):
        # The JVM this process starts logs quietly (recolake/log4j2.properties); its
        # setLogLevel("WARN") below sets the root logger only, so those filters hold.
        builder = builder.config("spark.driver.extraJavaOptions", java_options)
    if not _jars_already_given():
        builder = builder.config("spark.jars", ",".join(jar_paths(settings)))
    if settings.spark_master and not _master_already_given():
        builder = builder.master(settings.spark_master)
        if settings.spark_master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
            # Python workers run this interpreter (the venv's), not whatever python3 is on PATH;
            # SparkContext reads the variable when it starts.
            os.environ["PYSPARK_PYTHON"] = sys.executable
        if settings.spark_master.startswith("local"):
            # MLlib's native BLAS (netlib JNIBLAS -> OpenBLAS) runs inside this JVM's task
            # threads: an OpenBLAS pool per call on top of them oversubscribes the cores
            # (benchmarks/README.md, ALS speed). The JVM reads it when it starts.
            os.environ.setdefault(_BLAS_THREADS, "1")
            # Loopback only. Memory only applies when this process starts the JVM.
            builder = (
                builder.config("spark.driver.memory", settings.spark_driver_memory)
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
            )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _launched_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _submitted_conf() -> SparkConf:
    """The configuration spark-submit resolved (--master, --jars, --conf ...).

    Read through the JVM gateway: before it is connected, SparkConf() is an empty Python dict
    and settings.spark_master would silently override --master."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    return SparkConf()


def _master_already_given() -> bool:
    return _launched_by_spark_submit() and _submitted_conf().contains("spark.master")


def _jars_already_given() -> bool:
    if not _launched_by_spark_submit():
        return False
    return "delta-spark" in _submitted_conf().get("spark.jars", "")
