"""Query/path parameters and documented error answers shared by the read routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request, status

from online.schemas import ErrorResponse

MAX_ID_LENGTH = 256
MAX_EXCLUDE = 200

K = Annotated[int, Query(ge=1, le=100, description="How many items to return.")]
Exclude = Annotated[
    list[str] | None,
    Query(
        description=f"Item ids never to return (repeat the parameter or comma-separate; at "
        f"most {MAX_EXCLUDE} ids)."
    ),
]
Category = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_ID_LENGTH, description="Only items of this category."),
]
ExcludePurchased = Annotated[
    bool | None,
    Query(
        description="Drop the items the user bought (their purchase history as published, "
        "plus the purchases of their recent events) from every source. Default: the "
        "deployment's `RECOLAKE_EXCLUDE_PURCHASED_DEFAULT` (true unless the shop sells what "
        "is bought again and again, e.g. groceries)."
    ),
]
ExcludeRecent = Annotated[
    bool,
    Query(
        description="Also drop the items of the subject's recent events (just viewed, added "
        "to the cart, ...) from every source."
    ),
]
ItemId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The shop's item id.")
]


def parse_exclude(values: list[str] | None) -> frozenset[str]:
    if not values:
        return frozenset()
    items = frozenset(v.strip() for value in values for v in value.split(",") if v.strip())
    if len(items) > MAX_EXCLUDE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"exclude lists at most {MAX_EXCLUDE} item ids, got {len(items)}",
        )
    return items


#: Query parameters that take one value (``exclude`` is the only list).
SCALAR_QUERY = (
    "k",
    "category",
    "session_id",
    "user_id",
    "exclude_purchased",
    "exclude_recent",
    "prefix",
    "limit",
)


async def _single_valued(request: Request) -> None:
    """A scalar parameter given twice is ambiguous (which one counts?): 422, not "the last
    one wins" silently."""
    if "&" not in request.url.query:  # one parameter at most: nothing can repeat
        return
    params = request.query_params
    for name in SCALAR_QUERY:
        if len(params.getlist(name)) > 1:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"query parameter {name!r} given more than once",
            )


SingleValued = Depends(_single_valued)

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}

#: Every error a /v1 read can answer, each with the ErrorResponse body.
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "A read token is configured and none was sent."},
    403: {"model": ErrorResponse, "description": "Wrong token."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid parameters: `detail` lists the errors ({loc, msg, type}), or "
        "says what is wrong.",
    },
    503: {
        "model": ErrorResponse,
        "description": "Redis did not answer in time, or nothing is published: retry after "
        "`Retry-After` seconds.",
        "headers": _RETRY_AFTER,
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "The item is not in the live publication."}
}
