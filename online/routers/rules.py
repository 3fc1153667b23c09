"""GET/PUT /v1/rules: the merchandising rules (logic: online/services/rules.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from online.deps import ReadAuth, ReaderDep, SettingsDep, WriteAuth, _bearer
from online.routers.params import NOT_FOUND, READ_ERRORS
from online.services.rules import get_rules, put_rules
from recolake import rules as R

router = APIRouter(prefix="/v1/rules", tags=["rules"])


class RuleDoc(BaseModel):
    """One rule (recolake/rules.py documents the semantics)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=R.MAX_ID_LENGTH)
    action: Literal["boost", "bury", "pin"]
    items: list[str] = Field(default_factory=list, description="Item ids (a pin: in order).")
    categories: list[str] = Field(default_factory=list, description="Categories (not pins).")
    factor: float | None = Field(
        default=None,
        description=f"boost: (1, {R.MAX_BOOST:g}], default 2; bury: [0, 1), default 0.5; "
        "multiplies the blended score.",
    )
    position: int | None = Field(default=None, description="pin: 1-based position (default 1).")
    start: str | None = Field(default=None, description="ISO 8601 with offset, inclusive.")
    end: str | None = Field(default=None, description="ISO 8601 with offset, exclusive.")
    scope: Literal["all", "recommendations", "similar", "bought_together"] = "all"


class RulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleDoc] = Field(max_length=R.MAX_RULES)
    author: str | None = Field(
        default=None, description="Who writes (default: a fingerprint of the write token)."
    )


class RulesResponse(BaseModel):
    version: int = Field(description="0: no rules stored yet; each PUT stores the next.")
    author: str | None
    updated_at: str | None = Field(description="When this version was stored (UTC).")
    rules: list[RuleDoc]


_WRITE_ERRORS = {
    **READ_ERRORS,
    401: {**READ_ERRORS[401], "description": "No bearer token was sent."},
    403: {**READ_ERRORS[403], "description": "Wrong token, or writes are disabled."},
    422: {**READ_ERRORS[422], "description": "Not a valid rules document: every reason."},
}


@router.get(
    "",
    response_model=RulesResponse,
    dependencies=[ReadAuth],
    responses={
        **READ_ERRORS,
        404: {**NOT_FOUND[404], "description": "That version is not kept (or never was)."},
    },
    summary="The current merchandising rules (or a kept older version)",
)
async def read_rules(
    reader: ReaderDep,
    settings: SettingsDep,
    version: Annotated[
        int | None, Query(ge=1, description="An older version, if still kept (audit).")
    ] = None,
) -> dict:
    return await get_rules(reader, settings, version)


@router.put(
    "",
    response_model=RulesResponse,
    dependencies=[WriteAuth],
    responses=_WRITE_ERRORS,
    summary="Replace the merchandising rules (stored as the next version)",
)
async def write_rules(
    request: Request,
    reader: ReaderDep,
    settings: SettingsDep,
    body: RulesIn,
) -> dict:
    """Needs the write token. Validated strictly (422 lists every problem); served by every
    API process within about a second."""
    doc = body.model_dump(exclude_none=True)
    # the semantics (factor ranges, windows, pins, unique ids) are checked by recolake.rules,
    # the one validator of files and bodies
    return await put_rules(reader, settings, doc, _bearer(request) or "")
