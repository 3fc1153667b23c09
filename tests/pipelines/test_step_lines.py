"""Every job run on its own (`recolake <job>`) prints one line when it ends: its name and ds,
seconds, Spark jobs and what it produced, as the nightly prints one per step. The jobs' work
is replaced by a canned result (their transforms are tested elsewhere), so this costs
milliseconds on the suite's one Spark session."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from models.als import ALSParams
from pipelines import (
    content,
    experiments,
    gold,
    ingest,
    item_cf,
    promote,
    publish,
    retention,
    silver,
    train,
)
from pipelines.common import run_step
from tests.conftest import make_settings

DS = date(2024, 5, 1)
PARAMS = ALSParams(rank=8, max_iter=5, reg_param=0.1, alpha=1.0, seed=7)

#: job -> (canned result of its run(), what its line must say)
JOBS = {
    ingest: (ingest.IngestResult(events=120, items=30), "events=120 items=30"),
    silver: (
        silver.SilverCounts(10, 7, 2, 1, 7, {"missing_user_id": 2}),
        "input=10 silver=7 quarantined=2 (missing_user_id=2) duplicates=1 erased=0",
    ),
    gold: (gold.GoldCounts(40, 12, 30, 9), "pairs=40 popular=12 items=30 profiles=9"),
    item_cf: (item_cf.ItemCFCounts(5, 3), "co_view=5 bought_together=3"),
    content: (30, "items=30"),
    train: (
        train.TrainResult("run", "4", PARAMS),
        "trials=0 model=v4 (candidate) chosen={'rank': 8",
    ),
    publish: (
        publish.PublishResult("2024-05-01.m4.x", "4", 25, 12, None, items=30, examples=20),
        "users=25 items=30 popular=12 version=2024-05-01.m4.x model=v4",
    ),
    promote: (
        promote.PromotionResult("4", "4", True, "no champion yet", "run"),
        "candidate=v4 promoted: no champion yet",
    ),
    retention: (retention.RetentionResult(date(2023, 3, 28), {"bronze.events": 3}), "deleted="),
    experiments: (
        experiments.ExperimentsResult(DS, [], "run", Path("report")),
        "variants=0",
    ),
}


def test_run_step_prints_name_ds_seconds_and_counts(capsys):
    assert run_step("gold", DS, lambda: 3, lambda n: f"items={n}") == 3
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"gold 2024-05-01 +\d+\.\d s +items=3", line), line


@pytest.mark.spark
@pytest.mark.parametrize("job", list(JOBS), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_standalone_job_prints_its_step_line(job, spark, tmp_path, monkeypatch, capsys):
    result, says = JOBS[job]
    monkeypatch.setattr(job, "run", lambda *args, **kwargs: result)
    argv = ["--ds", DS.isoformat()]
    if job is ingest:
        argv += ["--events", "events.csv"]
    assert job.main(argv, spark=spark, settings=make_settings(tmp_path)) is result
    lines = capsys.readouterr().out.splitlines()
    name = job.__name__.rsplit(".", 1)[-1]
    # the step line first (experiments then prints its results, a line per variant)
    assert re.match(rf"{name} 2024-05-01 +\d+\.\d s +(\d+ jobs +)?\S", lines[0]), lines
    assert says in lines[0], lines[0]
    assert len(lines) == (2 if job is experiments else 1), lines
