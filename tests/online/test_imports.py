"""The API and the online store never need pyspark (the serving image does not ship it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
for name in {forbidden!r}:
    sys.modules[name] = None  # any `import <name>...` now raises ImportError
import {module}
loaded = sorted(
    m for m in sys.modules for f in {forbidden!r} if m == f or m.startswith(f + ".")
)
assert loaded == sorted({forbidden!r}), loaded  # only our None placeholders
print("ok")
"""


def _imports_without_pyspark(
    module: str, forbidden: tuple[str, ...] = ("pyspark",)
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, forbidden=forbidden)],
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


def test_the_ranker_imports_neither_pyspark_nor_redis():
    """recolake.ranking runs in the API and inside Spark's Python workers alike."""
    done = _imports_without_pyspark("recolake.ranking", ("pyspark", "redis"))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_probe_detects_a_redis_import():
    done = _imports_without_pyspark("recolake.onlinestore.reader", ("pyspark", "redis"))
    assert done.returncode != 0 and "redis" in done.stderr


def test_the_probe_detects_a_pyspark_import():
    """The probe itself can fail: a module that imports pyspark is caught."""
    done = _imports_without_pyspark("pipelines.publish")  # a Spark job
    assert done.returncode != 0 and "pyspark" in done.stderr
