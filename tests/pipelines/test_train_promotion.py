"""train (ALS tuning as MLflow child runs) -> evaluate (every model, JSON + report + MLflow)
-> promote (the gate): a worse candidate never replaces the champion."""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from datetime import date

import pytest

from features.tables import GOLD_USER_ITEM_STRENGTH
from models.offline import MODELS
from pipelines import content, evaluate, gold, ingest, promote, silver, train
from pipelines.promote import promotion_decision
from recolake import tracking
from recolake.settings import PROJECT_ROOT
from tests.conftest import make_settings

DS = date(2011, 12, 9)
SAMPLE = PROJECT_ROOT / "data" / "sample" / "online_retail_sample.csv.gz"
METRICS = {"ndcg", "precision", "recall", "map", "hit_rate", "coverage", "diversity", "novelty"}


def test_promotion_decision_rules():
    assert promotion_decision(0.1, None, "ndcg@10") == (True, "first model: becomes champion")
    assert promotion_decision(0.2, 0.1, "ndcg@10")[0]
    assert promotion_decision(0.1, 0.1, "ndcg@10")[0]  # tie: same quality, fresher data
    promoted, reason = promotion_decision(0.05, 0.1, "ndcg@10")
    assert not promoted and "kept" in reason and "0.0500 < " in reason


def test_als_grid_from_settings(tmp_path):
    one = make_settings(tmp_path)
    assert one.als_grid() == [
        {"rank": one.als_rank, "reg_param": 0.1, "alpha": 20.0, "max_iter": one.als_max_iter}
    ]
    grid = make_settings(tmp_path, als_tune_ranks=[8, 16], als_tune_reg_params=[0.1, 1.0])
    assert len(grid.als_grid()) == 4 and {g["rank"] for g in grid.als_grid()} == {8, 16}
    iters = make_settings(tmp_path, als_tune_ranks=[8], als_tune_max_iters=[5, 15])
    assert [g["max_iter"] for g in iters.als_grid()] == [5, 15]
    assert [train.params_from(iters, g).max_iter for g in iters.als_grid()] == [5, 15]


