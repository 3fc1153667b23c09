"""MLflow set-up and the model registry conventions (names and aliases live in settings)."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from recolake.settings import Settings


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(settings.mlflow_experiment) is None:
        artifact_root = settings.mlflow_artifact_root
        if "://" not in artifact_root:
            Path(artifact_root).mkdir(parents=True, exist_ok=True)
            artifact_root = Path(artifact_root).resolve().as_uri()
        client.create_experiment(settings.mlflow_experiment, artifact_location=artifact_root)
    mlflow.set_experiment(settings.mlflow_experiment)
    return client


def champion_uri(settings: Settings) -> str:
    return f"models:/{settings.registered_model_name}@{settings.champion_alias}"


#: Run tag naming the nightly step that made a run (train, tune, evaluate); promote finds the
#: evaluation of a date by it.
STEP_TAG = "step"

#: Model-version tag holding the blend weights (``recolake.ranking.Weights.to_json``) chosen
#: on validation for that version: `evaluate` sets it on the candidate, `publish` copies the
#: champion's into the publication's metadata, the API ranks with it.
SERVED_WEIGHTS_TAG = "served_weights"

#: Model-version tag holding how the published per-user list fuses the models (JSON
#: {model: weight}, models.hybrid.fuse over settings.personal_models), chosen on validation
#: with the served weights: `evaluate` sets it on the candidate, `publish` fuses with it.
PERSONAL_WEIGHTS_TAG = "personal_weights"
