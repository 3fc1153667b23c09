"""prometheus-client's multiprocess directory, set up before the API's workers start.

Apart from online/metrics.py on purpose: prometheus-client picks its mode when a metric is
created, which importing online.metrics does, so the process that starts the workers
(``recolake serve``) must set ``PROMETHEUS_MULTIPROC_DIR`` without importing it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(workers: int) -> str | None:
    """Before ``workers`` uvicorn processes start: with more than one (or when
    ``PROMETHEUS_MULTIPROC_DIR`` is already set), point the variable at a directory (created
    if missing) emptied of an earlier run's files, else their counts would be summed in. The
    workers inherit it and count into files there, which any worker's scrape sums. Returns the
    directory, or None (one worker: in-process metrics)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        if workers <= 1:
            return None
        path = tempfile.mkdtemp(prefix="recolake-metrics-")
        os.environ[MULTIPROC_ENV] = path
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return path
