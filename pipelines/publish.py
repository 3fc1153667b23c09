"""Publish: the champion model's top-K per user and the popular list, to Redis, atomically.

    spark-submit pipelines/publish.py --ds 2011-12-09

Loads the model behind the registry alias (so a failed or rejected training leaves the last
good model serving), scores every user it knows with already-purchased items removed,
writes a new Redis version (``onlinestore.batch.BatchWriter``) with each user's purchased set
(``purchased_sets``: the API drops those items from every source) and switches it live with
one SET. Before anything is written it checks that the catalog can serve: a catalog mostly
unavailable, or a popular list with too few available items, means a broken import, and
publishing it would answer every visitor with an empty or short list; it raises
``NotServableError`` with the counts, so the last good publication keeps serving.

The publication's meta carries the blend weights the evaluation chose for the champion
version (its registry tag ``tracking.SERVED_WEIGHTS_TAG``; the ranker's defaults, recorded as
``weights_source: default``, when the version has none): the API ranks with them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import mlflow
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from features import columns as c
from features.tables import (
    BRONZE_EVENTS,
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CF_NEIGHBOURS,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_ITEM_CONTENT_TERMS,
    GOLD_ITEM_POPULARITY,
    GOLD_USER_ITEM_STRENGTH,
    GOLD_USER_PROFILE,
    LakeTable,
)
from features.transforms import pseudonymise_column
from models.als import Indexes, recommend
from models.topk import to_ranked_lists
from pipelines.common import job_parser, parse, run_step, session_and_settings
from recolake import tracking
from recolake.onlinestore import NEIGHBOUR_KINDS
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import PROFILE_FIELDS, index_width
from recolake.progress import Progress
from recolake.ranking import Weights
from recolake.settings import Settings

log = logging.getLogger("recolake.publish")

POPULAR_LIST_LENGTH = 200
#: The batches of writes a publication is made of, in order: the steps of the progress bar
#: publish draws on a terminal (recolake.progress; nothing in logs, Airflow or CI).
PUBLISH_BATCHES = (
    "item index",
    "user lists",
    "purchased sets",
    "catalog",
    "neighbours",
    "content terms",
    "profiles",
    "example users",
    "go live",
)


@dataclass(frozen=True)
class PublishResult:
    version: str
    model_version: str
    users: int
    popular: int
    replaced: str | None
    items: int = 0
    neighbours: dict[str, int] | None = None
    #: The blend weights written into the meta (None: the ranker's defaults).
    weights: Weights | None = None
    #: Users whose profile (gold.user_profile) was published.
    profiles: int = 0
    #: Raw ids of the most active users listed as examples (GET /v1/users).
    examples: int = 0

    def step_counts(self) -> str:
        """What the step's line says (standalone and in the nightly)."""
        return (
            f"users={self.users} items={self.items} popular={self.popular} version={self.version}"
        )


class NotServableError(RuntimeError):
    """The lake's catalog or popular list would make the API answer empty or short lists."""


@dataclass(frozen=True)
class Servability:
    """What the API's availability filter would leave of this publication."""

    catalog_items: int
    unavailable: int
    popular: int
    popular_available: int

    @property
    def unavailable_share(self) -> float:
        return self.unavailable / self.catalog_items if self.catalog_items else 0.0

    def problems(self, max_unavailable_share: float, min_popular_available: int) -> list[str]:
        found = []
        if self.unavailable_share > max_unavailable_share:
            found.append(
                f"{self.unavailable} of {self.catalog_items} catalog items are unavailable "
                f"({self.unavailable_share:.0%} > publish_max_unavailable_share "
                f"{max_unavailable_share:.0%})"
            )
        needed = min(min_popular_available, self.popular)
        if self.popular_available < needed:
            found.append(
                f"only {self.popular_available} of the {self.popular} popular items are "
                f"available (publish_min_popular_available {needed})"
            )
        return found


