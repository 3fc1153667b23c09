"""MovieLens 100K under the Microsoft Recommenders protocol, next to its published table
(a script, not a test).

    .venv/bin/python benchmarks/movielens_100k.py [--data ../shared/datasets/movielens_100k]

Protocol (../shared/README.md): inside each item's interactions, a random order from a
seeded rand (seed 42) puts the first 75% in training and the rest in test (done in Spark);
every test interaction is relevant (no rating threshold); top-10 after removing the items
the user saw in training; binary-gain nDCG. Metrics: models.evaluation.RankingEvaluation
(Spark RankingEvaluator). MAP is Spark's meanAveragePrecisionAtK (k=10, divided by
min(|relevant|, k)); the published MAP is Recommenders' `map` (full list, divided by
|relevant|), so our MAP column is not strictly the same definition (it is the larger one).

ALS (implicit) parameters are chosen on a validation split carved from training with the
same stratified split (75/25 of training, seed 43), then refitted on the whole training set.
Item-item CF, the content model (u.item title + genres) and popularity come from models/;
the offline hybrid (models/hybrid.py) fuses the four lists with weights chosen on the same
validation split, then is measured on the test split like the others.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyspark.ml.recommendation import ALS  # noqa: E402
from pyspark.sql import DataFrame, SparkSession, Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from features import columns as c  # noqa: E402
from models.evaluation import RankingEvaluation  # noqa: E402
from models.hybrid import fuse, ndcg_by_weights, weight_grid  # noqa: E402
from models.topk import rank_within, top_k_blocked  # noqa: E402

K = 10
PUBLISHED = [
    ("ALS (explicit, Spark)", 0.0047, 0.044, 0.048, 0.018),
    ("SVD", 0.0129, 0.096, 0.091, 0.033),
    ("SAR", 0.1106, 0.382, 0.331, 0.176),
    ("NCF", 0.1077, 0.396, 0.347, 0.181),
    ("LightGCN", 0.0885, 0.420, 0.380, 0.144),
    ("BPR", 0.1325, 0.442, 0.388, 0.213),
    ("BiVAE", 0.1461, 0.475, 0.412, 0.219),
]
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
ALS_GRID = [
    # (confidence, rank, regParam, alpha), all chosen on the validation split. Earlier runs
    # (figures in benchmarks/README.md): ranks 64/128/200 x reg 0.1-5 x alpha 1-10 with the
    # rating as confidence peaked at rank 200, reg 1, alpha 5; binary confidence wants a lower
    # reg; rating x inverse item frequency was worse everywhere.
    ("rating", 128, 1.0, 5.0),
    ("rating", 200, 1.0, 5.0),
    ("binary", 200, 0.5, 5.0),
    ("binary", 200, 0.5, 10.0),
    ("binary", 200, 0.5, 20.0),
    ("binary", 200, 0.25, 10.0),
]
MAX_ITER = 15
DEPTH = 50  # list depth each model gives the hybrid


def stratified_split(df: DataFrame, ratio: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Per item: random order (seeded rand), the first round(ratio * n) rows train."""
    per_item = Window.partitionBy(c.ITEM_ID)
    ordered = per_item.orderBy("_r", c.USER_KEY)
    marked = (
        df.withColumn("_r", F.rand(seed))
        .withColumn("_i", F.row_number().over(ordered))
        .withColumn("_n", F.count(F.lit(1)).over(per_item))
        .withColumn("_train", F.col("_i") <= F.round(F.col("_n") * ratio))
        .drop("_r", "_i", "_n")
        .cache()
    )
    return marked.where("_train").drop("_train"), marked.where(~F.col("_train")).drop("_train")


def load(spark: SparkSession, folder: Path) -> tuple[DataFrame, DataFrame]:
    ratings = (
        spark.read.csv(
            str(folder / "u.data"), sep="\t", schema="u int, i int, rating double, ts long"
        )
        .select(
            F.col("u").cast("string").alias(c.USER_KEY),
            F.col("i").cast("string").alias(c.ITEM_ID),
            F.col("u").alias(c.USER_IDX),
            F.col("i").alias(c.ITEM_IDX),
            F.col("rating").alias(c.STRENGTH),
        )
        .cache()
    )
    raw = spark.read.text(str(folder / "u.item"), wholetext=False)
    fields = F.split(F.col("value"), r"\|")
    genre_words = F.concat_ws(
        " ",
        *[F.when(fields[5 + n] == "1", F.lit(g)) for n, g in enumerate(GENRES)],
    )
    items = raw.select(
        fields[0].alias(c.ITEM_ID),
        F.concat_ws(" ", fields[1], genre_words).alias(c.TITLE),
        genre_words.alias(c.CATEGORY),
    )
    return ratings, items


