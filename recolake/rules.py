"""Merchandising rules: boost, bury or pin items or categories, per list and time window.

A rules document (a JSON/TOML file, or the body of ``PUT /v1/rules``) is a list of rules::

    {"rules": [
      {"id": "xmas-toys", "action": "boost", "categories": ["toys"], "factor": 2.0,
       "start": "2026-12-01T00:00:00Z", "end": "2026-12-27T00:00:00Z"},
      {"id": "old-stock", "action": "bury", "items": ["i9"], "factor": 0.2},
      {"id": "hero", "action": "pin", "items": ["i1", "i2"], "position": 1,
       "scope": "recommendations"}
    ]}

- ``boost``/``bury`` multiply the blended score of every candidate whose id is in ``items`` or
  whose category is in ``categories`` (boost: factor > 1, default 2; bury: factor in [0, 1),
  default 0.5). Several matching rules multiply.
- ``pin`` puts ``items`` (in order) at ``position``, ``position + 1``, ... (1-based) of the
  list, whether or not a source proposed them, but only if they pass the request's filters
  (excluded, bought, unavailable, other category): filters win over pins.
- ``start``/``end`` (ISO 8601 with a UTC offset; either may be omitted): the rule applies at
  ``start <= now < end`` (promotions). ``scope``: ``all`` (default) or one endpoint
  (``recommendations``, ``similar``, ``bought_together``).

Pure: no Redis, no pyspark. ``recolake.ranking.blend``/``similar`` take the rules active for
one request (``RulesDocument.active(scope, at)``) and apply them after scoring, before
filtering and diversity (ranking's ``_with_rules``); boosted and pinned items say "promoted".
The offline evaluation replays them the same way (with ``at`` = the cut, not the clock).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ACTIONS = ("boost", "bury", "pin")
SCOPES = ("all", "recommendations", "similar", "bought_together")
#: The reason of a boosted or pinned item.
PROMOTED = "promoted"
DEFAULT_FACTOR = {"boost": 2.0, "bury": 0.5}
MAX_BOOST = 100.0
MAX_RULES = 200
MAX_TARGETS = 500  # item ids, and categories, per rule
MAX_POSITION = 100  # the API's largest k
MAX_ID_LENGTH = 256
MAX_AUTHOR_LENGTH = 128
RULE_KEYS = frozenset(
    {"id", "action", "items", "categories", "factor", "position", "start", "end", "scope"}
)
DOCUMENT_KEYS = frozenset({"rules", "author"})


class RulesError(ValueError):
    """An invalid rules document; ``errors`` lists every problem as (location, message)."""

    def __init__(self, errors: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))


@dataclass(frozen=True)
class Rule:
    id: str
    action: str
    items: tuple[str, ...] = ()
    categories: frozenset[str] = frozenset()
    factor: float | None = None
    position: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    scope: str = "all"

    def live(self, scope: str, at: datetime) -> bool:
        """Whether the rule applies to a list of ``scope`` at ``at``."""
        if self.scope != "all" and self.scope != scope:
            return False
        if self.start is not None and at < self.start:
            return False
        return self.end is None or at < self.end

    def as_dict(self) -> dict:
        """The rule as written (what ``parse`` reads back)."""
        out: dict = {"id": self.id, "action": self.action, "scope": self.scope}
        if self.items:
            out["items"] = list(self.items)
        if self.categories:
            out["categories"] = sorted(self.categories)
        if self.factor is not None:
            out["factor"] = self.factor
        if self.position is not None:
            out["position"] = self.position
        if self.start is not None:
            out["start"] = _iso(self.start)
        if self.end is not None:
            out["end"] = _iso(self.end)
        return out


@dataclass(frozen=True)
class ActiveRules:
    """The rules that apply to one request, compiled for the ranker: score factors by item
    and by category, and pins (0-based position, item) in position order."""

    by_item: Mapping[str, float] = field(default_factory=dict)
    by_category: Mapping[str, float] = field(default_factory=dict)
    pins: tuple[tuple[int, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.by_item or self.by_category or self.pins)

    def factor(self, item_id: str, category: str | None) -> float | None:
        """The product of the factors of every rule matching the item (None: none does)."""
        f = self.by_item.get(item_id)
        c = self.by_category.get(category) if category is not None else None
        if f is None:
            return c
        return f if c is None else f * c


@dataclass(frozen=True)
class RulesDocument:
    """A versioned rules document: version 0 is "no rules stored yet"."""

    rules: tuple[Rule, ...] = ()
    version: int = 0
    author: str | None = None
    updated_at: str | None = None

    def active(self, scope: str, at: datetime) -> ActiveRules:
        """The rules live for ``scope`` at ``at``, compiled (see ``ActiveRules``)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; known: {SCOPES}")
        by_item: dict[str, float] = {}
        by_category: dict[str, float] = {}
        pins: dict[str, int] = {}
        taken: set[int] = set()
        for rule in self.rules:
            if not rule.live(scope, at):
                continue
            if rule.action == "pin":
                position = (rule.position or 1) - 1
                for item in rule.items:
                    while position in taken:  # an earlier rule holds it: the next free one
                        position += 1
                    if item not in pins:
                        pins[item] = position
                        taken.add(position)
                        position += 1
                continue
            factor = rule.factor if rule.factor is not None else DEFAULT_FACTOR[rule.action]
            for item in rule.items:
                by_item[item] = by_item.get(item, 1.0) * factor
            for category in rule.categories:
                by_category[category] = by_category.get(category, 1.0) * factor
        ordered = tuple(sorted(((p, i) for i, p in pins.items()), key=lambda pi: pi[0]))
        return ActiveRules(by_item, by_category, ordered)

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "author": self.author,
            "updated_at": self.updated_at,
            "rules": [r.as_dict() for r in self.rules],
        }


