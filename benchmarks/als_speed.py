"""ALS speed: Spark (before / after tuning) against the `implicit` library, same data, same
process, back to back (a script, not a test).

    make bench-deps                       # implicit==0.7.3 into .venv-bench (not the main venv)
    .venv/bin/python benchmarks/als_speed.py [--interactions 1000000] [--skip-crossjoin]

Synthetic implicit data: ``--interactions`` (user, item, count) triples, item popularity
Zipf-like, fixed seed. Every model: rank 32, 10 iterations, regParam 0.1, alpha 1.0.

BEFORE = the project as it was: ALS with default blocks (10 x 10) and storage, then
``recommendForAllUsers(10)`` (which does not even exclude seen items) and our
``models.topk.top_k_from_factors`` (SQL cross join, excluded pairs removed).
AFTER = ALS with 2 x 2 blocks (one per core), MEMORY_ONLY intermediate/final storage, cached
input, and ``models.topk.top_k_blocked`` (numpy matmul per user block, seen items excluded).
implicit = ``implicit.cpu.als.AlternatingLeastSquares`` with ``num_threads=2`` (Spark runs
local[2]) and ``recommend(..., filter_already_liked_items=True)`` for all users.

BLAS threads are pinned to 1 on both sides (``OPENBLAS_NUM_THREADS``: here for numpy/implicit,
``recolake.spark.build_session`` for the JVM and the Python workers): the parallelism is
implicit's 2 threads and Spark's 2 tasks. The BLAS classes MLlib resolved are printed, with
the load average (the machine is shared) and the CPU seconds of each fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Before numpy is imported: implicit warns that an OpenBLAS pool under its own threads
# "can lead to severe performance issues" (measured: fit 2x, recommend 5x slower).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_DEPS = ROOT / ".venv-bench"

RANK, ITERS, REG, ALPHA, K = 32, 10, 0.1, 1.0, 10


def synthetic(n: int, users: int, items: int, seed: int = 7) -> pd.DataFrame:
    """Distinct (user_idx, item_idx) pairs with a count, popular items far more frequent."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 0.8
    weights /= weights.sum()
    u = rng.integers(0, users, size=int(n * 1.15))
    i = rng.choice(items, size=len(u), p=weights)
    df = pd.DataFrame({"user_idx": u.astype(np.int32), "item_idx": i.astype(np.int32)})
    df = df.drop_duplicates().head(n).reset_index(drop=True)
    df["strength"] = rng.integers(1, 5, size=len(df)).astype(np.float32)
    return df


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(label: str, fn, cpu=None):
    """Wall seconds of ``fn``; with ``cpu`` (a CPU-seconds clock) also the CPU it used."""
    cpu_start = cpu() if cpu else 0.0
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    used = f"   cpu {cpu() - cpu_start:7.2f} s" if cpu else ""
    print(f"  {label:<55s} {seconds:8.2f} s{used}", flush=True)
    return result, seconds


def blas_backend(spark) -> str:
    """The BLAS/LAPACK classes MLlib resolved in this JVM (ALS's NormalEquation calls
    ``BLAS.nativeBLAS``: JNIBLAS = the system libblas.so.3, else the Java fallback)."""
    jvm = spark._jvm
    ml_blas = jvm.java.lang.Class.forName("org.apache.spark.ml.linalg.BLAS$")
    ml_blas = ml_blas.getField("MODULE$").get(None)
    lapack = jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance()
    threads = jvm.java.lang.System.getenv("OPENBLAS_NUM_THREADS")
    return (
        f"nativeBLAS {ml_blas.nativeBLAS().getClass().getSimpleName()}, "
        f"javaBLAS {ml_blas.javaBLAS().getClass().getSimpleName()}, "
        f"LAPACK {lapack.getClass().getSimpleName()}, JVM OPENBLAS_NUM_THREADS={threads}"
    )


def run_implicit(data: pd.DataFrame, users: int, items: int) -> tuple[float, float]:
    if str(BENCH_DEPS) not in sys.path:
        sys.path.append(str(BENCH_DEPS))  # after the main venv: its numpy/pandas win
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix
    except ImportError as err:
        raise SystemExit(f"implicit is not installed ({err}): run `make bench-deps`") from err
    ui = csr_matrix(
        (data["strength"].to_numpy() * ALPHA, (data["user_idx"], data["item_idx"])),
        shape=(users, items),
    )
    model = AlternatingLeastSquares(
        factors=RANK,
        iterations=ITERS,
        regularization=REG,
        alpha=1.0,
        num_threads=2,
        random_state=42,
        calculate_training_loss=False,
    )
    blas_threads = os.environ["OPENBLAS_NUM_THREADS"]
    print(f"implicit 0.7.3 (num_threads=2, OPENBLAS_NUM_THREADS={blas_threads}):")
    _, fit_s = timed("fit", lambda: model.fit(ui, show_progress=False), time.process_time)
    all_users = np.arange(users)
    _, topk_s = timed(
        f"recommend top-{K} all users, seen excluded",
        lambda: model.recommend(all_users, ui, N=K, filter_already_liked_items=True),
    )
    return fit_s, topk_s