def confidence(train: DataFrame, mode: str) -> DataFrame:
    """The strength ALS sees: the rating, 1 per interaction, or the rating times the item's
    inverse user frequency in ``train`` (down-weights blockbusters, as BM25/TF-IDF weighting
    does for implicit ALS)."""
    if mode == "rating":
        return train
    if mode == "binary":
        return train.withColumn(c.STRENGTH, F.lit(1.0))
    n_users = train.select(c.USER_IDX).distinct().count()
    per_item = train.groupBy(c.ITEM_IDX).agg(F.count(F.lit(1)).alias("_n"))
    return train.join(per_item, c.ITEM_IDX).withColumn(
        c.STRENGTH, F.col(c.STRENGTH) * F.log(F.lit(float(n_users)) / F.col("_n") + 1.0)
    )


def als_recs(
    train: DataFrame, strength: str, rank: int, reg: float, alpha: float, depth: int = DEPTH
) -> DataFrame:
    model = ALS(
        rank=rank,
        maxIter=MAX_ITER,
        regParam=reg,
        alpha=alpha,
        implicitPrefs=True,
        userCol=c.USER_IDX,
        itemCol=c.ITEM_IDX,
        ratingCol=c.STRENGTH,
        seed=42,
        numUserBlocks=2,
        numItemBlocks=2,
    ).fit(confidence(train, strength))
    ranked = top_k_blocked(
        model.userFactors, model.itemFactors, depth, train.select(c.USER_IDX, c.ITEM_IDX)
    )
    return ranked.select(
        F.col(c.USER_IDX).cast("string").alias(c.USER_KEY),
        F.col(c.ITEM_IDX).cast("string").alias(c.ITEM_ID),
        c.SCORE,
        c.RANK,
    )


def popularity_recs(train: DataFrame) -> DataFrame:
    from models.baselines import popular_for_users

    counts = train.groupBy(c.ITEM_ID).count()
    popularity = rank_within(
        counts.withColumn(c.SCORE, F.col("count").cast("double")).withColumn("_all", F.lit(1)),
        10_000,
        col_user="_all",
        col_item=c.ITEM_ID,
    )
    return popular_for_users(train, popularity, train, DEPTH)


def item_cf_recs(train: DataFrame) -> DataFrame:
    from models.item_cf import co_occurrence_neighbours, score_from_neighbours

    neighbours = co_occurrence_neighbours(train, col_group=c.USER_KEY, top_n=50, min_support=2)
    return score_from_neighbours(train.withColumn(c.STRENGTH, F.lit(1.0)), neighbours, DEPTH)


def content_recs(train: DataFrame, items: DataFrame) -> DataFrame:
    from models.content import content_neighbours
    from models.item_cf import score_from_neighbours

    neighbours = content_neighbours(items, top_n=50)
    return score_from_neighbours(train.withColumn(c.STRENGTH, F.lit(1.0)), neighbours, DEPTH)


