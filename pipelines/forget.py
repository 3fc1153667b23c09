"""Forget: erase users everywhere the platform keeps them (the right to erasure).

    recolake forget --user ID [--user ID ...]   # an operator, by raw id
    recolake forget --pending                   # the API's DELETE /v1/users/{id} requests

For each user, in this order (a crash part-way is finished by running it again):

1. the erasure ledger (silver.erased_users: pseudonymised key and time) gets the user
   first, so every later job drops their events at or before that time: a backfill or a
   re-run of an old date cannot resurrect them (ingest and silver apply the ledger);
2. a Delta DELETE of the user's rows in every declared table that holds a user column
   (``user_key``, or the raw ``user_id`` of bronze, matched by its pseudonym): bronze,
   silver, quarantine, gold, the ALS id maps, impressions; deletion vectors are purged, then
   VACUUM with ``erasure_vacuum_retention_hours``, after which time travel cannot read the
   rows back;
3. landing files of the event log not yet pruned: rewritten without the user's lines;
4. Redis: the user's real-time documents and their list in every publication still there
   (``recolake.onlinestore.erasure``); the published model's user factor stays in the model
   artefact without an id mapping until the next nightly retrains without the user.

What cannot be erased in place (a Kafka topic, MLflow artefacts of old runs, the shop's own
export files) is listed with the operator's procedure in the README ("Erasing a user").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from features import columns as c
from features.erasure import erased_rows
from features.tables import ALL_TABLES, ERASURE_LEDGER, LakeTable
from pipelines.common import parse, parse_ds, session_and_settings
from recolake.erasure import ErasureRequests
from recolake.onlinestore import KeyLayout, RedisTimeouts, connect
from recolake.onlinestore.erasure import forget_user
from recolake.privacy import pseudonymise
from recolake.settings import Settings, get_settings

log = logging.getLogger("recolake.forget")

#: Delta refuses a VACUUM retention below this unless its safety check is switched off.
DELTA_MIN_RETENTION_HOURS = 168.0


@dataclass(frozen=True)
class ForgetResult:
    users: int
    deleted_rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    vacuumed: list[str] = field(default_factory=list)
    landing_lines_removed: int = 0
    landing_files_rewritten: int = 0
    redis: dict[str, int] = field(default_factory=dict)

    def report(self) -> str:
        tables = ", ".join(f"{t}={n}" for t, n in sorted(self.deleted_rows.items()) if n)
        return (
            f"users={self.users} rows deleted: {tables or 'none'}; vacuumed "
            f"{len(self.vacuumed)} tables; landing: {self.landing_lines_removed} lines in "
            f"{self.landing_files_rewritten} files; redis: {self.redis}"
        )


def user_tables() -> list[LakeTable]:
    """Every declared table that can hold a user (the ledger keeps only pseudonyms, by
    design: it is what keeps them out)."""
    return [
        t
        for t in ALL_TABLES
        if t is not ERASURE_LEDGER and {c.USER_KEY, c.USER_ID} & set(t.schema.fieldNames())
    ]


def record_in_ledger(
    spark: SparkSession, settings: Settings, keys: Sequence[str], source: str, now: datetime
) -> None:
    rows = [(k, now.replace(tzinfo=None), source) for k in keys]
    frame = spark.createDataFrame(rows, ERASURE_LEDGER.schema)
    ERASURE_LEDGER.upsert(spark, frame, settings)


def delete_from_tables(
    spark: SparkSession, settings: Settings, keys: Sequence[str], key: bytes
) -> tuple[dict[str, int], list[str]]:
    """Delta DELETE of the users' rows, deletion vectors purged, VACUUM; returns rows
    deleted per table and the tables vacuumed."""
    retention = settings.erasure_vacuum_retention_hours
    if retention < DELTA_MIN_RETENTION_HOURS:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    deleted: dict[str, int] = {}
    vacuumed: list[str] = []
    for table in user_tables():
        if not table.exists(spark, settings):
            continue
        condition = erased_rows(table.schema, keys, key)
        path = table.path(settings)
        delta = DeltaTable.forPath(spark, path)
        before = delta.history(1).select("version").first()[0]
        delta.delete(condition)
        last = delta.history(1).select("version", "operationMetrics").first()
        n = 0
        if last["version"] != before:
            n = int((last["operationMetrics"] or {}).get("numDeletedRows", "0") or 0)
        deleted[table.qualified_name] = n
        if n:
            properties = delta.detail().select("properties").first()[0] or {}
            if properties.get("delta.enableDeletionVectors", "false") == "true":
                spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
        delta.vacuum(retention)
        vacuumed.append(table.qualified_name)
    return deleted, vacuumed


def scrub_landing(directory: str | Path, keys: set[str], key: bytes) -> tuple[int, int]:
    """Rewrite every landed event-log file without the lines of the users (atomically:
    temp file, fsync, rename, so the streaming job never reads half a file). Returns (lines
    removed, files rewritten)."""
    root = Path(directory)
    if not root.is_dir():
        return 0, 0
    removed = rewritten = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith((".", "_")):
            continue
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(True)
        kept = [line for line in lines if not _is_users_line(line, keys, key)]
        if len(kept) == len(lines):
            continue
        tmp = path.with_name(f".{path.name}.forget.tmp")
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.writelines(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        removed += len(lines) - len(kept)
        rewritten += 1
    return removed, rewritten


def _is_users_line(line: str, keys: set[str], key: bytes) -> bool:
    try:
        doc = json.loads(line)
    except ValueError:
        return False
    user = doc.get("user_id") if isinstance(doc, dict) else None
    return isinstance(user, str) and pseudonymise(user, key) in keys


def run(
    spark: SparkSession,
    settings: Settings,
    user_keys: Sequence[str],
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> ForgetResult:
    """Erase the users named by pseudonymised key (see the module docstring for where)."""
    keys = sorted(set(user_keys))
    if not keys:
        return ForgetResult(users=0)
    secret = settings.require_pseudonymisation_key()
    now = now or datetime.now(UTC)
    record_in_ledger(spark, settings, keys, source, now)
    deleted, vacuumed = delete_from_tables(spark, settings, keys, secret)
    removed, rewritten = (0, 0)
    if settings.event_log == "local":
        removed, rewritten = scrub_landing(settings.landing_dir, set(keys), secret)
    client = connect(settings.redis_url, RedisTimeouts.for_jobs(settings))
    layout = KeyLayout(settings.redis_namespace)
    totals: dict[str, int] = {}
    try:
        for k in keys:
            for name, n in forget_user(client, layout, k).as_dict().items():
                totals[name] = totals.get(name, 0) + n
    finally:
        client.close()
    result = ForgetResult(len(keys), deleted, vacuumed, removed, rewritten, totals)
    log.info("forget: %s", result.report())
    return result


def run_pending(spark: SparkSession, settings: Settings) -> ForgetResult:
    """Process the API's erasure requests (then remove them); nothing pending: no work."""
    requests = ErasureRequests(settings.erasure_requests_dir)
    pending = requests.pending()
    if not pending:
        return ForgetResult(users=0)
    result = run(
        spark,
        settings,
        [r.user_key for r in pending],
        source="api",
        now=max(r.requested_at for r in pending),
    )
    for request in pending:
        requests.done(request)
    return result


def main(
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> ForgetResult:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", action="append", help="raw user id to erase (repeatable)")
    who.add_argument("--pending", action="store_true", help="the API's erasure requests")
    parser.add_argument("--ds", type=parse_ds, help="the run's logical date (Airflow passes it)")
    args = parse(parser, argv)
    if (
        args.pending
        and not ErasureRequests((settings or get_settings()).erasure_requests_dir).pending()
    ):
        print("forget: no pending erasure requests", flush=True)  # no Spark session needed
        return ForgetResult(users=0)
    spark, settings = session_and_settings("recolake-forget", spark, settings)
    if args.pending:
        result = run_pending(spark, settings)
    else:
        secret = settings.require_pseudonymisation_key()
        result = run(spark, settings, [pseudonymise(u, secret) for u in args.user])
    print(f"forget: {result.report()}", flush=True)
    return result


if __name__ == "__main__":
    main()
