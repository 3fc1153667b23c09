"""Pydantic models of every response (and, later, request) of the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Source = Literal["als", "co_view", "bought_together", "content", "trending", "popular"]


class RecommendedItem(BaseModel):
    item_id: str
    score: float = Field(description="Blended score: higher is better, within one response.")
    source: Source = Field(description="Which signal contributed most to this item.")
    reason: str = Field(
        default="", description='Human-readable why, e.g. "because you viewed <title>".'
    )


class RecommendationsResponse(BaseModel):
    user_id: str | None = Field(description="The shop's user id; null for an anonymous session.")
    session_id: str | None = None
    items: list[RecommendedItem]
    recent: list[str] = Field(
        default_factory=list, description="Recent item ids (streaming) whose neighbours were used."
    )
    model_version: str | None = Field(
        description="Registry version of the model behind the served publication."
    )
    publication: str | None = Field(default=None, description="Id of the served Redis publish.")


class SimilarItemsResponse(BaseModel):
    item_id: str
    kind: Literal["similar", "bought_together"]
    items: list[RecommendedItem]
    publication: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: bool
    publication: str | None = None
    detail: str | None = None
