"""Publish: the champion model's top-K per user and the popular list, to Redis, atomically.

    spark-submit pipelines/publish.py --ds 2011-12-09

Loads the model behind the registry alias (so a failed or rejected training leaves the last
good model serving), scores every user it knows with already-purchased items removed,
writes a new Redis version and switches it live with one SET.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from features import columns as c
from features.tables import (
    GOLD_ITEM_CATALOG,
    GOLD_ITEM_CF_NEIGHBOURS,
    GOLD_ITEM_CONTENT_NEIGHBOURS,
    GOLD_ITEM_POPULARITY,
    GOLD_USER_ITEM_STRENGTH,
    LakeTable,
)
from models.als import Indexes, recommend
from models.topk import to_ranked_lists
from pipelines.common import job_parser, parse, session_and_settings
from recolake import publication, tracking
from recolake.redis_layout import NEIGHBOUR_KINDS, RedisLayout
from recolake.settings import Settings

log = logging.getLogger("recolake.publish")

POPULAR_LIST_LENGTH = 200


@dataclass(frozen=True)
class PublishResult:
    version: str
    model_version: str
    users: int
    popular: int
    replaced: str | None
    items: int = 0
    neighbours: dict[str, int] | None = None


def write_catalog(
    spark: SparkSession, settings: Settings, ds: date, layout: RedisLayout, version: str
) -> int:
    """gold.item_catalog as of ``ds`` into items(version, bucket): titles and categories for
    reasons and diversity, availability for the filter. Written on the executors."""
    rows = (
        GOLD_ITEM_CATALOG.read_or_empty(spark, settings)
        .where(F.col(c.DS) == F.lit(ds))
        .select(c.ITEM_ID, c.TITLE, c.CATEGORY, c.AVAILABLE)
    )
    url, buckets = settings.redis_url, settings.redis_buckets

    def write_partition(part):  # runs on executors
        payload = ((r[0], r[1], r[2], r[3]) for r in part)
        yield publication.write_catalog(
            payload, url=url, layout=layout, version=version, buckets=buckets
        )

    written = sum(rows.rdd.mapPartitions(write_partition).collect())
    if not written:
        log.warning("gold.item_catalog has no rows for ds=%s: no titles/availability served", ds)
    return written


def write_neighbours(
    spark: SparkSession, settings: Settings, ds: date, layout: RedisLayout, version: str
) -> dict[str, int]:
    """Ranked neighbour lists of every kind present for ``ds`` into
    neighbours(version, kind, bucket); returns items written per kind. A kind (or a whole
    table) not built for ``ds`` is skipped with a log line: the API then blends without it."""
    url, buckets = settings.redis_url, settings.redis_buckets
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
            publication.write_neighbours(
                rows, url=url, layout=layout, version=version, buckets=buckets
            )
            yield counts

        for counts in lists.rdd.mapPartitions(write_partition).collect():
            for kind, n in counts.items():
                written[kind] = written.get(kind, 0) + n
    for kind in NEIGHBOUR_KINDS:
        if kind not in written:
            log.info("publish: no %s neighbours for ds=%s, kind skipped", kind, ds)
    return written


def run(spark: SparkSession, settings: Settings, ds: date) -> PublishResult:
    client = tracking.configure(settings)
    champion = client.get_model_version_by_alias(
        settings.registered_model_name, settings.champion_alias
    )
    model_ds = date.fromisoformat(client.get_run(champion.run_id).data.tags["ds"])
    als_model = mlflow.spark.load_model(tracking.champion_uri(settings)).stages[-1]

    indexes = Indexes.read(spark, settings, model_ds)
    strength = GOLD_USER_ITEM_STRENGTH.read(spark, settings).where(F.col(c.DS) == F.lit(model_ds))
    purchased = strength.where(F.col(c.PURCHASED))
    recs = recommend(als_model, indexes, indexes.users, purchased, settings.top_k)
    lists = to_ranked_lists(recs, col_user=c.USER_KEY, col_item=c.ITEM_ID)

    popular_rows = (
        GOLD_ITEM_POPULARITY.read(spark, settings)
        .where((F.col(c.DS) == F.lit(ds)) & (F.col(c.RANK) <= POPULAR_LIST_LENGTH))
        .orderBy(c.RANK)
        .select(c.ITEM_ID, c.N_USERS)
        .collect()
    )
    if not popular_rows:
        raise RuntimeError(f"gold.item_popularity has no rows for ds={ds}: nothing to fall back on")
    popular = [(r[c.ITEM_ID], float(r[c.N_USERS])) for r in popular_rows]

    layout = RedisLayout(settings.redis_namespace)
    version = f"{ds.isoformat()}.m{champion.version}.{uuid.uuid4().hex[:8]}"
    buckets, url = settings.redis_buckets, settings.redis_url

    def write_partition(rows):  # runs on executors
        payload = ((r[c.USER_KEY], [(i[c.ITEM_ID], i[c.SCORE]) for i in r["items"]]) for r in rows)
        yield publication.write_user_lists(
            payload, url=url, layout=layout, version=version, buckets=buckets
        )

    users = sum(lists.rdd.mapPartitions(write_partition).collect())
    items = write_catalog(spark, settings, ds, layout, version)
    neighbours = write_neighbours(spark, settings, model_ds, layout, version)
    replaced = publication.go_live(
        publication.connect(url),
        layout=layout,
        version=version,
        buckets=buckets,
        popular=popular,
        meta={
            "model_version": str(champion.version),
            "ds": ds.isoformat(),
            "users": str(users),
            "items": str(items),
            **{f"neighbours_{kind}": str(n) for kind, n in neighbours.items()},
        },
        grace_seconds=settings.publish_grace_seconds,
    )
    result = PublishResult(
        version, str(champion.version), users, len(popular), replaced, items, neighbours
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
    result = run(spark, settings, args.ds)
    print(
        f"publish {args.ds}: version {result.version} live (model v{result.model_version}, "
        f"{result.users} users, {result.popular} popular items, {result.items} catalog items, "
        f"neighbours {result.neighbours or {}})",
        flush=True,
    )
    return result


if __name__ == "__main__":
    main()
