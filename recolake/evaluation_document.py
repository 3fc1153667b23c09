"""The evaluation document: one typed model that `evaluate` writes and the report, the
promotion gate and the API's metadata read.

Unknown keys are rejected (``extra="forbid"``) so that a writer and a reader drifting apart
fail loudly instead of a section silently not rendering. No pyspark, no redis: the API may
import this.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The artifact name of the document in the evaluation's MLflow run.
ARTIFACT = "evaluation.json"
#: The model row of the request-time blend (recolake.ranking) replayed offline.
SERVED = "served"


class DocumentError(LookupError):
    """The document lacks something a reader needs (a model row, a metric, a section)."""


class _Strict(BaseModel):
    # NaN/inf survive a round trip (a metric of an empty list is NaN, not null).
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class Split(_Strict):
    """The time-based hold-out every model is measured on."""

    kind: Literal["time"] = "time"
    cutoff: str = Field(description="ISO timestamp: training data is before it")
    end: str = Field(description="ISO timestamp: the hold-out ends here (end of ds)")
    holdout_days: int
    validation_start: str = Field(description="ISO timestamp: the validation split starts")
    validation_days: int
    train_users: int
    evaluated_users: int


class GridPoint(_Strict):
    """One blend-weight grid point and its primary metric on the validation split."""

    weights: dict[str, float]
    value: float


class Personal(_Strict):
    """The per-user list the publication carries (the blend's ``als`` source): the rank
    fusion of settings.personal_models with these weights, chosen on validation."""

    weights: dict[str, float]
    validation: float
    grid_points: int


class Served(_Strict):
    """The request-time blend's weights, chosen on the validation split."""

    weights: dict[str, float] = Field(description="recolake.ranking.Weights.as_dict()")
    validation: float = Field(description="the primary metric of these weights on validation")
    validation_users: int
    grid_points: int
    top: list[GridPoint] = Field(default_factory=list, description="best grid points first")
    personal: Personal | None = Field(
        default=None, description="how the published per-user list fuses the models"
    )


class ModelVersionRef(_Strict):
    """A registered ALS version: its number, the date it learned, its parameters."""

    version: str
    ds: str
    params: dict[str, float | int]


class Champion(ModelVersionRef):
    """The champion re-measured on this document's split.

    ``metrics``: its ALS configuration re-trained on the split; ``served``: the blend with
    the champion's ALS and the champion publication's weights (what the gate compares)."""

    metrics: dict[str, float] = Field(default_factory=dict)
    served: dict[str, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_metrics(cls, data: Any) -> Any:
        """Documents written before this model put the ALS metrics next to version/ds/params
        (``"ndcg@10": ...``): only such ``name@k`` keys are folded into ``metrics``; any other
        unknown key is still an error."""
        if not isinstance(data, Mapping):
            return data
        flat = {k: v for k, v in data.items() if "@" in k}
        if not flat:
            return data
        rest = {k: v for k, v in data.items() if k not in flat}
        return {**rest, "metrics": {**flat, **(rest.get("metrics") or {})}}


class Promotion(_Strict):
    """The gate's decision on this evaluation (added by `promote`, absent before it ran)."""

    metric: str = Field(description="the primary metric of the served blend, e.g. ndcg@10")
    candidate_version: str
    candidate: float | None = Field(description="the candidate's served value")
    champion_version: str | None = None
    champion: float | None = Field(None, description="the champion's served value")
    promoted: bool
    reason: str


class EvaluationDocument(_Strict):
    """Every model on the same split, the served blend's weights, candidate and champion."""

    k: int
    ds: str
    primary_metric: str = Field(description="'<metric>@<k>', e.g. 'ndcg@10'")
    split: Split
    models: dict[str, dict[str, float]] = Field(description="model -> metric@k -> value")
    served: Served | None = None
    hybrid: dict[str, Any] | None = None
    candidate: ModelVersionRef
    champion: Champion | None = None
    popularity_profile: dict[str, list[float]] = Field(default_factory=dict)
    reused: list[str] = Field(default_factory=list)
    promotion: Promotion | None = None

    @model_validator(mode="after")
    def _primary_at_k(self) -> EvaluationDocument:
        if not self.primary_metric.endswith(f"@{self.k}"):
            raise ValueError(f"primary_metric {self.primary_metric!r} is not at k={self.k}")
        return self

    # -- readers --------------------------------------------------------------------------

    def primary(self, model: str = SERVED) -> float:
        """The primary metric of a model's row."""
        row = self.models.get(model)
        if row is None:
            raise DocumentError(
                f"evaluation of {self.ds} has no model {model!r} (models: {sorted(self.models)})"
            )
        if self.primary_metric not in row:
            raise DocumentError(
                f"model {model!r} in the evaluation of {self.ds} lacks {self.primary_metric}"
            )
        return row[self.primary_metric]

    def champion_served(self) -> float | None:
        """The champion's served blend's primary metric on this split; None when there is
        no champion (first model)."""
        if self.champion is None:
            return None
        served = self.champion.served
        if served is None or self.primary_metric not in served:
            raise DocumentError(
                f"the evaluation of {self.ds} has champion v{self.champion.version} but not "
                f"its served {self.primary_metric}"
            )
        return served[self.primary_metric]

    def served_weights(self) -> dict[str, float]:
        """The blend weights chosen on validation (for the publication's metadata)."""
        if self.served is None:
            raise DocumentError(f"the evaluation of {self.ds} has no served weights")
        return dict(self.served.weights)

    # -- (de)serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``mlflow.log_dict`` and ``json.dumps`` take)."""
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, payload: str | bytes) -> EvaluationDocument:
        return cls.model_validate_json(payload)

    @classmethod
    def parse(cls, document: EvaluationDocument | Mapping[str, Any]) -> EvaluationDocument:
        """A document, or the mapping of one (validated)."""
        if isinstance(document, cls):
            return document
        return cls.model_validate(dict(document))

    @classmethod
    def read(cls, path: str | Path) -> EvaluationDocument:
        return cls.from_json(Path(path).read_text())

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_mlflow(cls, client: Any, run_id: str, artifact: str = ARTIFACT) -> EvaluationDocument:
        """The document an evaluation run logged as an artifact (``client``: an
        ``mlflow.tracking.MlflowClient``)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = client.download_artifacts(run_id, artifact, tmp)
            except Exception as exc:  # MlflowException, OSError, depending on the store
                raise DocumentError(f"run {run_id} has no artifact {artifact!r}: {exc}") from exc
            return cls.read(local)
