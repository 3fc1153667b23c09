"""Promotion gate: a new model becomes champion only if it is not worse on the same split."""

from __future__ import annotations

import csv
import gzip
import zlib
from datetime import date

import pytest
from mlflow.tracking import MlflowClient

from pipelines import gold, ingest, silver, train
from pipelines.train import promotion_decision
from recolake.settings import PROJECT_ROOT
from tests.conftest import make_settings

DS = date(2011, 12, 9)
SAMPLE = PROJECT_ROOT / "data" / "sample" / "online_retail_sample.csv.gz"


def test_promotion_decision_rules():
    assert promotion_decision(0.1, None, "ndcg@10") == (True, "first model: becomes champion")
    assert promotion_decision(0.2, 0.1, "ndcg@10")[0]
    assert promotion_decision(0.1, 0.1, "ndcg@10")[0]  # tie: same quality, fresher data
    promoted, reason = promotion_decision(0.05, 0.1, "ndcg@10")
    assert not promoted and "kept" in reason and "0.0500 < " in reason


@pytest.mark.spark
@pytest.mark.slow
def test_worse_model_does_not_replace_champion(spark, tmp_path):
    """About a quarter of the sample's customers; a good ALS, then a crippled one."""
    path = tmp_path / "retail.csv.gz"
    with gzip.open(SAMPLE, "rt", newline="") as src, gzip.open(path, "wt", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            if zlib.crc32((row["CustomerID"] or row["InvoiceNo"]).encode()) % 4 == 1:
                writer.writerow(row)
    good = make_settings(tmp_path, als_max_iter=5, als_rank=16)
    ingest.run(spark, good, DS, str(path), None, "online_retail")
    silver.run(spark, good, DS)
    gold.run(spark, good, DS)

    first = train.run(spark, good, DS)
    assert first.promoted and first.promotion_reason == "first model: becomes champion"

    bad = good.model_copy(update={"als_rank": 1, "als_max_iter": 1, "als_reg_param": 1000.0})
    second = train.run(spark, bad, DS)
    key = "ndcg@10"
    assert second.metrics["als"][key] < first.metrics["als"][key]
    assert not second.promoted and "kept" in second.promotion_reason

    client = MlflowClient(good.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(good.registered_model_name, "champion")
    assert str(champion.version) == first.model_version != second.model_version
    run = client.get_run(second.run_id)
    assert run.data.tags["promoted"] == "false"
    assert run.data.tags["previous_champion"] == first.model_version
    assert run.data.metrics["champion.ndcg_at_10"] == pytest.approx(
        first.metrics["als"][key], rel=0.05
    )
