"""The served blend against every other model, per data set (a script, not a test).

    .venv/bin/python benchmarks/served_blend.py [--datasets sample online_retail movielens]

Runs the whole nightly (ingest ... evaluate, promote, publish) on each data set in a
temporary lake/MLflow/Redis, with no per-data-set tuning, and prints the test split's NDCG@10
of `served` (THE ranker the API serves, replayed offline with the weights chosen on
validation), the offline `hybrid`, ALS, item-CF, content and the best popularity/trending
baseline, with the ratios the issue asks for (served / best baseline, served / hybrid), and
the weights the publication carries.

Data: `sample` is the bundled Online Retail sample (data/sample); `online_retail` the full
UCI file and `movielens` MovieLens-100K from ../shared/datasets (converted to the generic
events/items CSVs: every rating a `purchase`, genres as the category, titles from u.item).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from online_retail_full import start_redis  # noqa: E402

from recolake.settings import Settings  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
BASELINES = ("popularity", "popularity_by_category", "trending", "trending_by_category")
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def movielens_csvs(work: Path) -> tuple[list[str], str]:
    """u.data / u.item as generic events (purchase per rating) and items CSVs; the ds."""
    folder = SHARED / "movielens_100k"
    events, items = work / "ml-events.csv", work / "ml-items.csv"
    last = 0
    with open(events, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["user_id", "item_id", "event_type", "timestamp"])
        for line in (folder / "u.data").read_text().splitlines():
            user, item, _rating, ts = line.split("\t")
            last = max(last, int(ts))
            stamp = datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            w.writerow([f"u{user}", f"m{item}", "purchase", stamp])
    with open(items, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["item_id", "title", "category", "price"])
        raw = (folder / "u.item").read_bytes().decode("latin-1")
        for line in raw.splitlines():
            fields = line.split("|")
            flags = fields[5:]
            genre = next((GENRES[i] for i, f in enumerate(flags) if f == "1"), "unknown")
            w.writerow([f"m{fields[0]}", fields[1], genre, ""])  # no prices in MovieLens
    ds = datetime.fromtimestamp(last, UTC).date().isoformat()
    return ["--format", "generic", "--events", str(events), "--items", str(items)], ds


def dataset_args(name: str, work: Path) -> tuple[list[str], str]:
    if name == "sample":
        return ["--format", "online_retail"], "2011-12-09"  # nightly's defaults: the sample
    if name == "online_retail":
        path = SHARED / "online_retail" / "online_retail.csv.gz"
        return ["--format", "online_retail", "--events", str(path)], "2011-12-09"
    if name == "movielens":
        return movielens_csvs(work)
    raise SystemExit(f"unknown data set {name!r}")


def run_one(name: str) -> dict:
    from pipelines import nightly

    with tempfile.TemporaryDirectory(prefix=f"recolake-served-{name}-") as tmp:
        work = Path(tmp)
        proc, url = start_redis(work)
        try:
            settings = Settings(
                lake_root=str(work / "lake"),
                mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                mlflow_artifact_root=str(work / "artifacts"),
                reports_dir=str(work / "reports"),
                landing_dir=str(work / "landing"),
                erasure_requests_dir=str(work / "erasure"),
                redis_url=url,
                pseudonymisation_key="benchmark-key",
                spark_master="local[2]",
            )
            argv, ds = dataset_args(name, work)
            started = time.perf_counter()
            result = nightly.main(["--ds", ds, *argv], settings=settings)
            seconds = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return {"result": result, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sample", "online_retail", "movielens"])
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        out = run_one(name)
        result = out["result"]
        metrics = result.evaluation.metrics
        key = f"ndcg@{result.evaluation.document['k']}"
        value = {m: v.get(key) for m, v in metrics.items()}
        best_base = max((b for b in BASELINES if b in value), key=lambda b: value[b])
        served = value.get("served") or 0.0
        hybrid = value.get("hybrid")
        doc = result.evaluation.document
        rows.append(
            (
                name,
                result.evaluation.evaluated_users,
                served,
                hybrid,
                value.get("als"),
                value.get("item_cf"),
                value.get("content"),
                best_base,
                value[best_base],
                out["seconds"],
                (doc.get("served") or {}).get("weights"),
                ((doc.get("served") or {}).get("personal") or {}).get("weights"),
            )
        )
        print(f"\n{name}: every model ({key}, test split):")
        for model, v in sorted(value.items(), key=lambda kv: -(kv[1] or 0)):
            print(f"  {model:<24} {v:.4f}")
    print(
        f"\n{'data set':<14} users  served  hybrid  als     item_cf content best baseline    "
        "served/base served/hybrid  nightly s"
    )
    for name, users, served, hybrid, als, cf, content, base, base_v, secs, _, _ in rows:

        def f(x):
            return f"{x:.4f}" if x is not None else "  -   "

        ratio_h = f"{served / hybrid:.2f}x" if hybrid else "-"
        print(
            f"{name:<14} {users:>5}  {f(served)}  {f(hybrid)}  {f(als)}  {f(cf)}  {f(content)}  "
            f"{base:<16} {base_v:.4f} {served / base_v if base_v else 0:.2f}x      "
            f"{ratio_h:<13} {secs:.0f}"
        )
    for name, *_, weights, personal in rows:
        print(f"{name}: served weights {weights}; personal list fuses {personal}")


if __name__ == "__main__":
    main()
