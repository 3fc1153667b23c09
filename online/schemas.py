"""Pydantic models of every response (and, later, request) of the API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from recolake.validation import (
    ID_PATTERN,
    MAX_EVENT_TYPE_LENGTH,
    MAX_ID_LENGTH,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TIMESTAMP_LENGTH,
    RECOMMENDATION_ID_PATTERN,
    TIMESTAMP_PATTERN,
)

#: "promoted": pinned by a merchandising rule though no source proposed it (recolake/rules.py).
Source = Literal["als", "co_view", "bought_together", "content", "trending", "popular", "promoted"]


class RecommendedItem(BaseModel):
    item_id: str
    score: float = Field(description="Blended score: higher is better, within one response.")
    source: Source = Field(description="Which signal contributed most to this item.")
    reason: str = Field(
        default="", description='Human-readable why, e.g. "because you viewed <title>".'
    )
    # only with ?fields= (online/services/fields.py), from the published catalog
    title: str | None = Field(default=None, description="With `fields=title`.")
    category: str | None = Field(default=None, description="With `fields=category`.")
    available: bool | None = Field(default=None, description="With `fields=available`.")
    price: float | None = Field(
        default=None, description="With `fields=price` (null when the catalog has none)."
    )


class Filtered(BaseModel):
    """Candidates each filter dropped (only filters that dropped something are listed)."""

    unavailable: int = Field(default=0, description="Marked unavailable in the catalog.")
    exclude: int = Field(default=0, description="In the request's `exclude`.")
    hidden: int = Field(default=0, description="Hidden or disliked by this user/session.")
    purchased: int = Field(
        default=0,
        description="Bought by the user (published history or recent events); only with "
        "`exclude_purchased`.",
    )
    recent: int = Field(default=0, description="In the recent events (`exclude_recent`).")
    category: int = Field(default=0, description="Not of the requested `category`.")
    diversity: int = Field(default=0, description="Over `max_per_category` for their category.")


class Shortfall(BaseModel):
    """Why a list has fewer than k items (absent when it has k): an empty or short answer is
    never silent."""

    reason: Literal["no_candidates", "few_candidates", "filtered"] = Field(
        description="no_candidates: no source proposed anything (nothing published for this "
        "user, no recent events, empty trending and popular); few_candidates: the sources "
        "proposed fewer than k items; filtered: there were enough, the filters dropped them."
    )
    candidates: int = Field(description="Distinct items the sources proposed.")
    filtered: Filtered


RECOMMENDATION_ID_DOC = (
    "This response's id (uuid4, 32 hex digits), fresh for every response: send it back as "
    "`recommendation_id` with the events that follow from this list (a click, a cart, a "
    "purchase) so the experiments' attribution credits them to it."
)
EXPERIMENT_DOC = (
    "The online experiment this response was served under (the API's experiments file); null "
    "when none is declared, or when the request has neither user nor session id to assign."
)
VARIANT_DOC = (
    "The experiment's variant this response was served with (a subject always gets the same "
    'one); "default" outside any experiment.'
)


class RecommendationsResponse(BaseModel):
    recommendation_id: str = Field(pattern="^[0-9a-f]{32}$", description=RECOMMENDATION_ID_DOC)
    experiment: str | None = Field(description=EXPERIMENT_DOC)
    variant: str = Field(description=VARIANT_DOC)
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
    weights_source: Literal["publication", "settings", "experiment", "default"] = Field(
        description="Where the blend weights of this list came from: `publication`: the "
        "served publication's, chosen by the evaluation for its model; `default`: that "
        "publication carried none, the ranker's defaults; `settings`: explicitly set "
        "RECOLAKE_BLEND_WEIGHT_* override them; `experiment`: the variant's weights override "
        "them."
    )
    publication_fallback: str | None = Field(
        default=None,
        description="Present only when the experiment's variant names a publication Redis "
        "does not hold (expired or never published): that version; the live publication "
        "(`publication`) was served instead.",
    )
    short: Shortfall | None = Field(
        default=None, description="Present only when fewer than k items are returned: why."
    )


class SimilarItemsResponse(BaseModel):
    recommendation_id: str = Field(pattern="^[0-9a-f]{32}$", description=RECOMMENDATION_ID_DOC)
    experiment: str | None = Field(
        default=None, description="Always null: item pages are not part of an experiment."
    )
    variant: str = Field(default="default", description='Always "default" (see `experiment`).')
    item_id: str
    kind: Literal["similar", "bought_together"]
    items: list[RecommendedItem]
    publication: str | None = None
    short: Shortfall | None = Field(
        default=None, description="Present only when fewer than k items are returned: why."
    )


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: bool
    publication: str | None = None
    detail: str | None = None


# --- event intake (online/routers/events.py) ---------------------------------------------


def _integral(value: object) -> object:
    """2.0 is an integer in JSON Schema: accept integral floats as ints (never booleans)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class EventIn(BaseModel):
    """One event in the generic schema. ``user_id`` or ``session_id`` (anonymous visitor) is
    required; ``event_id`` is the client's idempotency key per user (or session): generated
    when absent. The rules beyond types (known event types, time range, blank ids) are
    recolake.validation's, shared with the Spark jobs."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "anyOf": [
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}},
            ]
        },
    }

    event_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, strict=True
    )
    user_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, strict=True
    )
    session_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, strict=True
    )
    item_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, strict=True)
    event_type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_LENGTH, strict=True)
    timestamp: str = Field(
        min_length=1,
        max_length=MAX_TIMESTAMP_LENGTH,
        pattern=TIMESTAMP_PATTERN,
        strict=True,
        description="ISO 8601 date and time (seconds, fraction and offset optional; no offset "
        "= UTC), from events_min_timestamp (1970-01-01) to events_max_future_seconds ahead. "
        "Stored as UTC YYYY-MM-DDTHH:MM:SS.mmmZ.",
    )
    quantity: Annotated[int | None, BeforeValidator(_integral)] = Field(
        default=None, ge=1, le=MAX_QUANTITY, strict=True
    )
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False, strict=True)
    recommendation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=RECOMMENDATION_ID_PATTERN,
        strict=True,
        description="The `recommendation_id` of the recommendations response the item was "
        "shown in, when the event follows from one (a click, a cart, a purchase): the "
        "experiments' attribution credits that list first. No control characters.",
    )


class EventSummary(BaseModel):
    """What identifies an accepted event to its client (no user or session id)."""

    item_id: str
    event_type: str
    timestamp: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.mmmZ.")


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the posted batch (0 for one).")
    reason: str
    conflict: EventSummary | None = Field(
        default=None,
        description="Set when the reason is a conflict: the event already accepted under "
        "this event_id for this user (or session), which a different payload cannot replace.",
    )


class EventsResponse(BaseModel):
    accepted: int = Field(description="Events stored by this request (duplicates included).")
    event_ids: list[str] = Field(description="Ids of the accepted events, in posted order.")
    duplicates: list[str] = Field(
        default_factory=list,
        description="Accepted ids that had been accepted before with the same payload (a "
        "retry): stored again, counted once downstream.",
    )
    rejected: list[RejectedEvent] = Field(default_factory=list)


# --- errors (every non-2xx answer of every route) ----------------------------------------


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer: a human-readable reason (a list of per-field errors
    for request validation failures)."""

    detail: str | list[dict] = Field(description="Why the request was not served.")


