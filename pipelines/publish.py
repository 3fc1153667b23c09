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
from features.tables import GOLD_ITEM_POPULARITY, GOLD_USER_ITEM_STRENGTH
from models.als import Indexes, recommend
from models.topk import to_ranked_lists
from pipelines.common import job_parser, parse, session_and_settings
from recolake import publication, tracking
from recolake.redis_layout import RedisLayout
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
    replaced = publication.go_live(
        publication.connect(url),
        layout=layout,
        version=version,
        buckets=buckets,
        popular=popular,
        meta={"model_version": str(champion.version), "ds": ds.isoformat(), "users": str(users)},
        grace_seconds=settings.publish_grace_seconds,
    )
    result = PublishResult(version, str(champion.version), users, len(popular), replaced)
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
        f"{result.users} users, {result.popular} popular items)",
        flush=True,
    )
    return result


if __name__ == "__main__":
    main()
