"""Offline evaluation on a time-based split, with Spark's RankingEvaluator's metrics.

Ground truth per user is the set of items they interacted with positively in the held-out
period and had not interacted with before it (recommenders hide seen items, so measuring
them would reward nothing). Only users known at training time are evaluated: cold users
get the popularity fallback, whose quality the popularity baseline measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pyspark.ml.evaluation import RankingEvaluator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from features import columns as c
from models.indexing import global_ntile

METRICS = {
    "precision": "precisionAtK",
    "recall": "recallAtK",
    "ndcg": "ndcgAtK",
    "map": "meanAveragePrecisionAtK",
}


@dataclass(frozen=True)
class TimeSplit:
    train: DataFrame
    test: DataFrame


def time_split(events: DataFrame, cutoff, end) -> TimeSplit:
    """Events before ``cutoff`` train; events in [cutoff, end) test."""
    t = F.col(c.EVENT_TIME)
    return TimeSplit(
        train=events.where(t < F.lit(cutoff)),
        test=events.where((t >= F.lit(cutoff)) & (t < F.lit(end))),
    )


def ground_truth(
    test_events: DataFrame,
    train_pairs: DataFrame,
    *,
    positive_types: list[str],
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> DataFrame:
    """(user, item) pairs of the test period that are new to a user known in training."""
    known_users = train_pairs.select(col_user).distinct()
    positive = test_events.where(F.col(c.EVENT_TYPE).isin(positive_types)).select(
        col_user, col_item
    )
    return (
        positive.distinct()
        .join(known_users, col_user, "left_semi")
        .join(train_pairs.select(col_user, col_item), [col_user, col_item], "left_anti")
    )


#: The ranking metrics every list is measured on (RankingEvaluator's names plus hit rate).
RANKING_METRICS = (*METRICS, "hit_rate")


def ranking_aggregates(k: int) -> list[Column]:
    """The ranking metrics@k as aggregate columns over rows of (``prediction``: the ranked
    items, ``label``: the relevant ones), one row per user, with RankingEvaluator's
    definitions (tests check parity on random lists): binary gain, precision over k, recall
    over the relevant items, AP@k over min(relevant, k), and the share of users with any
    relevant item in their top k. A user without relevant items scores 0."""
    hits = f"transform(slice(prediction, 1, {k}), x -> IF(array_contains(label, x), 1, 0))"
    n_hits = f"aggregate({hits}, 0, (a, h) -> a + h)"
    dcg = f"aggregate(transform({hits}, (h, i) -> h / log2(i + 2)), 0D, (a, v) -> a + v)"
    ideal = (
        f"aggregate(transform(sequence(1, least(size(label), {k})), i -> 1D / log2(i + 1)),"
        " 0D, (a, v) -> a + v)"
    )
    precision_sum = (
        f"aggregate(transform({hits}, (h, i) -> h * aggregate(slice({hits}, 1, i + 1), 0,"
        " (a, x) -> a + x) / (i + 1)), 0D, (a, v) -> a + v)"
    )

    def per_user(expr: str) -> Column:
        return F.expr(f"IF(size(label) = 0, 0D, {expr})")

    return [
        F.avg(per_user(f"{n_hits} / {k}")).alias("precision"),
        F.avg(per_user(f"{n_hits} / size(label)")).alias("recall"),
        F.avg(per_user(f"{dcg} / {ideal}")).alias("ndcg"),
        F.avg(per_user(f"{precision_sum} / least(size(label), {k})")).alias("map"),
        F.avg(per_user(f"IF({n_hits} > 0, 1D, 0D)")).alias("hit_rate"),
    ]


class RankingEvaluation:
    """Metrics@k of ranked recommendations against ground truth, one method per metric."""

    def __init__(
        self,
        recommendations: DataFrame,
        truth: DataFrame,
        k: int,
        *,
        col_user: str = c.USER_KEY,
        col_item: str = c.ITEM_ID,
    ) -> None:
        for name, df, needed in (
            ("recommendations", recommendations, (col_user, col_item, c.RANK)),
            ("truth", truth, (col_user, col_item)),
        ):
            missing = [x for x in needed if x not in df.columns]
            if missing:
                raise ValueError(f"{name} lacks columns {missing}")
        self.k = k
        # RankingEvaluator wants numeric labels: number the items of both sides together.
        item_ids = (
            recommendations.select(col_item)
            .union(truth.select(col_item))
            .distinct()
            .withColumn("_n", F.xxhash64(col_item).cast("double"))
        )
        predicted = (
            recommendations.join(item_ids, col_item)
            .groupBy(col_user)
            .agg(F.sort_array(F.collect_list(F.struct(c.RANK, "_n"))).alias("_p"))
            .select(col_user, F.transform("_p", lambda s: s["_n"]).alias("prediction"))
        )
        labels = (
            truth.join(item_ids, col_item).groupBy(col_user).agg(F.collect_set("_n").alias("label"))
        )
        # Users with truth but no recommendation count as zero, not as absent.
        self._frame = (
            labels.join(predicted, col_user, "left")
            .select(
                col_user,
                F.coalesce("prediction", F.array().cast("array<double>")).alias("prediction"),
                "label",
            )
            .cache()
        )
        self._values: dict[str, float] | None = None
        self.users = self._frame.count()
        if self.users == 0:
            raise ValueError("no user has ground truth: the test period is empty")

    def _metric(self, name: str) -> float:
        return self._all()[name]

    def _all(self) -> dict[str, float]:
        """Every metric in one aggregation (one Spark job, not one or more per metric), with
        RankingEvaluator's definitions (tests check parity on random lists): binary gain,
        precision over k, recall over the relevant items, AP@k over min(relevant, k), and the
        share of users with any relevant item in their top k."""
        if self._values is None:
            row = self._frame.agg(*ranking_aggregates(self.k)).first()
            self._values = {name: float(row[name]) for name in RANKING_METRICS}
        return self._values

    def precision(self) -> float:
        return self._metric("precision")

    def recall(self) -> float:
        return self._metric("recall")

    def ndcg(self) -> float:
        return self._metric("ndcg")

    def map(self) -> float:
        return self._metric("map")

    def hit_rate(self) -> float:
        """Share of evaluated users with at least one relevant item in their top k."""
        return self._metric("hit_rate")

    def all(self) -> dict[str, float]:
        return {f"{name}@{self.k}": value for name, value in self._all().items()}

    def reference(self, name: str) -> float:
        """The metric as Spark's RankingEvaluator computes it (the parity tests' yardstick)."""
        evaluator = RankingEvaluator(metricName=METRICS[name], k=self.k)
        return float(evaluator.evaluate(self._frame))


def _top(recommendations: DataFrame, k: int) -> DataFrame:
    return recommendations.where(F.col(c.RANK) <= k)


def catalog_coverage(
    recommendations: DataFrame, catalog_items: int, k: int, *, col_item: str = c.ITEM_ID
) -> float:
    """Share of the catalog that appears in at least one top-k list (popularity: tiny)."""
    if catalog_items <= 0:
        raise ValueError("catalog_items must be positive")
    return _top(recommendations, k).select(col_item).distinct().count() / catalog_items


def intra_list_diversity(
    recommendations: DataFrame,
    categories: DataFrame,
    k: int,
    *,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> float:
    """Mean over users of the share of item pairs in the top k with different categories
    (items without a category count as a category of their own: 'unknown')."""
    cats = categories.select(col_item, F.coalesce(F.col(c.CATEGORY), F.lit("unknown")).alias("_c"))
    per_cat = (
        _top(recommendations, k)
        .join(cats, col_item, "left")
        .withColumn("_c", F.coalesce("_c", F.lit("unknown")))
        .groupBy(col_user, "_c")
        .agg(F.count(F.lit(1)).alias("_m"))
    )
    per_user = (
        per_cat.groupBy(col_user)
        .agg(
            F.sum("_m").alias("_n"),
            F.sum(F.col("_m") * (F.col("_m") - 1) / 2).alias("_same"),
        )
        .where(F.col("_n") >= 2)
        .select((1 - F.col("_same") / (F.col("_n") * (F.col("_n") - 1) / 2)).alias("_d"))
    )
    value = per_user.agg(F.avg("_d")).first()[0]
    return float(value) if value is not None else 0.0


def novelty(
    recommendations: DataFrame,
    interactions: DataFrame,
    k: int,
    *,
    col_user: str = c.USER_KEY,
    col_item: str = c.ITEM_ID,
) -> float:
    """Mean self-information -log2(p(i)) of recommended items, p(i) = share of training users
    who interacted with i; an item nobody touched counts as one user (no infinite value)."""
    n_users = interactions.select(col_user).distinct().count()
    if n_users == 0:
        raise ValueError("novelty needs training interactions")
    pop = interactions.select(col_user, col_item).distinct().groupBy(col_item).count()
    scored = (
        _top(recommendations, k)
        .join(pop, col_item, "left")
        .select((-F.log2(F.coalesce(F.col("count"), F.lit(1)) / F.lit(n_users))).alias("_s"))
    )
    value = scored.agg(F.avg("_s")).first()[0]
    return float(value) if value is not None else 0.0


def beyond_accuracy(
    recommendations: DataFrame,
    *,
    k: int,
    catalog: DataFrame,
    interactions: DataFrame,
    catalog_items: int | None = None,
) -> dict[str, float]:
    """Coverage, intra-list diversity (by category) and novelty at k, named like all().
    ``catalog_items``: the catalog's size when the caller already counted it (one count
    for every model measured)."""
    n_items = catalog.count() if catalog_items is None else catalog_items
    return {
        f"coverage@{k}": catalog_coverage(recommendations, n_items, k),
        f"diversity@{k}": intra_list_diversity(recommendations, catalog, k),
        f"novelty@{k}": novelty(recommendations, interactions, k),
    }


def popularity_deciles(interactions: DataFrame, buckets: int = 10) -> DataFrame:
    """(item_id, decile): items by number of training users, 1 = the most popular tenth."""
    counts = interactions.select(c.USER_KEY, c.ITEM_ID).distinct().groupBy(c.ITEM_ID).count()
    deciles = global_ntile(counts, [F.desc("count"), F.asc(c.ITEM_ID)], buckets, "_decile")
    return deciles.select(c.ITEM_ID, "_decile")


def popularity_profile(
    frame: DataFrame, deciles: DataFrame, *, k: int | None = None, buckets: int = 10
) -> list[float]:
    """Share of ``frame``'s rows (top-k recommendations, or training interactions when k is
    None) per popularity decile; items unknown in training count in the last decile. A
    model with a popularity bias piles up in the first deciles."""
    rows = frame if k is None else _top(frame, k)
    counts = (
        rows.select(c.ITEM_ID)
        .join(deciles, c.ITEM_ID, "left")
        .select(F.coalesce("_decile", F.lit(buckets)).alias("_decile"))
        .groupBy("_decile")
        .count()
        .collect()
    )
    total = sum(r["count"] for r in counts)
    by_decile = {r["_decile"]: r["count"] for r in counts}
    return [by_decile.get(d, 0) / total if total else 0.0 for d in range(1, buckets + 1)]


_MODEL, _METRIC, _KEY, _VALUE = "_model", "_metric", "_key", "_value"
#: The model name under which measure_models returns the training interactions' profile.
HISTORY = "history"


def measure_models(
    lists: Mapping[str, DataFrame],
    *,
    truth: DataFrame,
    k: int,
    catalog: DataFrame,
    interactions: DataFrame,
    catalog_items: int | None = None,
    buckets: int = 10,
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Every model's metrics@k (RankingEvaluation's five, coverage, diversity, novelty) and
    popularity profile, plus the training interactions' profile under HISTORY, in one Spark
    action over the union of the lists: the per-model functions above cost about seven jobs
    per model (hundreds of small stages for a dozen models); this one plans them together.
    Definitions and values are those of RankingEvaluation, beyond_accuracy and
    popularity_profile (a test checks they agree)."""
    if not lists:
        raise ValueError("measure_models needs at least one list")
    spark = truth.sparkSession
    names = list(lists)
    n_items = catalog.count() if catalog_items is None else catalog_items
    if n_items <= 0:
        raise ValueError("catalog_items must be positive")
    top = None
    for name, recs in lists.items():
        part = _top(recs, k).select(F.lit(name).alias(_MODEL), c.USER_KEY, c.ITEM_ID, c.RANK)
        top = part if top is None else top.unionByName(part)
    top = top.cache()
    models = F.broadcast(spark.createDataFrame([(m,) for m in names], f"{_MODEL} string"))

    # Ranking metrics: every (model, user with truth) row, users without a list scoring 0.
    labels = (
        truth.select(c.USER_KEY, c.ITEM_ID)
        .distinct()
        .groupBy(c.USER_KEY)
        .agg(F.collect_set(c.ITEM_ID).alias("label"))
    )
    predicted = (
        top.groupBy(_MODEL, c.USER_KEY)
        .agg(F.sort_array(F.collect_list(F.struct(c.RANK, c.ITEM_ID))).alias("_p"))
        .select(_MODEL, c.USER_KEY, F.transform("_p", lambda x: x[c.ITEM_ID]).alias("prediction"))
    )
    per_user = labels.crossJoin(models).join(predicted, [_MODEL, c.USER_KEY], "left")
    ranking = (
        per_user.select(
            _MODEL,
            F.coalesce("prediction", F.array().cast("array<string>")).alias("prediction"),
            "label",
        )
        .groupBy(_MODEL)
        .agg(*ranking_aggregates(k), F.count(F.lit(1)).alias("_users"))
    )
    ranking_rows = ranking.select(
        _MODEL,
        F.explode(
            F.create_map(*(x for m in RANKING_METRICS for x in (F.lit(f"{m}@{k}"), F.col(m))))
        ).alias(_METRIC, _VALUE),
    )

    # Coverage: distinct items over the catalog.
    coverage = top.groupBy(_MODEL).agg(
        (F.countDistinct(c.ITEM_ID) / F.lit(float(n_items))).alias(_VALUE)
    )
    # Diversity: per user, the share of item pairs of different categories (intra_list_diversity).
    cats = catalog.select(c.ITEM_ID, F.coalesce(F.col(c.CATEGORY), F.lit("unknown")).alias("_c"))
    per_cat = (
        top.join(cats, c.ITEM_ID, "left")
        .withColumn("_c", F.coalesce("_c", F.lit("unknown")))
        .groupBy(_MODEL, c.USER_KEY, "_c")
        .agg(F.count(F.lit(1)).alias("_m"))
    )
    diversity = (
        per_cat.groupBy(_MODEL, c.USER_KEY)
        .agg(F.sum("_m").alias("_n"), F.sum(F.col("_m") * (F.col("_m") - 1) / 2).alias("_same"))
        .where(F.col("_n") >= 2)
        .groupBy(_MODEL)
        .agg(F.avg(1 - F.col("_same") / (F.col("_n") * (F.col("_n") - 1) / 2)).alias(_VALUE))
    )
    # Novelty: mean -log2(share of training users who touched the item), unknown = 1 user.
    pairs = interactions.select(c.USER_KEY, c.ITEM_ID).distinct()
    n_users = pairs.agg(F.countDistinct(c.USER_KEY).alias("_u"))
    pop = pairs.groupBy(c.ITEM_ID).agg(F.count(F.lit(1)).alias("_cnt"))
    novelty_ = (
        top.join(pop, c.ITEM_ID, "left")
        .crossJoin(F.broadcast(n_users))
        .groupBy(_MODEL)
        .agg(F.avg(-F.log2(F.coalesce(F.col("_cnt"), F.lit(1)) / F.col("_u"))).alias(_VALUE))
    )
    # Popularity profile: rows per decile of training popularity (unknown items: the last).
    deciles = popularity_deciles(interactions, buckets)
    history = interactions.select(F.lit(HISTORY).alias(_MODEL), c.ITEM_ID)
    profile = (
        top.select(_MODEL, c.ITEM_ID)
        .unionByName(history)
        .join(deciles, c.ITEM_ID, "left")
        .groupBy(_MODEL, F.coalesce("_decile", F.lit(buckets)).alias(_KEY))
        .agg(F.count(F.lit(1)).cast("double").alias(_VALUE))
    )

    def named(frame: DataFrame, metric: str) -> DataFrame:
        return frame.select(_MODEL, F.lit(metric).alias(_METRIC), _VALUE)

    no_key = F.lit(None).cast("int").alias(_KEY)
    long = (
        ranking_rows.select(_MODEL, _METRIC, no_key, _VALUE)
        .unionByName(named(coverage, f"coverage@{k}").select(_MODEL, _METRIC, no_key, _VALUE))
        .unionByName(named(diversity, f"diversity@{k}").select(_MODEL, _METRIC, no_key, _VALUE))
        .unionByName(named(novelty_, f"novelty@{k}").select(_MODEL, _METRIC, no_key, _VALUE))
        .unionByName(profile.select(_MODEL, F.lit("profile").alias(_METRIC), _KEY, _VALUE))
    )
    rows = long.collect()
    top.unpersist()
    metrics: dict[str, dict[str, float]] = {m: {} for m in names}
    counts: dict[str, dict[int, float]] = {m: {} for m in [HISTORY, *names]}
    for r in rows:
        if r[_METRIC] == "profile":
            counts[r[_MODEL]][int(r[_KEY])] = r[_VALUE]
        else:
            metrics[r[_MODEL]][r[_METRIC]] = float(r[_VALUE]) if r[_VALUE] is not None else 0.0
    if not any(metrics[m] for m in names):
        raise ValueError("no user has ground truth: the test period is empty")
    for m in names:  # a model with no list at all: nothing recommended, nothing covered
        for name in (f"{x}@{k}" for x in ("coverage", "diversity", "novelty")):
            metrics[m].setdefault(name, 0.0)
    order = [f"{m}@{k}" for m in RANKING_METRICS] + [
        f"{x}@{k}" for x in ("coverage", "diversity", "novelty")
    ]
    metrics = {m: {name: metrics[m][name] for name in order} for m in names}
    profiles = {}
    for m in [HISTORY, *names]:
        total = sum(counts[m].values())
        profiles[m] = [counts[m].get(d, 0) / total if total else 0.0 for d in range(1, buckets + 1)]
    return metrics, profiles