def run_spark(data: pd.DataFrame, skip_crossjoin: bool) -> dict[str, float]:
    from pyspark.ml.recommendation import ALS

    from models.topk import top_k_blocked, top_k_from_factors
    from recolake.settings import Settings
    from recolake.spark import build_session

    spark = build_session(Settings(spark_master="local[2]", spark_driver_memory="6g"), "als-speed")
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    print(f"MLlib: {blas_backend(spark)}")
    stat = Path(f"/proc/{spark._jvm.java.lang.ProcessHandle.current().pid()}/stat")

    def jvm_cpu() -> float:
        """User + system seconds of the JVM (local mode: the driver runs the tasks)."""
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    frame = spark.createDataFrame(data).repartition(2).cache()
    frame.count()
    exclude = frame.select("user_idx", "item_idx")

    def sink(df) -> None:
        df.write.format("noop").mode("overwrite").save()

    def als(**extra) -> ALS:
        return ALS(
            rank=RANK,
            regParam=REG,
            alpha=ALPHA,
            implicitPrefs=True,
            userCol="user_idx",
            itemCol="item_idx",
            ratingCol="strength",
            seed=42,
            **{"maxIter": ITERS, **extra},
        )

    def fit(estimator):
        model = estimator.fit(frame)
        model.userFactors.count()  # factors materialised: the fit is really done
        return model

    out: dict[str, float] = {}
    # A fresh JVM runs the first fit interpreted: measured 2x slower than the next one, which
    # would land on whichever variant runs first.
    timed("JIT warm-up (ALS, 2 iterations, not compared)", lambda: fit(als(maxIter=2)), jvm_cpu)
    print("Spark BEFORE (default ALS: 10x10 blocks, MEMORY_AND_DISK):")
    before, out["fit_before"] = timed("ALS fit", lambda: fit(als()), jvm_cpu)
    _, out["rfau"] = timed(
        f"recommendForAllUsers({K}) (seen NOT excluded)",
        lambda: sink(before.recommendForAllUsers(K)),
    )
    if not skip_crossjoin:
        _, out["crossjoin"] = timed(
            f"models.topk.top_k_from_factors({K}) cross join, seen excluded",
            lambda: sink(top_k_from_factors(before.userFactors, before.itemFactors, K, exclude)),
        )
    print("Spark AFTER (2x2 blocks, MEMORY_ONLY, top_k_blocked):")
    tuned = als(
        numUserBlocks=2,
        numItemBlocks=2,
        intermediateStorageLevel="MEMORY_ONLY",
        finalStorageLevel="MEMORY_ONLY",
    )
    after, out["fit_after"] = timed("ALS fit", lambda: fit(tuned), jvm_cpu)
    _, out["topk_after"] = timed(
        f"models.topk.top_k_blocked({K}), seen excluded",
        lambda: sink(top_k_blocked(after.userFactors, after.itemFactors, K, exclude)),
    )
    spark.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--skip-crossjoin", action="store_true")
    args = parser.parse_args()
    data = synthetic(args.interactions, args.users, args.items)
    print(
        f"data: {len(data):,} interactions, {args.users:,} users, {args.items:,} items; "
        f"rank {RANK}, {ITERS} iterations, top-{K}; same process, back to back, 2 shared cores"
    )
    print(f"start: {load()}")
    imp_fit, imp_topk = run_implicit(data, args.users, args.items)
    s = run_spark(data, args.skip_crossjoin)
    print(f"end: {load()}")
    print("ratios (Spark time / implicit time):")
    print(
        f"  fit   before {s['fit_before'] / imp_fit:6.1f}x   after {s['fit_after'] / imp_fit:6.1f}x"
    )
    topk_before = f"recommendForAllUsers {s['rfau'] / imp_topk:6.1f}x"
    if "crossjoin" in s:
        topk_before += f", top_k_from_factors {s['crossjoin'] / imp_topk:6.1f}x"
    print(f"  top-K before {topk_before}   after top_k_blocked {s['topk_after'] / imp_topk:6.1f}x")


if __name__ == "__main__":
    main()