NO_RULES = RulesDocument()


def place_pins(entries: Sequence, pins: Sequence[tuple[int, str]], k: int) -> list:
    """``entries`` (``(item_id, ...)`` tuples, best first) with the pinned ones moved to their
    positions (in position order; a position past the end means last), cut to ``k``."""
    position_of = dict((item, p) for p, item in pins)
    pinned = [e for e in entries if e[0] in position_of]
    out = [e for e in entries if e[0] not in position_of]
    for entry in sorted(pinned, key=lambda e: position_of[e[0]]):
        out.insert(min(position_of[entry[0]], len(out)), entry)
    return out[:k]


# --- parsing and validation ---------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(value: object, loc: tuple, errors: list) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # TOML's offset date-times arrive parsed
        at = value
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors.append((loc, f"not an ISO 8601 date-time: {value!r}"))
            return None
    else:
        errors.append((loc, f"must be an ISO 8601 date-time string, got {type(value).__name__}"))
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        errors.append((loc, f"needs a UTC offset (e.g. 2026-12-01T00:00:00Z): {value!r}"))
        return None
    try:
        return at.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        errors.append((loc, f"out of range: {value!r}"))
        return None


def _ids(value: object, loc: tuple, errors: list) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append((loc, f"must be a list of strings, got {type(value).__name__}"))
        return []
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_ID_LENGTH:
            errors.append(((*loc, i), f"must be a non-empty string of at most {MAX_ID_LENGTH}"))
        else:
            out.append(v)
    if len(set(out)) != len(out):
        errors.append((loc, "repeats an entry"))
    return out