@dataclass(frozen=True)
class EvalSplit:
    """One time-based split, prepared once for every model measured on it."""

    train_events: DataFrame
    train_strength: DataFrame  # user_item_strength as of the cutoff, from train events only
    truth: DataFrame  # (user_key, item_id): new positive items in [cutoff, end)
    users: DataFrame  # user_key of every evaluated user
    history: DataFrame  # the evaluated users' training strength rows
    cutoff: datetime
    end: datetime

    def unpersist(self) -> None:
        self.train_strength.unpersist()
        self.truth.unpersist()


def prepare_split(
    events: DataFrame,
    cutoff: datetime,
    end: datetime,
    *,
    weights: dict[str, float],
    half_life_days: float,
) -> EvalSplit:
    """Train strength before ``cutoff`` and ground truth in [cutoff, end), cached."""
    from features.transforms import user_item_strength

    split = time_split(events, cutoff, end)
    strength = user_item_strength(
        split.train, as_of=cutoff, weights=weights, half_life_days=half_life_days
    ).cache()
    positive = [t for t, w in weights.items() if w > 0]
    truth = ground_truth(split.test, strength, positive_types=positive).cache()
    users = truth.select(c.USER_KEY).distinct()
    history = strength.join(users, c.USER_KEY, "left_semi")
    return EvalSplit(split.train, strength, truth, users, history, cutoff, end)
