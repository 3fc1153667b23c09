"""THE event validator: the rules an event must meet, shared by the API and the Spark jobs.

``POST /v1/events`` validates each event here and writes its canonical form to the event log;
the Spark side (``features.transforms.annotate_events``, used by silver and the streaming
job) applies the same limits to the strings it reads, imported from this module. So whatever
the API accepts with 202 the jobs accept too (tests/online/test_events.py proves it on a set
of edge cases run through both).

Canonical form (what the event log stores, all strings): ids stripped, event type lower
case, timestamp UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (zero-padded: Spark's ``yyyy`` needs four
digits), quantity a decimal integer in 1..2^31-1 (Spark's int), price a finite decimal in
0..MAX_PRICE.

Pure Python: no pyspark, no redis (the API imports it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: Ids (user, session, item, event) are 1..MAX_ID_LENGTH characters, not blank.
MAX_ID_LENGTH = 256
MAX_EVENT_TYPE_LENGTH = 64
MAX_TIMESTAMP_LENGTH = 64
#: Quantities are Spark ints.
MAX_QUANTITY = 2**31 - 1
#: Unit prices above this are data errors (a price in cents sent as units, a sentinel).
MAX_PRICE = 1e9
#: The earliest event time the jobs accept; ``settings.events_min_timestamp`` may only be
#: later (the API then rejects more than the jobs, never less).
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
#: The layout of a canonical timestamp, as Spark parses it (features.transforms).
CANONICAL_TIMESTAMP_LAYOUT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"

ID_FIELDS = ("event_id", "user_id", "session_id", "item_id")
#: Optional: the ``recommendation_id`` of the list the event came from (attribution).
RECOMMENDATION_ID_FIELD = "recommendation_id"

#: Python's whitespace (str.isspace, what str.strip removes), as a regex class body; the
#: same in Python, pydantic's Rust regex and JSON Schema's ECMA regex.
_WHITESPACE = (
    r"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
    r"\u3000"
)
#: An id holds at least one non-whitespace character (JSON Schema patterns search).
ID_PATTERN = f"[^{_WHITESPACE}]"
#: The timestamp syntax the API accepts: an ISO 8601 calendar date (years 1970..2099, leap
#: days included) and time (seconds, fraction and offset optional; space or T). The range
#: (events_min_timestamp..now + events_max_future_seconds) is checked after parsing.
_YEAR = "(19[7-9][0-9]|20[0-9][0-9])"
_LEAP_YEAR = "(19(7[26]|8[048]|9[26])|20([02468][048]|[13579][26]))"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
_OFFSET = "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
TIMESTAMP_PATTERN = f"^({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)[T ]{_TIME}{_OFFSET}?$"
#: C0 and C1 control characters (and DEL), which no recommendation id holds.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
#: A recommendation id: no control characters, at least one non-whitespace character.
RECOMMENDATION_ID_PATTERN = f"^[^{_CONTROL}]*[^{_WHITESPACE}{_CONTROL}][^{_CONTROL}]*$"


class InvalidEventError(ValueError):
    """An event the rules reject; the message is the reason the client gets."""


def format_timestamp(when: datetime) -> str:
    """UTC, zero-padded ISO-8601 with milliseconds: ``0001-01-01T00:00:00.000Z``."""
    when = when.astimezone(UTC)
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:"
        f"{when.second:02d}.{when.microsecond // 1000:03d}Z"
    )


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 to an aware UTC datetime (no offset = UTC). Raises InvalidEventError when the
    text is not ISO 8601 or its offset moves it out of the representable years (1..9999)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEventError("timestamp: not ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEventError("timestamp: out of range once converted to UTC") from None


def check_id(name: str, value: str) -> str:
    """The id stripped; InvalidEventError when blank, too long or not encodable as UTF-8."""
    stripped = value.strip()
    if not stripped:
        raise InvalidEventError(f"{name}: must not be blank")
    if len(stripped) > MAX_ID_LENGTH:
        raise InvalidEventError(f"{name}: longer than {MAX_ID_LENGTH} characters")
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEventError(f"{name}: not valid Unicode (lone surrogate)") from None
    return stripped


def check_recommendation_id(value: str) -> str:
    """check_id, and no control characters (the id goes into logs and lake tables as is)."""
    stripped = check_id(RECOMMENDATION_ID_FIELD, value)
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in stripped):
        raise InvalidEventError(f"{RECOMMENDATION_ID_FIELD}: control characters")
    return stripped


def check_quantity(value: int) -> str:
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidEventError(f"quantity: must be in 1..{MAX_QUANTITY}")
    return str(value)


def check_price(value: float) -> str:
    price = float(value)
    if not math.isfinite(price) or not 0 <= price <= MAX_PRICE:
        raise InvalidEventError(f"price: must be a finite number in 0..{MAX_PRICE:g}")
    return repr(price + 0.0)  # + 0.0: -0.0 -> 0.0


@dataclass(frozen=True)
class Limits:
    """The settings-dependent rules: known event types and the accepted time range."""

    event_types: frozenset[str]
    earliest: datetime = EARLIEST_TIMESTAMP
    max_future_seconds: int = 300

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            event_types=frozenset(settings.event_weights),
            earliest=max(settings.events_min_timestamp, EARLIEST_TIMESTAMP),
            max_future_seconds=settings.events_max_future_seconds,
        )


def canonical_event(fields: Mapping[str, Any], limits: Limits, now: datetime) -> dict[str, str]:
    """The event as the log stores it (strings only, absent fields left out), from already
    type-checked fields (online.schemas.EventIn); raises InvalidEventError with the reason. Events
    without an ``event_id`` get a server-generated one (``srv-<uuid>``)."""
    out: dict[str, str] = {}
    for name in ID_FIELDS:
        value = fields.get(name)
        if value is not None:
            out[name] = check_id(name, value)
    if "user_id" not in out and "session_id" not in out:
        raise InvalidEventError("user_id or session_id is required")
    event_type = str(fields["event_type"]).strip().lower()
    if event_type not in limits.event_types:
        shown = repr(str(fields["event_type"])[:MAX_EVENT_TYPE_LENGTH])
        raise InvalidEventError(
            f"event_type: unknown {shown}, expected one of " + ", ".join(sorted(limits.event_types))
        )
    out["event_type"] = event_type
    when = parse_timestamp(str(fields["timestamp"]))
    if when < limits.earliest:
        raise InvalidEventError(f"timestamp: before {format_timestamp(limits.earliest)}")
    latest = now + timedelta(seconds=limits.max_future_seconds)
    if when > latest:
        raise InvalidEventError(f"timestamp: more than {limits.max_future_seconds}s in the future")
    out["timestamp"] = format_timestamp(when)
    if fields.get("quantity") is not None:
        out["quantity"] = check_quantity(fields["quantity"])
    if fields.get("price") is not None:
        out["price"] = check_price(fields["price"])
    if fields.get(RECOMMENDATION_ID_FIELD) is not None:
        out[RECOMMENDATION_ID_FIELD] = check_recommendation_id(fields[RECOMMENDATION_ID_FIELD])
    out.setdefault("event_id", f"srv-{uuid.uuid4().hex}")
    return {k: out[k] for k in ("event_id", *CANONICAL_ORDER) if k in out}


CANONICAL_ORDER = (
    "user_id",
    "session_id",
    "item_id",
    "event_type",
    "timestamp",
    "quantity",
    "price",
    RECOMMENDATION_ID_FIELD,  # last: events without one keep their fingerprint
)


def fingerprint(event: Mapping[str, str], key: bytes) -> str:
    """Keyed content hash of a canonical event, without its id: two posts of the same event
    under one id have the same fingerprint, whatever the timestamp's spelling (keyed with the
    pseudonymisation key, since the payload holds the raw user id)."""
    payload = {k: event[k] for k in CANONICAL_ORDER if k in event}
    data = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, data.encode(), hashlib.sha256).hexdigest()[:32]
