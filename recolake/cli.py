"""The `recolake` command: every Spark job by name, plus the API server.

    recolake nightly                       # whole batch on the bundled sample
    recolake ingest --ds 2024-05-01 --events events.csv --items items.csv
    recolake serve --port 8000

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


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {**JOBS, "serve": "run the HTTP API"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        width = max(map(len, commands))
        lines = "\n".join(f"  {name:<{width}}  {text}" for name, text in commands.items())
        print(f"usage: recolake COMMAND [ARGS]\n\ncommands:\n{lines}")
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command, rest = argv[0], argv[1:]
    if command == "serve":
        serve(rest)
        return
    importlib.import_module(f"pipelines.{command}").main(rest)


if __name__ == "__main__":
    main()
