"""The full UCI Online Retail file through the nightly pipeline (a script, not a test).

    .venv/bin/python benchmarks/online_retail_full.py \\
        [--events ../shared/datasets/online_retail/online_retail.csv.gz] [--ds 2011-12-09]

Everything in a temporary directory: Delta lake, MLflow sqlite store, and a redis-server the
script starts on a free loopback port (stopped at the end). Prints the nightly report (every
model's metrics on the time-based hold-out), the best model's ratio to popularity on each
metric, the wall time of every step and of the nightly.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from recolake.settings import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH: run `make redis`")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, url
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", default=str(ROOT.parent / "shared/datasets/online_retail/online_retail.csv.gz")
    )
    parser.add_argument("--ds", default="2011-12-09")
    args = parser.parse_args()

    from pipelines import nightly

    with tempfile.TemporaryDirectory(prefix="recolake-retail-") as tmp:
        work = Path(tmp)
        proc, url = start_redis(work)
        try:
            settings = Settings(
                lake_root=str(work / "lake"),
                mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                mlflow_artifact_root=str(work / "artifacts"),
                redis_url=url,
                pseudonymisation_key="benchmark-key",
                spark_master="local[2]",
            )
            result = nightly.main(
                ["--ds", args.ds, "--events", args.events, "--format", "online_retail"],
                settings=settings,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    metrics = result.evaluation.metrics
    popularity = metrics.get("popularity")
    print("\nall models (time-based hold-out):")
    for name, values in metrics.items():
        print(f"  {name:<23}" + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))
    if popularity is None:
        print("no popularity model in the metrics: no ratio")
    else:
        key = next(k for k in popularity if k.startswith("ndcg"))
        best = max(metrics, key=lambda name: metrics[name].get(key, float("-inf")))
        print(f"best model on {key}: {best}")
        for k, v in sorted(metrics[best].items()):
            base = popularity.get(k)
            if base:
                print(f"  {k:<14} {best} / popularity = {v / base:.2f}x ({v:.4f} / {base:.4f})")
    if result.evaluation.document["hybrid"]:
        print(f"hybrid weights (validation): {result.evaluation.document['hybrid']['weights']}")
    print(f"ALS chosen by tuning: {result.train.params.as_dict()}")
    print(f"report: {result.evaluation.report}")
    print(f"per step (seconds, Spark jobs):\n{result.step_report}")
    print(f"nightly wall time: {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