def servability(catalog: DataFrame, popular: DataFrame) -> Servability:
    """Counts over one catalog slice (item_id, available) and the popular list (item_id).
    A popular item absent from the catalog counts as available, as the API serves it."""
    unavailable = catalog.where(~F.coalesce(F.col(c.AVAILABLE), F.lit(True))).select(c.ITEM_ID)
    counts = (
        catalog.agg(
            F.count(F.lit(1)).alias("items"),
            F.count_if(~F.coalesce(F.col(c.AVAILABLE), F.lit(True))).alias("unavailable"),
        )
        .crossJoin(
            popular.join(unavailable.withColumn("u", F.lit(True)), c.ITEM_ID, "left").agg(
                F.count(F.lit(1)).alias("popular"),
                F.count_if(F.col("u").isNull()).alias("popular_available"),
            )
        )
        .first()
    )
    return Servability(
        int(counts["items"]),
        int(counts["unavailable"]),
        int(counts["popular"]),
        int(counts["popular_available"]),
    )


def check_servable(spark: SparkSession, settings: Settings, ds: date) -> Servability:
    """Raise NotServableError (with the counts) if the catalog of ``ds`` would filter out most
    answers, unless ``publish_allow_degraded``; then it only warns, loudly."""
    catalog = (
        GOLD_ITEM_CATALOG.read_or_empty(spark, settings)
        .where(F.col(c.DS) == F.lit(ds))
        .select(c.ITEM_ID, c.AVAILABLE)
    )
    popular = (
        GOLD_ITEM_POPULARITY.read(spark, settings)
        .where((F.col(c.DS) == F.lit(ds)) & (F.col(c.RANK) <= POPULAR_LIST_LENGTH))
        .select(c.ITEM_ID)
    )
    health = servability(catalog, popular)
    problems = health.problems(
        settings.publish_max_unavailable_share, settings.publish_min_popular_available
    )
    if problems:
        message = f"publish {ds}: not servable: " + "; ".join(problems)
        if not settings.publish_allow_degraded:
            raise NotServableError(message + " (nothing published; the live publication stays)")
        log.warning("%s (published anyway: publish_allow_degraded)", message)
    return health


def write_catalog(spark: SparkSession, settings: Settings, ds: date, writer: BatchWriter) -> int:
    """gold.item_catalog as of ``ds`` into the staged version: titles and categories for
    reasons and diversity, availability for the filter, prices for responses (``?fields=``,
    /v1/catalog, the page's cards). Written on the executors."""
    rows = (
        GOLD_ITEM_CATALOG.read_or_empty(spark, settings)
        .where(F.col(c.DS) == F.lit(ds))
        .select(c.ITEM_ID, c.TITLE, c.CATEGORY, c.AVAILABLE, c.PRICE)
    )

    def write_partition(part):  # runs on executors
        yield writer.write_catalog((r[0], r[1], r[2], r[3], r[4]) for r in part)

    written = sum(rows.rdd.mapPartitions(write_partition).collect())
    if not written:
        log.warning("gold.item_catalog has no rows for ds=%s: no titles/availability served", ds)
    return written


def write_neighbours(
    spark: SparkSession, settings: Settings, ds: date, writer: BatchWriter
) -> dict[str, int]:
    """Ranked neighbour lists of every kind present for ``ds`` into the staged version;
    returns items written per kind. A kind (or a whole table) not built for ``ds`` is skipped
    with a log line: the API then blends without it."""
    written: dict[str, int] = {}
    tables: tuple[LakeTable, ...] = (GOLD_ITEM_CF_NEIGHBOURS, GOLD_ITEM_CONTENT_NEIGHBOURS)
    for table in tables:
        if not table.exists(spark, settings):
            log.info("publish: %s does not exist, its neighbours are skipped", table.qualified_name)
            continue
        lists = (
            table.read(spark, settings)
            .where(F.col(c.DS) == F.lit(ds))
            .groupBy(c.KIND, c.ITEM_ID)
            .agg(F.array_sort(F.collect_list(F.struct(c.RANK, c.NEIGHBOUR_ID, c.SCORE))).alias("n"))
        )

        def write_partition(part):  # runs on executors
            counts: dict[str, int] = {}
            rows = []
            for r in part:
                counts[r[0]] = counts.get(r[0], 0) + 1
                rows.append((r[0], r[1], [(n[1], n[2]) for n in r[2]]))
            writer.write_neighbours(rows)
            yield counts

        for counts in lists.rdd.mapPartitions(write_partition).collect():
            for kind, n in counts.items():
                written[kind] = written.get(kind, 0) + n
    for kind in NEIGHBOUR_KINDS:
        if kind not in written:
            log.info("publish: no %s neighbours for ds=%s, kind skipped", kind, ds)
    return written


