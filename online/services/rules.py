"""Merchandising rules (recolake/rules.py) for the API: the document each request ranks with,
GET/PUT /v1/rules, and the rules file loaded at start-up when Redis holds none.

Each process reads the current document through one RulesStore per Reader (cached ~1 s:
``ttl``), so a PUT on any process is served by every process within a second."""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from datetime import UTC, datetime

from online.services import NotFoundError, ServiceError
from online.services.common import guarded
from recolake import rules as R
from recolake.onlinestore.reader import Reader
from recolake.onlinestore.rules import RulesStore
from recolake.settings import Settings

log = logging.getLogger("recolake.api")

_stores: weakref.WeakKeyDictionary[Reader, RulesStore] = weakref.WeakKeyDictionary()


class InvalidRulesError(ServiceError):
    """422: a PUT body that is not a valid rules document; ``detail`` lists every problem."""

    status_code = 422

    def __init__(self, exc: R.RulesError) -> None:
        super().__init__(str(exc))
        self.detail = [  # type: ignore[assignment]
            {"loc": ["body", *loc], "msg": msg, "type": "rules"} for loc, msg in exc.errors
        ]


def store_of(reader: Reader, settings: Settings) -> RulesStore:
    store = _stores.get(reader)
    if store is None:
        store = RulesStore(reader.client, reader.layout, history=settings.rules_history)
        _stores[reader] = store
    return store


#: scope -> (when compiled: monotonic seconds, the document, its compiled rules or None)
_compiled: dict[str, tuple[float, R.RulesDocument, R.ActiveRules | None]] = {}


async def active_rules(reader: Reader, settings: Settings, scope: str) -> R.ActiveRules | None:
    """The rules live now for a list of ``scope`` (None when there are none). Compiled once
    per document and scope per second (a time window opens or closes within a second), not
    per request: a document may name thousands of items."""
    doc = await guarded(store_of(reader, settings).current(), settings.api_redis_deadline_seconds)
    if not doc.rules:
        return None
    now = time.monotonic()
    hit = _compiled.get(scope)
    if hit is not None and hit[1] is doc and now - hit[0] < 1.0:
        return hit[2]
    active = doc.active(scope, datetime.now(UTC)) or None
    _compiled[scope] = (now, doc, active)
    return active


async def get_rules(reader: Reader, settings: Settings, version: int | None) -> dict:
    store = store_of(reader, settings)
    deadline = settings.api_redis_deadline_seconds
    if version is None:
        store._cached = None  # an audit read is never stale
        return (await guarded(store.current(), deadline)).as_dict()
    doc = await guarded(store.version(version), deadline)
    if doc is None:
        raise NotFoundError(
            f"rules version {version} is not kept (the last {settings.rules_history} are)"
        )
    return doc.as_dict()


def fingerprint(token: str) -> str:
    """Who wrote, without the secret: a short hash of the bearer token."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


async def put_rules(reader: Reader, settings: Settings, body: object, token: str) -> dict:
    try:
        rules, author = R.parse(body)
    except R.RulesError as exc:
        raise InvalidRulesError(exc) from exc
    doc = await guarded(
        store_of(reader, settings).put(rules, author or fingerprint(token)),
        settings.api_redis_deadline_seconds,
    )
    assert doc is not None
    return doc.as_dict()


def check_rules_file(settings: Settings) -> None:
    """Fail at start-up on an unreadable or invalid rules file (RulesError says why)."""
    if settings.rules_file:
        R.load(settings.rules_file)


async def seed_rules(reader: Reader, settings: Settings) -> None:
    """The rules file as version 1 if Redis holds no rules yet (a later PUT wins over the
    file: restarting the API never reverts it). Redis down: logged, serving goes on."""
    if not settings.rules_file:
        return
    rules, author = R.load(settings.rules_file)
    try:
        stored = await guarded(
            store_of(reader, settings).put(
                rules, author or f"file:{settings.rules_file}", only_if_none=True
            ),
            settings.api_redis_deadline_seconds,
        )
    except ServiceError as exc:
        log.error("rules file not loaded into Redis: %s", exc.detail)
        return
    if stored is not None:
        log.info("rules file %s stored as version %d", settings.rules_file, stored.version)