def evaluate(recs: DataFrame, truth: DataFrame) -> dict[str, float]:
    ev = RankingEvaluation(recs.where(F.col(c.RANK) <= K), truth.select(c.USER_KEY, c.ITEM_ID), K)
    return {"map": ev.map(), "ndcg": ev.ndcg(), "precision": ev.precision(), "recall": ev.recall()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/movielens_100k")
    parser.add_argument("--hybrid-step", type=float, default=0.25, help="weight grid step")
    parser.add_argument(
        "--strength",
        nargs="*",
        choices=("rating", "binary", "idf"),
        help="restrict the grid's ALS confidence: the rating, 1, or rating x item inverse "
        "user frequency (idf replaces the rating points of the grid)",
    )
    parser.add_argument("--ranks", type=int, nargs="*", help="restrict the grid's ranks")
    args = parser.parse_args()
    grid = ALS_GRID
    if args.strength == ["idf"]:
        grid = [("idf", *g[1:]) for g in ALS_GRID if g[0] == "rating"]
    elif args.strength:
        grid = [g for g in grid if g[0] in args.strength]
    grid = [g for g in grid if not args.ranks or g[1] in args.ranks]
    print(f"ALS grid (confidence, rank, regParam, alpha): {grid}")
    from recolake.settings import Settings
    from recolake.spark import build_session

    started = time.perf_counter()
    spark = build_session(Settings(spark_master="local[2]"), "movielens-100k")
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    ratings, items = load(spark, args.data)
    train, test = stratified_split(ratings, 0.75, seed=42)
    print(f"split: {train.count():,} train, {test.count():,} test (75/25 per item, seed 42)")

    fit, valid = stratified_split(train, 0.75, seed=43)
    best, best_ndcg, best_lists = None, -1.0, None
    print("ALS (implicit) tuning on a validation split of training (nDCG@10):")
    for strength, rank, reg, alpha in grid:
        t0 = time.perf_counter()
        recs = als_recs(fit, strength, rank, reg, alpha).cache()
        ndcg = evaluate(recs, valid)["ndcg"]
        print(
            f"  {strength:<7s} rank={rank:<4d} regParam={reg:<5} alpha={alpha:<5} "
            f"nDCG@10={ndcg:.4f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        if ndcg > best_ndcg:
            if best_lists is not None:
                best_lists.unpersist()
            best, best_ndcg, best_lists = (strength, rank, reg, alpha), ndcg, recs
        else:
            recs.unpersist()
    print(f"  chosen: {best[0]} confidence, rank={best[1]} regParam={best[2]} alpha={best[3]}")

    # Offline hybrid (models/hybrid.py): weights chosen on the same validation split.
    valid_lists = {
        "als": best_lists,
        "item_cf": item_cf_recs(fit).cache(),
        "content": content_recs(fit, items).cache(),
        "popularity": popularity_recs(fit).cache(),
    }
    grid = weight_grid(list(valid_lists), args.hybrid_step)
    ranked = ndcg_by_weights(valid_lists, valid.select(c.USER_KEY, c.ITEM_ID), grid, K, DEPTH)
    weights = ranked[0][0]
    print(
        f"hybrid weights chosen on validation ({len(grid)} grid points): "
        + ", ".join(f"{m}={w:g}" for m, w in weights.items())
        + f" (validation nDCG@10 {ranked[0][1]:.4f})"
    )
    for df in valid_lists.values():
        df.unpersist()

    test_lists = {"als": als_recs(train, *best).cache(), "popularity": popularity_recs(train)}
    results: list[tuple[str, dict[str, float]]] = []
    results.append(
        (f"ALS implicit {best[0]} r={best[1]} (recolake)", evaluate(test_lists["als"], test))
    )
    results.append(("popularity (recolake)", evaluate(test_lists["popularity"], test)))
    test_lists["item_cf"] = item_cf_recs(train).cache()
    results.append(("item-item CF cosine (recolake)", evaluate(test_lists["item_cf"], test)))
    test_lists["content"] = content_recs(train, items).cache()
    results.append(
        ("content TF-IDF title+genres (recolake)", evaluate(test_lists["content"], test))
    )
    results.append(
        (
            "hybrid, validation weights (recolake)",
            evaluate(fuse(test_lists, weights, K, DEPTH), test),
        )
    )

    print()
    print("MAP here = Spark meanAveragePrecisionAtK(k=10); published MAP = Recommenders map.")
    header = f"{'algorithm':<42s} {'MAP':>7s} {'nDCG@10':>8s} {'Prec@10':>8s} {'Rec@10':>8s}"
    print(header)
    print("-" * len(header))
    for name, m, ndcg, p, r in PUBLISHED:
        print(f"{name + ' [published]':<42s} {m:7.4f} {ndcg:8.3f} {p:8.3f} {r:8.3f}")
    for name, m in results:
        print(
            f"{name:<42s} {m['map']:7.4f} {m['ndcg']:8.3f} {m['precision']:8.3f} {m['recall']:8.3f}"
        )
    print(f"wall time {time.perf_counter() - started:.0f} s")
    spark.stop()


if __name__ == "__main__":
    main()