def write_content_terms(
    spark: SparkSession, settings: Settings, ds: date, writer: BatchWriter
) -> int:
    """The content model's terms for ``ds`` (gold.item_content_terms) into the staged
    version, so the API gives items PUT after it content neighbours; skipped (new items then
    wait for the nightly) when the content job has not written them."""
    if not GOLD_ITEM_CONTENT_TERMS.exists(spark, settings):
        log.info("publish: no gold.item_content_terms: new items get no live neighbours")
        return 0
    rows = GOLD_ITEM_CONTENT_TERMS.read(spark, settings).where(F.col(c.DS) == F.lit(ds))

    def write_partition(part):  # runs on executors
        yield writer.write_content_terms(
            (r[c.TERM], r[c.IDF], [(e[c.ITEM_ID], e[c.WEIGHT]) for e in r[c.ITEMS]]) for r in part
        )

    written = sum(rows.select(c.TERM, c.IDF, c.ITEMS).rdd.mapPartitions(write_partition).collect())
    log.info("publish: %d content terms for ds=%s", written, ds)
    return written


def purchased_sets(strength: DataFrame, items: DataFrame, max_items: int) -> DataFrame:
    """(user_key, positions): each user's purchased items (gold strength's ``purchased``) as
    positions in the publication's item index (``items``: item_id, item_idx), the most
    recently touched ``max_items`` first; items the index lacks are left out (the API's
    real-time purchases cover what came after the model)."""
    order = Window.partitionBy(c.USER_KEY).orderBy(F.desc(c.LAST_EVENT_TIME), c.ITEM_IDX)
    return (
        strength.where(F.col(c.PURCHASED))
        .join(items.select(c.ITEM_ID, c.ITEM_IDX), c.ITEM_ID)
        .withColumn("_n", F.row_number().over(order))
        .where(F.col("_n") <= max_items)
        .groupBy(c.USER_KEY)
        .agg(F.array_sort(F.collect_list(c.ITEM_IDX)).alias("positions"))
    )


def write_purchased(
    spark: SparkSession,
    settings: Settings,
    ds: date,
    model_ds: date,
    indexes: Indexes,
    writer: BatchWriter,
    width: int,
) -> int:
    """Every user's purchased set into the staged version (the API drops those items from
    every source unless a request says exclude_purchased=false): gold strength of ``ds``
    (``model_ds``'s when ``ds`` has none). Returns the users written."""
    if settings.purchased_max_items == 0:
        return 0
    gold = GOLD_USER_ITEM_STRENGTH.read(spark, settings)
    strength = gold.where(F.col(c.DS) == F.lit(ds))
    if strength.isEmpty():
        strength = gold.where(F.col(c.DS) == F.lit(model_ds))
    sets = purchased_sets(strength, indexes.items, settings.purchased_max_items)

    def write_partition(rows):  # runs on executors
        yield writer.write_user_purchased(((r[c.USER_KEY], r["positions"]) for r in rows), width)

    return sum(sets.rdd.mapPartitions(write_partition).collect())


#: Timestamps of a published profile: ISO-8601 in UTC (formatted by Spark in the session's
#: UTC time zone, never by Python in the executor's local one).
_ISO_UTC = "yyyy-MM-dd'T'HH:mm:ss'Z'"


def profile_rows(profiles: DataFrame) -> DataFrame:
    """gold.user_profile rows with the published profile's fields (codecs.PROFILE_FIELDS)
    in order, ds and times as text."""
    columns = []
    for name in PROFILE_FIELDS:
        if name == c.DS:
            column = F.date_format(c.DS, "yyyy-MM-dd")
        elif name in (c.LAST_EVENT_TIME, c.LAST_PURCHASE_TIME):
            column = F.date_format(name, _ISO_UTC)
        else:
            column = F.col(name)
        columns.append(column.alias(name))
    return profiles.select(c.USER_KEY, *columns)


