"""Recommendations for a user and/or an anonymous session: Reader (one round trip once warm)
-> blend -> response document.

Candidates come from the user's published ALS list, the neighbours (co_view,
bought_together, content) of the recent items the streaming job keeps per user/session,
trending and popular; see recolake/ranking.py for the scoring.

Filters apply to every source alike (``request_filters``): what the subject hid or disliked
(the streaming job's hidden sets) is never served; what the user bought (the publication's
purchased set plus the recent list's purchases) unless ``exclude_purchased=false``; the recent
list's items with ``exclude_recent=true``; unavailable items, ``exclude``, ``category``.

Weights: the served publication's (``onlinestore.meta.PublicationMeta.weights``, chosen by the
evaluation), explicitly set ``blend_weight_*`` settings over them, and the request's experiment
variant over those (``common.weights_for``). The variant is a pure function of the subject
(recolake/experiments.py): no Redis round trip. Every response carries a fresh
``recommendation_id``, its ``experiment`` and ``variant``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from online.services.common import experiment_of, filters_of, guarded, weights_for
from online.services.impressions import log_impression
from online.services.rules import active_rules
from recolake.experiments import Assignment, assign
from recolake.onlinestore import NEIGHBOUR_KINDS, session_subject, user_subject
from recolake.onlinestore.reader import Reader, Snapshot
from recolake.onlinestore.values import decode_category_affinity
from recolake.privacy import pseudonymise
from recolake.ranking import Filters, Inputs, Ranked, anchors, blend
from recolake.settings import Settings


@dataclass(frozen=True)
class RecommendQuery:
    user_id: str | None
    session_id: str | None
    k: int
    exclude: frozenset[str] = frozenset()
    category: str | None = None
    #: None: settings.exclude_purchased_default.
    exclude_purchased: bool | None = None
    exclude_recent: bool = False


async def _read(
    reader: Reader,
    settings: Settings,
    query: RecommendQuery,
    user_key,
    subjects,
    publication: str | None = None,
):
    snap = await reader.snapshot(user_key, subjects, publication)
    per_source = max(settings.blend_candidates_per_source, query.k)
    used = anchors(
        snap.recent, settings.blend_recent_anchors, settings.non_anchor_event_types(), snap.hidden
    )
    als = (snap.als or [])[:per_source]
    trending = snap.trending[:per_source]
    popular = snap.popular[:per_source]
    nbr_keys = [(kind, a.item_id) for a in used for kind in NEIGHBOUR_KINDS]
    wanted = [a.item_id for a in used] + [i for lst in (als, trending, popular) for i, _ in lst]
    catalog, neighbours = await reader.details(snap.publication, wanted, nbr_keys)
    nbr_items = [e[0] for key in nbr_keys for e in neighbours[key] if e[0] not in catalog]
    if nbr_items:  # a further trip only for neighbour items this process has never seen
        catalog, _ = await reader.details(snap.publication, nbr_items, ())
    affinity: dict[str, float] = {}
    for payload in snap.affinity_payloads:
        for cat, score in decode_category_affinity(payload).items():
            affinity[cat] = affinity.get(cat, 0.0) + score
    inputs = Inputs(
        als=als,
        recent=snap.recent,
        neighbours=neighbours,
        trending=trending,
        popular=popular,
        category_affinity=affinity,
        catalog=catalog,
        purchased=snap.purchased,
        hidden=snap.hidden,
    )
    return snap, used, inputs


async def recommend(reader: Reader, settings: Settings, query: RecommendQuery) -> dict:
    """The response document of GET /v1/recommendations[/{user_id}]."""
    key = settings.require_pseudonymisation_key()
    user_key = pseudonymise(query.user_id, key) if query.user_id is not None else None
    subjects = [user_subject(user_key)] if user_key is not None else []
    if query.session_id is not None:
        subjects.append(session_subject(query.session_id, key))
    # the user's subject first, else the session's: what the variant is assigned by
    assignment = assign(experiment_of(settings), subjects[0] if subjects else None)
    variant = assignment.variant
    snap, used, inputs = await guarded(
        _read(
            reader,
            settings,
            query,
            user_key,
            subjects,
            variant.publication if variant is not None else None,
        ),
        settings.api_redis_deadline_seconds,
    )
    weights, weights_source = weights_for(settings, snap.publication, variant)
    rules = await active_rules(reader, settings, "recommendations")  # cached ~1 s
    if rules is not None and rules.pins:  # pinned items' catalog entries (filters need them)
        inputs.catalog, _ = await guarded(
            reader.details(snap.publication, [i for _, i in rules.pins], ()),
            settings.api_redis_deadline_seconds,
        )
    ranked = blend(
        inputs,
        weights=weights,
        filters=request_filters(settings, query),
        k=query.k,
        n_anchors=settings.blend_recent_anchors,
        not_anchor_types=settings.non_anchor_event_types(),
        rules=rules,
    )
    body = document(query, snap, used, ranked, assignment, weights_source)
    await log_impression(settings, body, "recommendations")  # durable before the answer
    return body


def request_filters(settings: Settings, query: RecommendQuery) -> Filters:
    """The request's filters, over every source: ``exclude``, ``category``, bought items
    (``exclude_purchased``, default ``settings.exclude_purchased_default``), the recent list
    (``exclude_recent``); hidden and unavailable items are always dropped."""
    purchased = query.exclude_purchased
    return replace(
        filters_of(settings, query.exclude, query.category),
        exclude_purchased=settings.exclude_purchased_default if purchased is None else purchased,
        exclude_recent=query.exclude_recent,
    )


def document(
    query: RecommendQuery,
    snap: Snapshot,
    used,
    ranked: Ranked,
    assignment: Assignment,
    weights_source: str,
) -> dict:
    """The response (online/schemas.py RecommendationsResponse documents every field)."""
    body = {
        "recommendation_id": uuid.uuid4().hex,
        "experiment": assignment.experiment_name,
        "variant": assignment.variant_name,
        "user_id": query.user_id,
        "session_id": query.session_id,
        "items": [
            {"item_id": r.item_id, "score": r.score, "source": r.source, "reason": r.reason}
            for r in ranked
        ],
        "recent": [a.item_id for a in used],
        "model_version": snap.publication.model_version,
        "publication": snap.publication.version,
        "weights_source": weights_source,
    }
    if snap.fallback_from is not None:
        body["publication_fallback"] = snap.fallback_from
    short = ranked.short(query.k)
    if short is not None:
        body["short"] = short
    return body