@pytest.mark.spark
@pytest.mark.slow
def test_tune_evaluate_promote_and_gate(spark, tmp_path):
    """About a quarter of the sample's customers; a tuned ALS, then a crippled one."""
    path = tmp_path / "retail.csv.gz"
    with gzip.open(SAMPLE, "rt", newline="") as src, gzip.open(path, "wt", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            if zlib.crc32((row["CustomerID"] or row["InvoiceNo"]).encode()) % 4 == 1:
                writer.writerow(row)
    # A two-point grid where one point is hopeless: tuning must pick the other.
    good = make_settings(
        tmp_path,
        als_max_iter=5,
        als_rank=16,
        als_tune_reg_params=[0.1, 5000.0],
        als_tune_ranks=[16],
        als_tune_alphas=[20.0],
        hybrid_weight_step=0.5,
    )
    ingest.run(spark, good, DS, str(path), None, "online_retail")
    silver.run(spark, good, DS)
    gold.run(spark, good, DS)
    content.run(spark, good, DS)
    client = tracking.configure(good)  # registry too: another test may have set it globally

    first = train.run(spark, good, DS, keep_validation_fit=True)
    assert len(first.trials) == 2 and first.params.reg_param == 0.1
    assert first.trials[0].metrics["ndcg@10"] > first.trials[1].metrics["ndcg@10"]
    children = client.search_runs(
        [client.get_run(first.run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'",
    )
    assert {r.data.params["reg_param"] for r in children} == {"0.1", "5000.0"}
    assert all("validation.ndcg_at_10" in r.data.metrics for r in children)
    assert client.get_run(first.run_id).data.params["reg_param"] == "0.1"
    candidate = client.get_model_version_by_alias(good.registered_model_name, "candidate")
    assert str(candidate.version) == first.model_version

    out = tmp_path / "out" / "metrics.json"
    evaluated = evaluate.main(["--ds", DS.isoformat(), "--output", str(out)], spark, good)
    doc = json.loads(out.read_text())
    assert doc == json.loads(json.dumps(evaluated.document))
    assert doc["k"] == 10 and doc["split"]["kind"] == "time" and doc["champion"] is None
    assert set(doc["models"]) == {*MODELS, "hybrid"}
    for name, values in doc["models"].items():
        assert {m.split("@")[0] for m in values} == METRICS, name
        assert 0 <= values["ndcg@10"] <= 1 and values["hit_rate@10"] >= values["precision@10"]
    weights = doc["hybrid"]["weights"]
    assert set(weights) == set(good.hybrid_models) and sum(weights.values()) == pytest.approx(1)
    # The chosen weights are the validation optimum: no single model beats them there.
    best = doc["hybrid"]["validation_ndcg@10"]
    assert all(best >= v for v in doc["hybrid"]["single_models"].values())
    assert len(doc["popularity_profile"]["popularity"]) == 10
    # Popularity piles up in the most popular decile, more than history does.
    profile = doc["popularity_profile"]
    assert profile["popularity"][0] > profile["history"][0]
    assert evaluated.report == out.parent / "metrics-report" / "index.html"
    assert evaluated.report.exists() and (out.parent / "metrics-report" / "metrics.png").exists()
    run = client.get_run(evaluated.run_id)
    assert run.data.tags["step"] == "evaluate" and run.data.tags["candidate_version"] == "1"
    assert run.data.metrics["als.ndcg_at_10"] == pytest.approx(doc["models"]["als"]["ndcg@10"])
    assert run.data.metrics["hybrid.ndcg_at_10"] == pytest.approx(
        doc["models"]["hybrid"]["ndcg@10"]
    )
    artifacts = {a.path for a in client.list_artifacts(evaluated.run_id)}
    assert {"evaluation.json", "report"} <= artifacts
    assert evaluated.reused == []

    # The nightly hands train's validation fit (same split, the chosen parameters) to
    # evaluate: the hybrid is weighed on it instead of a new fit, and measures the same.
    fit = first.validation_fit
    assert fit is not None and fit.params == first.params and fit.depth == good.eval_depth
    reusing = evaluate.run(spark, good, DS, tmp_path / "reuse.json", validation_fit=fit)
    assert reusing.reused == ["validation_split_and_als_fit"]
    assert reusing.document["hybrid"]["validation_ndcg@10"] == pytest.approx(
        doc["hybrid"]["validation_ndcg@10"], abs=0.02
    )
    assert reusing.document["hybrid"]["validation_users"] == doc["hybrid"]["validation_users"]
    for name in MODELS:
        assert reusing.metrics[name]["ndcg@10"] == pytest.approx(
            doc["models"][name]["ndcg@10"], abs=0.02
        ), name

    # Lineage: the tables change (gold rebuilt with other weights), the run's Delta versions
    # still rebuild its training input and model.
    changed = good.model_copy(update={"event_weights": {**good.event_weights, "purchase": 50.0}})
    gold.run(spark, changed, DS)
    again = train.main(["--ds", DS.isoformat(), "--reproduce", first.run_id], spark, good)
    strength_now = GOLD_USER_ITEM_STRENGTH.read(spark, good).where(f"ds = '{DS}'")
    assert again.rows == strength_now.count()  # same pairs, other strengths
    assert again.max_factor_difference < 1e-3, again
    gold.run(spark, good, DS)

    promoted = promote.run(good, DS)
    assert promoted.promoted and promoted.reason == "first model: becomes champion"

    bad = good.model_copy(
        update={
            "als_rank": 1,
            "als_max_iter": 1,
            "als_reg_param": 1000.0,
            "als_tune_ranks": [],
            "als_tune_reg_params": [],
            "als_tune_alphas": [],
        }
    )
    second = train.run(spark, bad, DS)
    assert second.trials == [] and second.params.rank == 1
    second_eval = evaluate.run(spark, bad, DS, tmp_path / "second.json")
    champion_doc = second_eval.document["champion"]
    assert champion_doc["version"] == first.model_version
    assert second_eval.metrics["als"]["ndcg@10"] < champion_doc["ndcg@10"]
    # The champion's configuration re-trained on the same split measures what it did.
    assert champion_doc["ndcg@10"] == pytest.approx(doc["models"]["als"]["ndcg@10"], abs=0.02)
    gate = promote.run(bad, DS)
    assert not gate.promoted and "kept" in gate.reason

    champion = client.get_model_version_by_alias(good.registered_model_name, "champion")
    assert str(champion.version) == first.model_version != second.model_version
    tags = client.get_run(second_eval.run_id).data.tags
    assert tags["promoted"] == "false" and tags["previous_champion"] == first.model_version
    version_tags = client.get_model_version(good.registered_model_name, second.model_version).tags
    assert version_tags["promoted"] == "false" and "kept" in version_tags["promotion_reason"]
