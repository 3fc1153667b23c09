#!/usr/bin/env bash
# spark-submit for recolake jobs, shipped the way a cluster needs them:
#   --jars       every jar `make jars` resolved into jars/ (Delta, Kafka), comma-joined
#   --py-files   dist/recolake-py.zip (`make dist`): recolake, pipelines, features, models, online
#   spark.pyspark.python  the interpreter executors start for Python workers (same deps needed:
#                pyspark, numpy, redis, ... ; on a real cluster install the project's wheel
#                or requirements.lock into that interpreter on every node)
#   --driver-memory  RECOLAKE_SPARK_DRIVER_MEMORY (default 4g, as for `recolake <job>`): the
#                spark-submit default of 1g is too small for the nightly's broadcasts; a later
#                --driver-memory in the arguments wins
# Usage: scripts/spark-submit.sh [--master URL] [spark options] pipelines/<job>.py --ds YYYY-MM-DD
# Env: SPARK_SUBMIT (default: the venv's spark-submit), RECOLAKE_PYTHON (default: venv python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The package runs from the zip below: tell it where the checkout (var/, jars/) is.
export RECOLAKE_HOME="${RECOLAKE_HOME:-$ROOT}"
SPARK_SUBMIT="${SPARK_SUBMIT:-$ROOT/.venv/bin/spark-submit}"
PY="${RECOLAKE_PYTHON:-$ROOT/.venv/bin/python}"
ZIP="$ROOT/dist/recolake-py.zip"
# The pyspark package is the Spark distribution (bin/, jars/, sbin/).
export SPARK_HOME="${SPARK_HOME:-$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
[ -f "$ZIP" ] || { echo "missing $ZIP: run \`make dist\`" >&2; exit 2; }
JARS="$(ls "$ROOT"/jars/*.jar 2>/dev/null | paste -sd, -)"
[ -n "$JARS" ] || { echo "no jars in $ROOT/jars: run \`make jars\`" >&2; exit 2; }
exec "$SPARK_SUBMIT" \
  --jars "$JARS" \
  --py-files "$ZIP" \
  --driver-memory "${RECOLAKE_SPARK_DRIVER_MEMORY:-4g}" \
  --conf "spark.pyspark.python=$PY" \
  --conf "spark.pyspark.driver.python=$PY" \
  "$@"
