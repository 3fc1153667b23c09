"""What every job entry point shares: the --ds argument, settings, the session."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import date

from pyspark.sql import SparkSession

from recolake import logs
from recolake.settings import Settings, get_settings
from recolake.spark import build_session

log = logging.getLogger("recolake")


def parse_ds(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--ds must be YYYY-MM-DD, got {value!r}") from exc


def job_parser(description: str, ds_default: date | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--ds",
        type=parse_ds,
        required=ds_default is None,
        default=ds_default,
        help="logical date, YYYY-MM-DD",
    )
    return parser


def session_and_settings(
    app_name: str, spark: SparkSession | None, settings: Settings | None
) -> tuple[SparkSession, Settings]:
    settings = settings or get_settings()
    return spark or build_session(settings, app_name), settings


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The job's arguments plus ``--verbose``, which every job takes; logging set from it
    (quiet by default: one printed line per step; verbose: INFO logs, Spark's warnings)."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log every detail (recolake and library INFO lines, all of Spark's warnings)",
    )
    args = parser.parse_args(argv)
    logs.configure(args.verbose)
    return args