def _rule(doc: object, index: int, errors: list) -> Rule | None:
    where: tuple = ("rules", index)
    if not isinstance(doc, Mapping):
        errors.append((where, f"must be an object, got {type(doc).__name__}"))
        return None
    before = len(errors)
    unknown = set(doc) - RULE_KEYS
    if unknown:
        errors.append((where, f"unknown keys {sorted(unknown)} (known: {sorted(RULE_KEYS)})"))
    rule_id = doc.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip() or len(rule_id) > MAX_ID_LENGTH:
        errors.append(((*where, "id"), "must be a non-empty string"))
    action = doc.get("action")
    if action not in ACTIONS:
        errors.append(((*where, "action"), f"must be one of {list(ACTIONS)}, got {action!r}"))
    scope = doc.get("scope", "all")
    if scope not in SCOPES:
        errors.append(((*where, "scope"), f"must be one of {list(SCOPES)}, got {scope!r}"))
    items = _ids(doc.get("items"), (*where, "items"), errors)
    categories = _ids(doc.get("categories"), (*where, "categories"), errors)
    if not items and not categories:
        errors.append((where, "needs 'items' and/or 'categories'"))
    if len(items) > MAX_TARGETS or len(categories) > MAX_TARGETS:
        errors.append((where, f"at most {MAX_TARGETS} items and {MAX_TARGETS} categories"))
    factor = doc.get("factor")
    position = doc.get("position")
    if action == "pin":
        if categories:
            errors.append(((*where, "categories"), "a pin names items, not categories"))
        if factor is not None:
            errors.append(((*where, "factor"), "a pin has a position, not a factor"))
        if position is None:
            position = 1
        if (
            isinstance(position, bool)
            or not isinstance(position, int)
            or not 1 <= position <= MAX_POSITION
        ):
            errors.append(((*where, "position"), f"must be an integer in [1, {MAX_POSITION}]"))
    elif action in DEFAULT_FACTOR:
        if position is not None:
            errors.append(((*where, "position"), f"only a pin has a position, not a {action}"))
        if factor is not None:
            ok = not isinstance(factor, bool) and isinstance(factor, int | float)
            ok = ok and math.isfinite(factor)
            if action == "boost" and not (ok and 1 < factor <= MAX_BOOST):
                errors.append(((*where, "factor"), f"a boost's factor is in (1, {MAX_BOOST}]"))
            if action == "bury" and not (ok and 0 <= factor < 1):
                errors.append(((*where, "factor"), "a bury's factor is in [0, 1)"))
    start = _time(doc.get("start"), (*where, "start"), errors)
    end = _time(doc.get("end"), (*where, "end"), errors)
    if start is not None and end is not None and end <= start:
        errors.append(((*where, "end"), "must be after start"))
    if len(errors) > before:
        return None
    return Rule(
        id=rule_id,  # type: ignore[arg-type]
        action=action,  # type: ignore[arg-type]
        items=tuple(items),
        categories=frozenset(categories),
        factor=float(factor) if factor is not None else None,
        position=position if action == "pin" else None,
        start=start,
        end=end,
        scope=scope,
    )


def parse_rules(raw: object) -> tuple[Rule, ...]:
    """Validate a list of rules; RulesError with every problem found."""
    errors: list = []
    if not isinstance(raw, list):
        raise RulesError([(("rules",), f"must be a list, got {type(raw).__name__}")])
    if len(raw) > MAX_RULES:
        raise RulesError([(("rules",), f"at most {MAX_RULES} rules, got {len(raw)}")])
    rules = [_rule(doc, i, errors) for i, doc in enumerate(raw)]
    ids = [r.id for r in rules if r is not None]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        errors.append((("rules",), f"rule ids must be unique, repeated: {repeated}"))
    if errors:
        raise RulesError(errors)
    return tuple(r for r in rules if r is not None)


def parse(doc: object) -> tuple[tuple[Rule, ...], str | None]:
    """A document ``{"rules": [...], "author"?: str}`` -> (rules, author)."""
    if not isinstance(doc, Mapping):
        raise RulesError([((), f"must be an object, got {type(doc).__name__}")])
    unknown = set(doc) - DOCUMENT_KEYS
    if unknown:
        raise RulesError([((), f"unknown keys {sorted(unknown)} (known: {sorted(DOCUMENT_KEYS)})")])
    author = doc.get("author")
    if author is not None and (
        not isinstance(author, str) or not author.strip() or len(author) > MAX_AUTHOR_LENGTH
    ):
        raise RulesError([(("author",), f"must be a non-empty string of <= {MAX_AUTHOR_LENGTH}")])
    return parse_rules(doc.get("rules")), author


def load(path: str | Path) -> tuple[tuple[Rule, ...], str | None]:
    """Read and validate a rules file (``.toml``, else JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RulesError([((str(path),), f"cannot read it: {exc}")]) from exc
    return parse(doc)