def write_profiles(
    spark: SparkSession, settings: Settings, ds: date, model_ds: date, writer: BatchWriter
) -> int:
    """Every user's profile (gold.user_profile of ``ds``, ``model_ds``'s when ``ds`` has
    none) into the staged version, for GET /v1/users/{user_id}/profile; skipped with a log
    line when gold has built none. Returns the users written."""
    if not GOLD_USER_PROFILE.exists(spark, settings):
        log.info("publish: no gold.user_profile: no profiles published")
        return 0
    table = GOLD_USER_PROFILE.read(spark, settings)
    rows = table.where(F.col(c.DS) == F.lit(ds))
    if rows.isEmpty():
        rows = table.where(F.col(c.DS) == F.lit(model_ds))

    def write_partition(part):  # runs on executors
        yield writer.write_user_profiles(
            (
                r[c.USER_KEY],
                {
                    name: (
                        [(e[0], e[1]) for e in r[name]]  # struct<name, share>
                        if name in (c.TOP_CATEGORIES, c.TOP_BRANDS)
                        else r[name]
                    )
                    for name in PROFILE_FIELDS
                },
            )
            for r in part
        )

    return sum(profile_rows(rows).rdd.mapPartitions(write_partition).collect())


def example_users(
    bronze: DataFrame, activity: DataFrame, key: bytes, n: int, *, col_activity: str = "activity"
) -> DataFrame:
    """(user_key, user_id) of the ``n`` users of ``activity`` (user_key, ``col_activity``)
    with the most activity whose raw id ``bronze`` events hold, most active first (ties by
    id). The raw id is matched by pseudonymising it as silver does (trimmed, HMAC), so no
    table past bronze needs to hold one."""
    raw = (
        bronze.where(F.col(c.USER_ID).isNotNull() & (F.trim(c.USER_ID) != ""))
        .select(F.trim(c.USER_ID).alias(c.USER_ID))
        .distinct()
        .withColumn(c.USER_KEY, pseudonymise_column(F.col(c.USER_ID), key))
    )
    return (
        activity.join(raw, c.USER_KEY)
        .orderBy(F.desc(col_activity), c.USER_ID)
        .limit(n)
        .select(c.USER_KEY, c.USER_ID)
    )


def write_example_users(
    spark: SparkSession,
    settings: Settings,
    ds: date,
    users: DataFrame,
    strength: DataFrame,
    writer: BatchWriter,
) -> int:
    """The raw ids of the ``publish_example_users`` most active published users (``users``:
    user_key; activity: items in ``strength``), from bronze events ingested on ``ds``, into
    the staged version: the page's "pick a known user" (GET /v1/users). Users erased before
    this nightly are not in gold, so never picked; later erasures delete their entry."""
    n = settings.publish_example_users
    if n == 0 or not BRONZE_EVENTS.exists(spark, settings):
        log.info("publish: no example users (publish_example_users=%d or no bronze.events)", n)
        return 0
    bronze = BRONZE_EVENTS.read(spark, settings).where(F.col(c.INGEST_DS) == F.lit(ds))
    activity = (
        strength.groupBy(c.USER_KEY)
        .agg(F.count(F.lit(1)).alias("activity"))
        .join(users.select(c.USER_KEY), c.USER_KEY, "left_semi")
    )
    rows = example_users(bronze, activity, settings.require_pseudonymisation_key(), n).collect()
    return writer.write_example_users((r[c.USER_KEY], r[c.USER_ID]) for r in rows)


def served_weights(model_version) -> Weights | None:
    """The blend weights chosen for a registry model version (its SERVED_WEIGHTS_TAG), or
    None when it has none (then the publication serves the defaults and says so). A tag that
    does not parse stops the publish: serving a silently different blend is worse."""
    payload = (model_version.tags or {}).get(tracking.SERVED_WEIGHTS_TAG)
    if not payload:
        log.warning(
            "publish: model version %s has no %s tag: serving the default blend weights",
            model_version.version,
            tracking.SERVED_WEIGHTS_TAG,
        )
        return None
    try:
        return Weights.from_json(payload)
    except ValueError as exc:
        raise ValueError(
            f"model version {model_version.version}: tag {tracking.SERVED_WEIGHTS_TAG} is not "
            f"valid blend weights ({exc}): nothing published"
        ) from exc


