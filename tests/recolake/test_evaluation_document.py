"""The typed evaluation document: today's `evaluate` output validates, drift is rejected,
readers fail clearly, and the JSON / MLflow round trips give the same document."""

from __future__ import annotations

import copy
import json
import math

import pytest
from pydantic import ValidationError

from recolake.evaluation_document import (
    ARTIFACT,
    Champion,
    DocumentError,
    EvaluationDocument,
)

ROW = {
    "ndcg@10": 0.05,
    "precision@10": 0.01,
    "recall@10": 0.04,
    "map@10": 0.02,
    "hit_rate@10": 0.09,
    "coverage@10": 0.3,
    "diversity@10": 0.7,
    "novelty@10": 5.0,
}


def document(**changes) -> dict:
    """A document shaped like the one pipelines/evaluate.py writes (flat champion metrics)."""
    doc = {
        "k": 10,
        "ds": "2011-12-09",
        "primary_metric": "ndcg@10",
        "split": {
            "kind": "time",
            "cutoff": "2011-11-25T23:59:59.999999",
            "end": "2011-12-09T23:59:59.999999",
            "holdout_days": 14,
            "validation_start": "2011-11-11T23:59:59.999999",
            "validation_days": 14,
            "train_users": 900,
            "evaluated_users": 120,
        },
        "models": {
            "als": dict(ROW),
            "popularity": {**ROW, "ndcg@10": 0.03},
            "served": {**ROW, "ndcg@10": 0.06},
        },
        "served": {
            "weights": {"als": 1.0, "popular": 0.2},
            "validation": 0.055,
            "validation_users": 110,
            "grid_points": 21,
            "top": [{"weights": {"als": 1.0, "popular": 0.2}, "value": 0.055}],
        },
        "hybrid": {
            "weights": {"als": 0.5, "popularity": 0.5},
            "validation_ndcg@10": 0.04,
            "validation_users": 110,
            "grid_points": 3,
            "top": [{"weights": {"als": 0.5, "popularity": 0.5}, "ndcg@10": 0.04}],
            "single_models": {"als": 0.03},
        },
        "candidate": {
            "version": "2",
            "ds": "2011-12-09",
            "params": {"rank": 16, "max_iter": 5, "reg_param": 0.1, "alpha": 20.0, "seed": 42},
        },
        "champion": {
            "version": "1",
            "ds": "2011-12-08",
            "params": {"rank": 8, "max_iter": 5, "reg_param": 0.1, "alpha": 20.0, "seed": 42},
            **{k: v - 0.001 for k, v in ROW.items()},
        },
        "popularity_profile": {"history": [0.1] * 10, "als": [0.2] * 10},
        "reused": ["champion_config_is_candidate"],
    }
    doc.update(changes)
    return doc


def test_todays_document_validates_and_flat_champion_metrics_fold_into_metrics():
    doc = EvaluationDocument.parse(document())
    assert doc.split.evaluated_users == 120 and doc.candidate.version == "2"
    assert doc.champion is not None
    assert doc.champion.metrics["ndcg@10"] == pytest.approx(0.049)
    assert set(doc.champion.metrics) == set(ROW) and doc.champion.served is None
    assert doc.hybrid["single_models"] == {"als": 0.03}


def test_unknown_keys_are_drift_and_rejected():
    with pytest.raises(ValidationError, match="primary_metric"):  # the old report's guess
        EvaluationDocument.parse(document(promotion={"primary_metric": "ndcg@10"}))
    with pytest.raises(ValidationError, match="evaluation_id"):
        EvaluationDocument.parse(document(evaluation_id="x"))
    bad_split = document()
    bad_split["split"]["holdout"] = 14
    with pytest.raises(ValidationError, match="holdout"):
        EvaluationDocument.parse(bad_split)
    bad_champion = document()
    bad_champion["champion"]["run_id"] = "abc"  # not a metric@k: not folded, rejected
    with pytest.raises(ValidationError, match="run_id"):
        EvaluationDocument.parse(bad_champion)
    with pytest.raises(ValidationError, match="k=10"):
        EvaluationDocument.parse(document(primary_metric="ndcg@5"))
    with pytest.raises(ValidationError):
        EvaluationDocument.parse(document(models={"als": {"ndcg@10": "high"}}))


def test_primary_reads_a_row_and_fails_clearly():
    doc = EvaluationDocument.parse(document())
    assert doc.primary() == 0.06 and doc.primary("popularity") == 0.03
    with pytest.raises(DocumentError, match="no model 'hybrid'"):
        doc.primary("hybrid")
    other = EvaluationDocument.parse(document(primary_metric="recall@10"))
    assert other.primary("als") == 0.04
    lacking = EvaluationDocument.parse(document(models={"served": {"ndcg@10": 0.1}}))
    with pytest.raises(DocumentError, match="lacks precision@10"):
        lacking.model_copy(update={"primary_metric": "precision@10"}).primary()


def test_champion_served_and_served_weights():
    doc = EvaluationDocument.parse(document())
    with pytest.raises(DocumentError, match="champion v1 but not its served ndcg@10"):
        doc.champion_served()
    raw = document()
    raw["champion"]["served"] = {"ndcg@10": 0.058}
    assert EvaluationDocument.parse(raw).champion_served() == 0.058
    assert EvaluationDocument.parse(document(champion=None)).champion_served() is None
    assert doc.served_weights() == {"als": 1.0, "popular": 0.2}
    weights = doc.served_weights()
    weights["als"] = 0.0  # a copy: the document does not change under its reader
    assert doc.served_weights()["als"] == 1.0
    with pytest.raises(DocumentError, match="no served weights"):
        EvaluationDocument.parse(document(served=None)).served_weights()


def test_round_trips_through_json_and_files(tmp_path):
    raw = document()
    raw["models"]["content"] = {**ROW, "ndcg@10": math.nan}  # an empty evaluation
    doc = EvaluationDocument.parse(copy.deepcopy(raw))
    again = EvaluationDocument.from_json(doc.to_json())
    assert math.isnan(again.models["content"]["ndcg@10"])
    again.models["content"]["ndcg@10"] = doc.models["content"]["ndcg@10"] = 0.0
    assert again == doc
    # The canonical form: champion metrics nested; parse(to_dict()) is the same document.
    assert "ndcg@10" in doc.to_dict()["champion"]["metrics"]
    assert EvaluationDocument.parse(doc.to_dict()) == doc
    path = doc.write(tmp_path / "a" / "evaluation.json")
    assert EvaluationDocument.read(path) == doc
    assert json.loads(path.read_text())["models"]["served"]["ndcg@10"] == 0.06


def test_champion_keeps_explicit_metrics_over_flat_ones():
    champion = Champion.model_validate(
        {"version": "1", "ds": "d", "params": {}, "ndcg@10": 0.1, "metrics": {"ndcg@10": 0.2}}
    )
    assert champion.metrics == {"ndcg@10": 0.2}


def test_from_mlflow_reads_the_logged_artifact(tmp_path):
    from recolake import tracking
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    client = tracking.configure(settings)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment).experiment_id
    run = client.create_run(experiment)
    doc = EvaluationDocument.parse(document())
    client.log_dict(run.info.run_id, doc.to_dict(), ARTIFACT)
    assert EvaluationDocument.from_mlflow(client, run.info.run_id) == doc
    empty = client.create_run(experiment)
    with pytest.raises(DocumentError, match="no artifact"):
        EvaluationDocument.from_mlflow(client, empty.info.run_id)