class ErasedOnline(BaseModel):
    realtime_keys: int = Field(description="Real-time documents deleted (recent, affinity).")
    published_lists: int = Field(description="Published recommendation lists deleted.")
    publications: int = Field(description="Publications in Redis that were looked at.")


class ErasureResponse(BaseModel):
    user_id: str
    online: ErasedOnline
    lake: str = Field(description="What happens to the user's rows in the lake, and when.")


# --- user profiles (online/routers/users.py) ---------------------------------------------


class CategoryShare(BaseModel):
    category: str
    share: float = Field(ge=0, le=1, description="Share of the user's strength on items of it.")


class BrandShare(BaseModel):
    brand: str
    share: float = Field(ge=0, le=1, description="Share of the user's strength on items of it.")


Segment = Literal[
    "champions",
    "at_risk",
    "loyal",
    "potential_loyalist",
    "new",
    "hibernating",
    "need_attention",
    "browser",
]


class UserProfileResponse(BaseModel):
    """gold.user_profile of the publication's ds (features/profile.py), as published."""

    user_id: str
    publication: str = Field(description="Id of the served Redis publish.")
    ds: str = Field(description="The date the profile is as of (YYYY-MM-DD, end of day UTC).")
    n_events: int = Field(description="Events of the user up to the end of ds.")
    last_event_time: str = Field(description="The user's latest event (ISO-8601, UTC).")
    days_since_last_event: int = Field(description="Whole days from it to ds (0: on ds).")
    last_purchase_time: str | None = Field(description="Latest purchase; null: none.")
    days_since_last_purchase: int | None = Field(description="Recency (RFM); null: no purchase.")
    frequency: int = Field(
        description="Frequency (RFM): distinct purchase baskets (the session, else each purchase)."
    )
    monetary: float | None = Field(
        description="Monetary value (RFM): sum of price x quantity of the purchases with a known "
        "price (the event's, else the catalog's); null when the data has no prices."
    )
    r_score: int | None = Field(
        ge=1,
        le=5,
        description="1..5 against the buyers' quintiles (5: most recent); null: no purchase.",
    )
    f_score: int | None = Field(
        ge=1, le=5, description="1..5 (5: most frequent); null: no purchase."
    )
    m_score: int | None = Field(
        ge=1, le=5, description="1..5 (5: most spent); null: no purchase or no prices."
    )
    segment: Segment = Field(
        description="Named RFM segment of the R and F scores (features/profile.segment_of); "
        "`browser`: never bought."
    )
    top_categories: list[CategoryShare] = Field(description="Largest share first.")
    top_brands: list[BrandShare] = Field(description="Largest share first.")
    median_price: float | None = Field(
        description="Median price of the items the user interacted with; null: none priced."
    )
    price_band: int | None = Field(
        ge=1,
        le=5,
        description="That median against the catalog's price quintiles (1: cheapest fifth).",
    )
    preferred_hours: list[int] = Field(
        description="Up to 3 hours of day (0-23, UTC) with the most events, most first."
    )


# --- the page's reads (online/routers/ui.py, online/routers/users.py) ---------------------


class CatalogItem(BaseModel):
    """One item's catalog entry as served: the live overlay's (PUT /v1/items) over the
    publication's."""

    title: str | None
    category: str | None
    available: bool
    price: float | None = Field(description="Null when the catalog has no price for it.")


class CatalogResponse(BaseModel):
    publication: str = Field(description="Id of the live Redis publish read.")
    items: dict[str, CatalogItem | None] = Field(
        description="Item id -> its entry; null for an item the catalog does not know."
    )


class ExampleUsersResponse(BaseModel):
    """Example users of the live publication (GET /v1/users): the playground's user search."""

    publication: str = Field(description="Id of the live Redis publish read.")
    users: list[str] = Field(
        description="Raw user ids starting with `prefix`, ordered by id (at most `limit`)."
    )
    examples: int = Field(
        description="Example users the publication carries in all (at most the publish "
        "job's `RECOLAKE_PUBLISH_EXAMPLE_USERS`; 0: it lists none)."
    )