def personal_weights_of(version) -> dict[str, float]:
    """How the champion's evaluation chose to fuse the models into the per-user list
    (``tracking.PERSONAL_WEIGHTS_TAG``); ALS alone for a version without the tag."""
    payload = (version.tags or {}).get(tracking.PERSONAL_WEIGHTS_TAG)
    weights = json.loads(payload) if payload else {"als": 1.0}
    if not isinstance(weights, dict) or not any(float(w) > 0 for w in weights.values()):
        raise ValueError(f"malformed {tracking.PERSONAL_WEIGHTS_TAG} tag: {payload!r}")
    return {str(m): float(w) for m, w in weights.items()}


def personal_lists(
    spark: SparkSession,
    settings: Settings,
    model_ds: date,
    *,
    als: DataFrame,
    strength: DataFrame,
    weights: dict[str, float],
) -> DataFrame:
    """Every user's published list: the rank fusion (models.hybrid.fuse, depth
    ``eval_depth``) of the models the evaluation weighted, exactly as pipelines/evaluate.py
    fuses them for the served blend it measures: ALS, item-CF (neighbours of the user's
    history, gold.item_cf_neighbours), content (gold.item_content_neighbours) and user-CF
    (models.user_cf on this strength, the caps bounding it), history items excluded. Cost:
    users x history x neighbours, never users x items (nor users x users)."""
    from models.hybrid import fuse
    from models.item_cf import merge_kinds, score_from_neighbours

    depth = settings.eval_depth
    used = {m: w for m, w in weights.items() if w > 0}
    if set(used) == {"als"}:
        return als.where(F.col(c.RANK) <= settings.top_k)
    lists: dict[str, DataFrame] = {"als": als}
    history = strength.select(c.USER_KEY, c.ITEM_ID, c.STRENGTH)
    sources = {"item_cf": GOLD_ITEM_CF_NEIGHBOURS, "content": GOLD_ITEM_CONTENT_NEIGHBOURS}
    for name, table in sources.items():
        if name not in used or not table.exists(spark, settings):
            continue
        rows = table.read(spark, settings).where(F.col(c.DS) == F.lit(model_ds))
        kinds = {k: rows.where(F.col(c.KIND) == k) for k in ("co_view", "bought_together")}
        neighbours = merge_kinds(kinds) if name == "item_cf" else rows
        lists[name] = score_from_neighbours(history, neighbours, depth)
    if "user_cf" in used:
        from models.user_cf import user_cf_lists

        lists["user_cf"] = user_cf_lists(
            history,
            depth,
            top_n=settings.user_cf_neighbours,
            max_items_per_user=settings.cf_max_items_per_group,
            max_users_per_item=settings.user_cf_max_users_per_item,
        )
    unknown = set(used) - set(lists)
    if unknown:
        log.warning("publish: no lists for %s: fused without them", sorted(unknown))
    return fuse(lists, {m: w for m, w in used.items() if m in lists}, settings.top_k, depth)


