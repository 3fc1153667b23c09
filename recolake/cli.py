"""The `recolake` command: every Spark job by name, plus the API server.

    recolake nightly                       # whole batch on the bundled sample
    recolake ingest --ds 2024-05-01 --events events.csv --items items.csv
    recolake serve --port 8000
    recolake republish                     # after Redis lost its data: publish the last ds again

Each job subcommand takes exactly the arguments of `spark-submit pipelines/<job>.py`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

JOBS = {
    "ingest": "land raw events/catalog in bronze",
    "silver": "validate, deduplicate, pseudonymise",
    "gold": "build feature tables as of --ds",
    "item_cf": "item-item neighbours from co-occurrence (co_view, bought_together)",
    "content": "TF-IDF content neighbours from the catalog",
    "train": "tune ALS on validation, fit, register the candidate in MLflow",
    "evaluate": "every model on one time split: --output JSON, MLflow, HTML report",
    "promote": "promotion gate: candidate -> champion only if not worse",
    "publish": "publish the champion's recommendations to Redis",
    "nightly": "ingest -> silver -> gold -> item_cf, content, train -> evaluate -> promote "
    "-> publish",
    "streaming": "events log -> bronze + real-time features in Redis (runs until stopped)",
    "forget": "erase users everywhere (--user ID, or --pending: the API's DELETE requests)",
    "retention": "delete bronze rows older than bronze_retention_days before --ds, VACUUM",
    "experiments": "credit events to the impressions that showed them; per-variant rates, "
    "intervals and tests against control (gold, MLflow, HTML)",
}


def serve(argv: Sequence[str]) -> None:
    import uvicorn

    from recolake.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="recolake serve", description="Run the HTTP API.")
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    from online.metrics_dir import prepare_multiprocess

    prepare_multiprocess(args.workers)  # /metrics sums every worker's (PROMETHEUS_MULTIPROC_DIR)
    uvicorn.run(
        "online.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
    )


def latest_built_ds(spark, settings):
    """The newest ``ds`` of gold.item_popularity: the last date the nightly built, which is
    the partition publish reads (None when the table is missing or empty)."""
    from pyspark.sql import functions as F

    from features import columns as c
    from features.tables import GOLD_ITEM_POPULARITY

    if not GOLD_ITEM_POPULARITY.exists(spark, settings):
        return None
    return GOLD_ITEM_POPULARITY.read(spark, settings).agg(F.max(c.DS)).first()[0]


def republish(argv: Sequence[str]) -> None:
    """Publish again, e.g. after Redis restarted without persistence (the API then answers
    503 "nothing published" and /healthz 503 until a publication is live): the champion
    model with the lake's last built date, unless ``--ds`` names another."""
    from pipelines import publish
    from pipelines.common import parse, parse_ds, session_and_settings

    parser = argparse.ArgumentParser(
        prog="recolake republish",
        description="Publish the champion again (default: the last date the nightly built).",
    )
    parser.add_argument("--ds", type=parse_ds, default=None, help="YYYY-MM-DD (default: latest)")
    args = parse(parser, argv)
    spark, settings = session_and_settings("recolake-republish", None, None)
    ds = args.ds or latest_built_ds(spark, settings)
    if ds is None:
        raise SystemExit("republish: gold.item_popularity is empty: run `recolake nightly` first")
    print(f"republish: ds {ds.isoformat()}", flush=True)
    publish.main(["--ds", ds.isoformat()], spark=spark, settings=settings)


def rules(argv: Sequence[str]) -> None:
    """Store a rules file in Redis as the next version (what PUT /v1/rules does), or show the
    current one: every API process serves it within a second."""
    import json

    from recolake.onlinestore import KeyLayout, connect
    from recolake.onlinestore import rules as stored
    from recolake.rules import RulesError, load
    from recolake.settings import get_settings

    parser = argparse.ArgumentParser(prog="recolake rules", description=rules.__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--load", metavar="FILE", help="JSON or TOML rules file to store")
    group.add_argument("--show", action="store_true", help="print the current rules")
    parser.add_argument("--author", default=None, help="who (default: the file's path)")
    args = parser.parse_args(argv)
    settings = get_settings()
    layout = KeyLayout(settings.redis_namespace)
    client = connect(settings.redis_url)
    try:
        if args.show:
            print(json.dumps(stored.current_sync(client, layout).as_dict(), indent=2))
            return
        try:
            parsed, author = load(args.load)
        except RulesError as exc:
            raise SystemExit(f"rules: {exc}") from exc
        who = args.author or author or f"file:{args.load}"
        version = stored.put_sync(client, layout, parsed, who, settings.rules_history)
        print(f"rules: {len(parsed)} rules stored as version {version} by {who}", flush=True)
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        **JOBS,
        "serve": "run the HTTP API",
        "republish": "publish again (after a Redis restart): the last built ds, or --ds",
        "rules": "store a merchandising rules file in Redis (--load FILE) or print it (--show)",
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        width = max(map(len, commands))
        lines = "\n".join(f"  {name:<{width}}  {text}" for name, text in commands.items())
        print(f"usage: recolake COMMAND [ARGS]\n\ncommands:\n{lines}")
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command, rest = argv[0], argv[1:]
    if command == "serve":
        serve(rest)
        return
    if command == "republish":
        republish(rest)
        return
    if command == "rules":
        rules(rest)
        return
    importlib.import_module(f"pipelines.{command}").main(rest)


if __name__ == "__main__":
    main()
