"""Pydantic models of every response (and, later, request) of the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Source = Literal["als", "popular"]


class RecommendedItem(BaseModel):
    item_id: str
    score: float = Field(description="Higher is better; comparable within one source only.")
    source: Source = Field(description="Which signal put this item in the list.")


class RecommendationsResponse(BaseModel):
    user_id: str
    items: list[RecommendedItem]
    model_version: str | None = Field(
        description="Registry version of the model behind the served publication."
    )
    publication: str | None = Field(default=None, description="Id of the served Redis publish.")


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: bool
    publication: str | None = None
    detail: str | None = None
