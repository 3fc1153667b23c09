"""Content neighbours at catalog scale (a script, not a test).

    .venv/bin/python benchmarks/content_scale.py [--sizes 20000 100000] [--million]

Each catalog comes from ``benchmarks/generate_shop.py`` (same seed, product-style titles with
very common words such as "pack" or "organic", Zipf-sized categories, brands) and runs through
``models.content.content_neighbours`` (top 50, the defaults of the content job), written to
Parquet so every neighbour is computed. Printed per size: wall time, peak RSS of the whole
process tree (this driver, its JVM and the Python workers, sampled from /proc every 0.2 s),
neighbours per item, and for the smallest size the recall@50 against brute-force exact
cosines (scipy sparse products of the same TF-IDF vectors, every pair scored).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TOP_N = 50


class PeakRss:
    """Peak summed RSS (bytes) of this process and all its descendants."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def tree_rss(root: int) -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
                rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            todo.extend(p for p, parent in parents.items() if parent == pid)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.tree_rss(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_catalog(n_items: int, out: Path, seed: int) -> Path:
    import generate_shop

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    generate_shop.generate_items(rng, n_items, out, False, 200_000)
    return out / "items.csv"


def read_catalog(spark, path: Path):
    return (
        spark.read.option("header", True)
        .csv(str(path))
        .select("item_id", "title", "category", "brand")
    )


def exact_top(spark, catalog, top_n: int, min_score: float) -> dict[str, set[str]]:
    """Brute force: every pair's cosine from the same TF-IDF vectors (scipy), top-N each."""
    import scipy.sparse as sp

    from models.content import fit_tfidf, item_text, tfidf_rows

    texts = item_text(catalog)
    pdf = tfidf_rows(texts, fit_tfidf(texts)).toPandas().sort_values("item_id")
    ids = pdf["item_id"].to_numpy(dtype=object)
    indptr = np.concatenate([[0], np.cumsum(pdf["terms"].map(len))])
    matrix = sp.csr_matrix(
        (np.concatenate(pdf["weights"].to_list()), np.concatenate(pdf["terms"].to_list()), indptr),
        shape=(len(ids), int(max(t.max() for t in pdf["terms"])) + 1),
    )
    out: dict[str, set[str]] = {}
    for lo in range(0, len(ids), 1000):
        scores = (matrix[lo : lo + 1000] @ matrix.T).toarray()
        scores[np.arange(scores.shape[0]), np.arange(lo, lo + scores.shape[0])] = -1.0
        for r, row in enumerate(scores):
            best = np.flatnonzero(row >= min_score)
            best = best[np.lexsort((best, -row[best]))][:top_n]
            out[ids[lo + r]] = set(ids[best])
    return out


def recall_at(got: dict[str, set[str]], exact: dict[str, set[str]]) -> float:
    scored = [len(got.get(i, set()) & want) / len(want) for i, want in exact.items() if want]
    return float(np.mean(scored))


def run_size(spark, n_items: int, work: Path, seed: int, recall: bool) -> None:
    from pyspark.sql import functions as F

    from models.content import content_neighbours

    path = make_catalog(n_items, work / f"items_{n_items}", seed)
    catalog = read_catalog(spark, path).cache()
    catalog.count()
    target = str(work / f"neighbours_{n_items}")
    with PeakRss() as rss:
        start = time.perf_counter()
        neighbours = content_neighbours(catalog, top_n=TOP_N)  # TF-IDF, index: eager
        prepared = time.perf_counter() - start
        neighbours.write.mode("overwrite").parquet(target)  # the blocked scoring
        wall = time.perf_counter() - start
    written = spark.read.parquet(target)
    stats = (
        written.groupBy("item_id")
        .count()
        .agg(F.count("*").alias("items"), F.avg("count").alias("avg"), F.min("count").alias("min"))
    )
    s = stats.first()
    print(
        f"items={n_items} wall={wall:.1f}s (tfidf+index {prepared:.1f}s, "
        f"scoring+write {wall - prepared:.1f}s) peak_rss={rss.peak / 2**30:.2f}GiB "
        f"items_with_neighbours={s['items']} neighbours_per_item avg={s['avg']:.1f} "
        f"min={s['min']}",
        flush=True,
    )
    if recall:
        exact = exact_top(spark, catalog, TOP_N, 0.05)
        got: dict[str, set[str]] = {}
        for r in written.select("item_id", "neighbour_id").collect():
            got.setdefault(r[0], set()).add(r[1])
        print(f"items={n_items} recall@{TOP_N} vs exact = {recall_at(got, exact):.4f}", flush=True)
    catalog.unpersist()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    p.add_argument("--million", action="store_true", help="also 1,000,000 items")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--recall-size", type=int, default=20_000, help="size checked vs exact")
    args = p.parse_args(argv)
    sizes = args.sizes + ([1_000_000] if args.million else [])

    from recolake.settings import Settings
    from recolake.spark import build_session

    spark = build_session(
        Settings(spark_master="local[2]", spark_driver_memory="6g"), "content-scale"
    )
    with tempfile.TemporaryDirectory(prefix="content-scale-") as tmp:
        for n in sizes:
            run_size(spark, n, Path(tmp), args.seed, recall=n == args.recall_size)
    spark.stop()


if __name__ == "__main__":
    main()
