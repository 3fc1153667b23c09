"""The API and the online store never need pyspark (the serving image does not ship it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.modules["pyspark"] = None  # any `import pyspark...` now raises ImportError
import {module}
loaded = sorted(m for m in sys.modules if m == "pyspark" or m.startswith("pyspark."))
assert loaded == ["pyspark"], loaded  # only our None placeholder
print("ok")
"""


def _imports_without_pyspark(module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_online_app_imports_without_pyspark():
    done = _imports_without_pyspark("online.app")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_onlinestore_imports_without_pyspark():
    for module in (
        "recolake.onlinestore",
        "recolake.onlinestore.reader",
        "recolake.onlinestore.values",
    ):
        done = _imports_without_pyspark(module)
        assert done.returncode == 0 and done.stdout.strip() == "ok", (module, done.stderr)


def test_the_probe_detects_a_pyspark_import():
    """The probe itself can fail: a module that imports pyspark is caught."""
    done = _imports_without_pyspark("pipelines.publish")  # a Spark job
    assert done.returncode != 0 and "pyspark" in done.stderr
