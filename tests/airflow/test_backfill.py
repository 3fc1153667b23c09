"""What makes an Airflow backfill safe: a job rerun for one date replaces that date only."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from features.tables import BRONZE_EVENTS
from pipelines import ingest
from tests.airflow.conftest import SAMPLE

pytestmark = pytest.mark.spark


def head(path, lines: int):
    with gzip.open(SAMPLE, "rt") as src, open(path, "w") as dst:
        for _ in range(lines + 1):
            dst.write(src.readline())
    return path


def test_rerunning_a_past_date_leaves_other_dates_alone(spark, settings, tmp_path):
    old, new = date(2011, 12, 8), date(2011, 12, 9)
    small, large = head(tmp_path / "a.csv", 40), head(tmp_path / "b.csv", 90)
    ingest.run(spark, settings, old, str(small), None, "online_retail")
    ingest.run(spark, settings, new, str(large), None, "online_retail")

    def per_date() -> dict[date, int]:
        rows = BRONZE_EVENTS.read(spark, settings).groupBy("ingest_ds").count().collect()
        return {r["ingest_ds"]: r["count"] for r in rows}

    assert per_date() == {old: 40, new: 90}
    # Backfill the past date, twice, from a corrected (larger) file: replaced, not appended.
    for _ in range(2):
        ingest.run(spark, settings, old, str(large), None, "online_retail")
    assert per_date() == {old: 90, new: 90}
