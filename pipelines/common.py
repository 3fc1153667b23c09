"""What every job entry point shares: the --ds argument, settings, the session, and the one
line a standalone job prints per step (``run_step``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import TypeVar

from pyspark.sql import SparkSession

from recolake import logs
from recolake.settings import Settings, get_settings
from recolake.spark import build_session
from recolake.timing import StepTimer

log = logging.getLogger("recolake")

T = TypeVar("T")


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


def run_step(
    name: str,
    ds: date,
    work: Callable[[], T],
    counts: Callable[[T], str],
    spark: SparkSession | None = None,
) -> T:
    """Run a standalone job (``recolake <job>``) as one timed step and print its line when it
    ends, quiet or verbose, as the nightly prints one per step (recolake.timing.StepTimer:
    ``<name> <ds>``, seconds, Spark jobs with a session, ``counts(result)``): a job run on
    its own tells what it did and how long it took, not only the nightly."""
    timer = StepTimer(spark, echo=True)
    with timer.step(f"{name} {ds.isoformat()}") as step:
        result = work()
        step.counts = counts(result)
    return result