def run(spark: SparkSession, settings: Settings, ds: date) -> PublishResult:
    health = check_servable(spark, settings, ds)  # before anything is loaded or written
    client = tracking.configure(settings)
    champion = client.get_model_version_by_alias(
        settings.registered_model_name, settings.champion_alias
    )
    model_ds = date.fromisoformat(client.get_run(champion.run_id).data.tags["ds"])
    weights = served_weights(champion)  # before anything is written: a bad tag stops here
    als_model = mlflow.spark.load_model(tracking.champion_uri(settings)).stages[-1]

    indexes = Indexes.read(spark, settings, model_ds)
    strength = GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(model_ds))
    purchased = strength.where(F.col(c.PURCHASED))
    recs = personal_lists(
        spark,
        settings,
        model_ds,
        als=recommend(
            als_model, indexes, indexes.users, purchased, max(settings.top_k, settings.eval_depth)
        ),
        strength=strength,
        weights=personal_weights_of(champion),
    )
    # Compact lists (codec 2): positions in the publication's item index, which is the
    # model's own dense item index (item_idx 0..n-1), so nothing else needs numbering.
    positioned = recs.join(indexes.items, c.ITEM_ID)
    lists = to_ranked_lists(positioned, col_user=c.USER_KEY, col_item=c.ITEM_IDX)

    popular_rows = (
        GOLD_ITEM_POPULARITY.read(spark, settings)
        .where((F.col(c.DS) == F.lit(ds)) & (F.col(c.RANK) <= POPULAR_LIST_LENGTH))
        .orderBy(c.RANK)
        .select(c.ITEM_ID, c.N_USERS)
        .collect()
    )
    if not popular_rows:
        raise NotServableError(
            f"gold.item_popularity has no rows for ds={ds}: nothing to fall back on"
        )
    popular = [(r[c.ITEM_ID], float(r[c.N_USERS])) for r in popular_rows]

    version = f"{ds.isoformat()}.m{champion.version}.{uuid.uuid4().hex[:8]}"
    writer = BatchWriter.from_settings(settings, version)
    with Progress(f"publish {ds}", total=len(PUBLISH_BATCHES)) as bar:  # on a terminal

        def written(count: object) -> None:
            """The next batch of PUBLISH_BATCHES is written (``count`` of it): the bar says
            so, and which one is being written now."""
            done, rest = PUBLISH_BATCHES[bar.done], PUBLISH_BATCHES[bar.done + 1 :]
            bar.advance(note=f"{done}: {count}" + (f"; writing {rest[0]}" if rest else ""))

        index_ids = [
            r[c.ITEM_ID]
            for r in indexes.items.orderBy(c.ITEM_IDX)
            .select(c.ITEM_ID, c.ITEM_IDX)
            .toLocalIterator()
        ]
        index_blocks = writer.write_item_index(index_ids)
        width = index_width(len(index_ids))
        written(len(index_ids))

        def write_partition(rows):  # runs on executors
            yield writer.write_user_positions(
                (
                    (
                        r[c.USER_KEY],
                        [i[c.ITEM_IDX] for i in r["items"]],
                        [i[c.SCORE] for i in r["items"]],
                    )
                    for r in rows
                ),
                width,
            )

        users = sum(lists.rdd.mapPartitions(write_partition).collect())
        written(users)
        buyers = write_purchased(spark, settings, ds, model_ds, indexes, writer, width)
        written(buyers)
        items = write_catalog(spark, settings, ds, writer)
        written(items)
        neighbours = write_neighbours(spark, settings, model_ds, writer)
        written(sum(neighbours.values()))
        terms = write_content_terms(spark, settings, model_ds, writer)
        written(terms)
        profiles = write_profiles(spark, settings, ds, model_ds, writer)
        written(profiles)
        examples = write_example_users(spark, settings, ds, indexes.users, strength, writer)
        written(examples)
        replaced = writer.go_live(
            popular=popular,
            meta={
                "model_version": str(champion.version),
                "ds": ds.isoformat(),
                "users": str(users),
                "purchased_users": str(buyers),
                "profiles": str(profiles),
                "example_users": str(examples),
                "items": str(items),
                "unavailable": str(health.unavailable),
                "popular_available": str(health.popular_available),
                **{f"neighbours_{kind}": str(n) for kind, n in neighbours.items()},
            },
            grace_seconds=settings.publish_grace_seconds,
            index_blocks=index_blocks,
            index_width=width,
            weights=weights,
        )
        written(f"live, replaced {replaced}")
    result = PublishResult(
        version,
        str(champion.version),
        users,
        len(popular),
        replaced,
        items,
        neighbours,
        weights,
        profiles,
        examples,
    )
    log.info("publish %s: %s", ds, result)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> PublishResult:
    args = parse(job_parser(__doc__.splitlines()[0]), argv)
    spark, settings = session_and_settings("recolake-publish", spark, settings)
    return run_step(
        "publish",
        args.ds,
        lambda: run(spark, settings, args.ds),
        lambda r: (
            f"{r.step_counts()} model=v{r.model_version} neighbours={r.neighbours or {}} "
            f"weights={r.weights.as_dict() if r.weights else 'default'}"
        ),
        spark,
    )


if __name__ == "__main__":
    main()
