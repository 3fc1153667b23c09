"""GET/PUT /v1/rules: the merchandising rules (logic: online/services/rules.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from online.deps import ReadAuth, ReaderDep, SettingsDep, WriteAuth, _bearer
from online.routers.params import NOT_FOUND, READ_ERRORS
from online.services.rules import get_rules, put_rules
from recolake import rules as R

router = APIRouter(prefix="/v1/rules", tags=["rules"])


Id = Annotated[str, StringConstraints(min_length=1, max_length=R.MAX_ID_LENGTH, pattern=r"\S")]
Targets = Annotated[
    list[Id], Field(max_length=R.MAX_TARGETS, json_schema_extra={"uniqueItems": True})
]


def _text(value: object) -> object:
    """A date-time is a string (not a number of seconds, which pydantic would also accept)."""
    if not isinstance(value, str):
        raise ValueError("a date-time is an ISO 8601 string with a UTC offset")
    return value


When = Annotated[AwareDatetime, BeforeValidator(_text)]
Scope = Literal["all", "recommendations", "similar", "bought_together"]
#: boost/bury name at least one item or category (what a static schema can say of it)
_SOME_TARGET = {
    "anyOf": [
        {"required": ["items"], "properties": {"items": {"minItems": 1}}},
        {"required": ["categories"], "properties": {"categories": {"minItems": 1}}},
    ]
}


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Unique within the document.")
    start: When | None = Field(default=None, description="Applies from (inclusive).")
    end: When | None = Field(default=None, description="Applies until (exclusive; after start).")
    scope: Scope = Field(default="all", description="All lists, or one endpoint's.")


class BoostRule(_Rule):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_SOME_TARGET)

    action: Literal["boost"]
    items: Targets = Field(default_factory=list, description="Item ids.")
    categories: Targets = Field(default_factory=list, description="Categories.")
    factor: float | None = Field(
        default=None, gt=1, le=R.MAX_BOOST, description="Multiplies the score (default 2)."
    )


class BuryRule(_Rule):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_SOME_TARGET)

    action: Literal["bury"]
    items: Targets = Field(default_factory=list, description="Item ids.")
    categories: Targets = Field(default_factory=list, description="Categories.")
    factor: float | None = Field(
        default=None, ge=0, lt=1, description="Multiplies the score (default 0.5)."
    )


class PinRule(_Rule):
    action: Literal["pin"]
    items: Annotated[list[Id], Field(min_length=1)] = Field(
        max_length=R.MAX_TARGETS,
        json_schema_extra={"uniqueItems": True},
        description="Item ids, in order, from `position` on (if they pass the filters).",
    )
    position: int = Field(default=1, ge=1, le=R.MAX_POSITION, description="1-based.")


RuleIn = Annotated[BoostRule | BuryRule | PinRule, Field(discriminator="action")]


class RulesIn(BaseModel):
    """A rules document (recolake/rules.py documents the semantics)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(max_length=R.MAX_RULES, description="Ids unique.")
    author: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=R.MAX_AUTHOR_LENGTH, pattern=r"\S")
        ]
        | None
    ) = Field(default=None, description="Who writes (default: the token's fingerprint).")


class RuleDoc(BaseModel):
    """One stored rule, as written (only the fields it set)."""

    id: str
    action: Literal["boost", "bury", "pin"]
    items: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    factor: float | None = None
    position: int | None = None
    start: str | None = None
    end: str | None = None
    scope: Scope = "all"


class RulesResponse(BaseModel):
    version: int = Field(description="0: no rules stored yet; each PUT stores the next.")
    author: str | None
    updated_at: str | None = Field(description="When this version was stored (UTC).")
    rules: list[RuleDoc]


_WRITE_ERRORS = {
    **READ_ERRORS,
    401: {**READ_ERRORS[401], "description": "No bearer token was sent."},
    403: {**READ_ERRORS[403], "description": "Wrong token, or writes are disabled."},
    400: {**READ_ERRORS[422], "description": "The body is not JSON."},
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


@router.api_route("", methods=["POST", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False)
async def other_methods() -> None:
    """405 that lists both methods of /v1/rules (Starlette's own lists only the first route's)."""
    raise HTTPException(
        status.HTTP_405_METHOD_NOT_ALLOWED,
        detail="Method Not Allowed",
        headers={"Allow": "GET, PUT"},
    )
