"""How loud the jobs are: one line per step by default, the detail with ``--verbose``.

Quiet (the default) means: Python loggers at WARNING (recolake's own step lines are printed,
not logged), and a JVM started by this process reads ``recolake/log4j2.properties``, which
keeps Spark's warnings but drops the ones every run prints and nobody acts on (a loopback
hostname on a laptop, no native Hadoop library, a global window over an already small frame,
caching a frame twice). Verbose: INFO for recolake and the libraries, and Spark's own log4j
profile at WARN, as before.

Under spark-submit the JVM is already running with the operator's logging configuration:
only the Python side and the session's level change.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

#: The JVM's logging configuration when this process starts it quietly.
LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Libraries that log at INFO on every call (py4j per gateway command, MLflow's stores).
_CHATTY = ("py4j", "mlflow", "alembic", "urllib3", "httpx", "matplotlib")

_verbose = False
#: MLflow configures its loggers when it is imported, from this variable (default INFO): a job
#: that imports it after parsing its arguments would otherwise log at INFO. An operator's
#: own value wins.
_MLFLOW_LEVEL = "MLFLOW_LOGGING_LEVEL"
_operator_mlflow_level = os.environ.get(_MLFLOW_LEVEL)


def configure(verbose: bool = False) -> None:
    """Set the process' Python logging; remembered for the Spark session built after it."""
    global _verbose
    _verbose = verbose
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:  # a host that set up logging (pytest, Airflow) keeps its handlers
        logging.basicConfig(level=level, format=_FORMAT)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(level)
    if _operator_mlflow_level is None:
        os.environ[_MLFLOW_LEVEL] = logging.getLevelName(level)


def is_verbose() -> bool:
    return _verbose


def driver_java_options() -> str | None:
    """``-Dlog4j2.configurationFile=...`` for a driver JVM this process starts; None when
    verbose (Spark's default profile)."""
    if _verbose:
        return None
    return f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES.as_uri()}"
