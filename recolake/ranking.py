"""THE ranker: candidates -> scored, filtered, diversified, explained list.

One ranker offline and online: the API calls ``blend`` per request with what Redis returned,
the offline evaluation calls it per user (inside Spark's ``applyInPandas``) with the state
that user had at the cut, so what is measured is what is served. No I/O here and no pyspark
or Redis imports (a test asserts it): every rule is unit-tested on plain values.

Each source contributes ``weight * rank_score`` for each item it proposes, where
``rank_score`` falls linearly from 1 (first) towards 0 (last of that list): raw scores are
not comparable across sources (ALS dot products, co-occurrence counts, cosine similarities),
ranks are. Neighbours of older recent items count less (``anchor_decay`` per position). An
item proposed by several sources sums their contributions and is labelled with the source
that contributed most. A recency-decayed category affinity (from streaming) lifts items of
the categories the visitor is browsing now.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from recolake.rules import PROMOTED, ActiveRules, place_pins

#: Every source a recommended item can come from (the `source` field).
#: "promoted": an item a merchandising rule pinned that no source proposed (recolake/rules.py).
SOURCES = ("als", "bought_together", "co_view", "content", "trending", "popular", "promoted")
#: How a reason names the visitor's action on an anchor item ({} is its title).
ANCHOR_PHRASE = {
    "view": "because you viewed {}",
    "add_to_cart": "because you added {} to your cart",
    "purchase": "because you bought {}",
}
#: Event types whose item is never an anchor by default (weight 0, negative feedback): the
#: API passes ``Settings.non_anchor_event_types()``, which derives them from the settings.
NOT_ANCHOR_TYPES = frozenset({"remove_from_cart", "hide", "dislike"})


@dataclass(frozen=True)
class ItemInfo:
    """Published catalog entry of one item. ``price`` is never used to rank: it rides along
    so responses (``?fields=price``, /v1/catalog, the page's cards) need no second lookup;
    None when the catalog has none (or the entry was published before prices were)."""

    title: str | None = None
    category: str | None = None
    available: bool = True
    price: float | None = None


@dataclass(frozen=True)
class RecentEvent:
    """One entry of a subject's recent list, newest first."""

    item_id: str
    event_type: str
    ts: float | None = None


@dataclass(frozen=True)
class Weights:
    """How much each source counts. Chosen on the validation split by the evaluation,
    carried by the publication's metadata (``to_json``/``from_json``), used by the API."""

    als: float = 1.0
    neighbours: float = 0.8
    content: float = 0.5
    trending: float = 0.4
    popular: float = 0.2
    affinity: float = 0.3
    anchor_decay: float = 0.8

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in WEIGHT_NAMES}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> Weights:
        """Unknown names are an error (a typo must not silently weigh nothing); missing
        names keep their defaults."""
        unknown = set(values) - set(WEIGHT_NAMES)
        if unknown:
            raise ValueError(f"unknown blend weights {sorted(unknown)}; known: {WEIGHT_NAMES}")
        out = {name: float(v) for name, v in values.items()}
        if any(v < 0 for v in out.values()):
            raise ValueError(f"blend weights must be >= 0: {out}")
        return cls(**out)

    @classmethod
    def from_json(cls, payload: str) -> Weights:
        doc = json.loads(payload)
        if not isinstance(doc, dict):
            raise ValueError(f"blend weights must be a JSON object, got {type(doc).__name__}")
        return cls.from_mapping(doc)


#: The names of Weights' fields, in order.
WEIGHT_NAMES = ("als", "neighbours", "content", "trending", "popular", "affinity", "anchor_decay")


@dataclass(frozen=True)
class Filters:
    """What one request lets through, applied to the candidates of every source alike."""

    exclude: frozenset[str] = frozenset()
    category: str | None = None
    max_per_category: int | None = None
    #: Drop what the user bought: ``Inputs.purchased`` and the purchases in the recent list.
    exclude_purchased: bool = True
    #: Drop every item of the recent list (just viewed, carted, ...).
    exclude_recent: bool = False


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    source: str
    reason: str


@dataclass
class Inputs:
    """Everything one request's blend needs, as decoded from Redis."""

    als: Sequence[tuple[str, float]] | None = None
    recent: Sequence[RecentEvent] = ()
    #: (kind, anchor item) -> neighbour list, kinds of recolake.onlinestore.NEIGHBOUR_KINDS
    neighbours: Mapping[tuple[str, str], Sequence[tuple[str, float]]] = field(default_factory=dict)
    trending: Sequence[tuple[str, float]] = ()
    popular: Sequence[tuple[str, float]] = ()
    category_affinity: Mapping[str, float] = field(default_factory=dict)
    catalog: Mapping[str, ItemInfo] = field(default_factory=dict)
    #: Items the user bought, from the lake's history (the publication's purchased set).
    purchased: frozenset[str] = frozenset()
    #: Items the subject hid or disliked (the streaming job's hidden set): never served.
    hidden: frozenset[str] = frozenset()


def anchors(
    recent: Sequence[RecentEvent],
    limit: int,
    not_anchor_types: Collection[str] = NOT_ANCHOR_TYPES,
    hidden: Collection[str] = frozenset(),
) -> list[RecentEvent]:
    """The distinct recent items (newest event of each), newest first: what neighbours are
    looked up for. An item whose newest event is of ``not_anchor_types`` (removed from the
    cart, hidden: the latest word on it is not interest) is no anchor, nor is a ``hidden``
    item."""
    seen: set[str] = set()
    out = []
    for event in recent:
        if event.item_id not in seen:
            seen.add(event.item_id)
            if event.event_type in not_anchor_types or event.item_id in hidden:
                continue
            out.append(event)
            if len(out) == limit:
                break
    return out


# --- blending --------------------------------------------------------------------------------


def _title(item_id: str, catalog: Mapping[str, ItemInfo]) -> str:
    info = catalog.get(item_id)
    return (info.title if info and info.title else None) or item_id


def reason_for(
    source: str, item_id: str, anchor: RecentEvent | None, catalog: Mapping[str, ItemInfo]
) -> str:
    if source == "als":
        return "recommended for you"
    if source == "trending":
        return "trending now"
    if source == "popular":
        info = catalog.get(item_id)
        return f"popular in {info.category}" if info and info.category else "popular right now"
    assert anchor is not None
    title = _title(anchor.item_id, catalog)
    if source == "bought_together":
        return f"bought together with {title}"
    return ANCHOR_PHRASE.get(anchor.event_type, ANCHOR_PHRASE["view"]).format(title)


#: A candidate while blending: [score, best contribution, source, anchor item or None]
#: (a list, not an object: this loop runs a few hundred times per request).
_SCORE, _BEST, _SOURCE, _ANCHOR = range(4)
_candidate = itemgetter(1)


def _add(
    pool: dict[str, list],
    items: Sequence[tuple[str, float]],
    source: str,
    weight: float,
    anchor: str | None = None,
) -> None:
    n = len(items)
    if weight <= 0 or n == 0:
        return
    step = weight / n
    get = pool.get
    for rank, entry in enumerate(items):
        contribution = weight - rank * step
        cand = get(entry[0])
        if cand is None:
            pool[entry[0]] = [contribution, contribution, source, anchor]
        else:
            cand[_SCORE] += contribution
            if contribution > cand[_BEST]:
                cand[_BEST], cand[_SOURCE], cand[_ANCHOR] = contribution, source, anchor


#: Scale of the fallback contributions: below any weighted source's (its smallest is
#: weight / list length, far above this for any weight that counts).
FALLBACK_SCALE = 1e-9


def _backfill(
    pool: dict[str, list], items: Sequence[tuple[str, float]], source: str, above: float
) -> None:
    """Items of ``items`` no source proposed, ranked after every proposed one, in order;
    ``above`` 1 puts the whole list before a backfill with ``above`` 0."""
    n = len(items)
    for rank, entry in enumerate(items):
        if entry[0] not in pool:
            contribution = FALLBACK_SCALE * (above + 1 - rank / n)
            pool[entry[0]] = [contribution, contribution, source, None]


def _ranked(pool: dict[str, list]) -> list[tuple[str, list]]:
    """Best first. The key compares the candidate lists themselves (score, then best share,
    source, anchor: all in C, no Python call per item); exact ties keep insertion order."""
    return sorted(pool.items(), key=_candidate, reverse=True)


def blend(
    inputs: Inputs,
    *,
    weights: Weights,
    filters: Filters,
    k: int,
    n_anchors: int = 5,
    not_anchor_types: Collection[str] = NOT_ANCHOR_TYPES,
    rules: ActiveRules | None = None,
) -> Ranked:
    """Candidates from every source, scored, filtered, diversified, top ``k`` (with the
    counts of what the filters dropped: ``Ranked.short``). ``rules``: the merchandising
    rules live for this request (``_with_rules``)."""
    catalog = inputs.catalog
    pool: dict[str, list] = {}
    _add(pool, inputs.als or (), "als", weights.als)
    used = anchors(inputs.recent, n_anchors, not_anchor_types, inputs.hidden)
    by_item = {a.item_id: a for a in used}
    kinds = (
        ("bought_together", weights.neighbours),
        ("co_view", weights.neighbours),
        ("content", weights.content),
    )
    for position, anchor in enumerate(used):
        decay = weights.anchor_decay**position
        for kind, weight in kinds:
            nbrs = inputs.neighbours.get((kind, anchor.item_id), ())
            _add(pool, nbrs, kind, weight * decay, anchor.item_id)
    _add(pool, inputs.trending, "trending", weights.trending)
    _add(pool, inputs.popular, "popular", weights.popular)
    # Never short while the fallbacks have items: a weight of 0 (the validation split may
    # choose it: it only scores known users) means "not blended in", not "never shown", so
    # popular, then trending, fill what the weighted sources leave, after all of them.
    _backfill(pool, inputs.popular, "popular", above=1.0)
    _backfill(pool, inputs.trending, "trending", above=0.0)

    affinity = inputs.category_affinity
    if weights.affinity > 0 and affinity:
        top = max(affinity.values())
        if top > 0:
            lift = {cat: 1.0 + weights.affinity * v / top for cat, v in affinity.items()}
            for item_id, cand in pool.items():
                info = catalog.get(item_id)
                if info is not None and info.category in lift:
                    cand[_SCORE] *= lift[info.category]

    purchased = dropped_items(inputs, filters)  # hidden, bought, recent: every source alike
    out = Ranked()
    out.candidates = len(pool)
    ranked, promoted = _with_rules(pool, catalog, rules)
    kept = _select(ranked, catalog, filters, k, out.filtered, purchased)
    if rules is not None and rules.pins:
        kept = place_pins(kept, rules.pins, k)
    out.extend(
        Recommendation(
            item_id,
            round(cand[_SCORE], 6),
            cand[_SOURCE],
            PROMOTED
            if item_id in promoted
            else reason_for(cand[_SOURCE], item_id, by_item.get(cand[_ANCHOR] or ""), catalog),
        )
        for item_id, cand in kept
    )
    return out


#: Why a candidate was dropped (the keys of Ranked.filtered).
DROP_REASONS = (
    "unavailable",
    "exclude",
    "hidden",
    "purchased",
    "recent",
    "category",
    "diversity",
)


def dropped_items(inputs: Inputs, filters: Filters) -> dict[str, str]:
    """Item -> why it is dropped whatever its source: hidden by the subject, bought (the
    lake's history and the recent list's purchases, unless ``exclude_purchased`` is off), in
    the recent list (``exclude_recent``); hidden wins over bought, bought over recent."""
    out: dict[str, str] = {}
    if filters.exclude_recent:
        out.update(dict.fromkeys((e.item_id for e in inputs.recent), "recent"))
    if filters.exclude_purchased:
        bought = [e.item_id for e in inputs.recent if e.event_type == "purchase"]
        out.update(dict.fromkeys(inputs.purchased, "purchased"))
        out.update(dict.fromkeys(bought, "purchased"))
    out.update(dict.fromkeys(inputs.hidden, "hidden"))
    return out


class Ranked(list):
    """The top-k list, with what happened to the other candidates: an empty or short answer
    is never silent. ``filtered`` counts the candidates each filter dropped while the list
    was filled (complete whenever the list is short: then every candidate was looked at)."""

    candidates: int
    filtered: dict[str, int]

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.candidates = 0
        self.filtered = dict.fromkeys(DROP_REASONS, 0)

    def short(self, k: int) -> dict | None:
        """None when the list has ``k`` items; else why not: ``reason`` is ``no_candidates``
        (no source proposed anything), ``few_candidates`` (the sources proposed fewer than k
        items) or ``filtered`` (there were enough candidates, the filters removed them)."""
        if len(self) >= k:
            return None
        if self.candidates == 0:
            reason = "no_candidates"
        elif self.candidates < k:
            reason = "few_candidates"
        else:
            reason = "filtered"
        return {
            "reason": reason,
            "candidates": self.candidates,
            "filtered": {name: n for name, n in self.filtered.items() if n},
        }


def drop_reason(
    item_id: str,
    catalog: Mapping[str, ItemInfo],
    filters: Filters,
    dropped: Mapping[str, str] | Collection[str] = frozenset(),
) -> str | None:
    """The filter that drops an item whatever its rank (None: kept): excluded, hidden /
    bought / recent (``dropped``: ``dropped_items``; a plain collection means bought),
    unavailable, other category."""
    if item_id in filters.exclude:
        return "exclude"
    if item_id in dropped:
        return dropped[item_id] if isinstance(dropped, Mapping) else "purchased"
    info = catalog.get(item_id)
    if info is not None and not info.available:
        return "unavailable"
    if filters.category is not None and (info is None or info.category != filters.category):
        return "category"
    return None


def keep(item_id: str, catalog: Mapping[str, ItemInfo], filters: Filters) -> bool:
    """Whether no filter drops the item (see ``drop_reason``)."""
    return drop_reason(item_id, catalog, filters) is None


def _select(
    ranked: Sequence[tuple[str, list]],
    catalog: Mapping[str, ItemInfo],
    filters: Filters,
    k: int,
    dropped: dict[str, int],
    purchased: Mapping[str, str] | Collection[str] = frozenset(),
) -> list[tuple[str, list]]:
    """Walk the ranking best first: drop what ``drop_reason`` rejects, then allow at most
    ``max_per_category`` items of any one (known) category (diversity after filtering;
    items of unknown category are not capped; off when one category is requested). Each
    drop is counted in ``dropped`` under its reason."""
    cap = None if filters.category is not None else filters.max_per_category
    counts: dict[str, int] = {}
    out = []
    for entry in ranked:
        item_id = entry[0]
        why = drop_reason(item_id, catalog, filters, purchased)
        if why is not None:
            dropped[why] += 1
            continue
        if cap is not None:
            info = catalog.get(item_id)
            category = info.category if info is not None else None
            if category is not None:
                seen = counts.get(category, 0)
                if seen >= cap:
                    dropped["diversity"] += 1
                    continue
                counts[category] = seen + 1
        out.append(entry)
        if len(out) == k:
            break
    return out


def similar(
    item_id: str,
    lists: Mapping[str, Sequence[tuple[str, float]]],
    *,
    weights: Mapping[str, float],
    catalog: Mapping[str, ItemInfo],
    filters: Filters,
    k: int,
    rules: ActiveRules | None = None,
) -> Ranked:
    """Neighbours of one item from several kinds merged (same rank scoring as ``blend``);
    the item itself and filtered items are dropped; ``rules`` as in ``blend``."""
    pool: dict[str, list] = {}
    for kind, items in lists.items():
        _add(pool, items, kind, weights.get(kind, 1.0), item_id)
    pool.pop(item_id, None)
    title = _title(item_id, catalog)
    reasons = {
        "bought_together": f"bought together with {title}",
        "co_view": f"viewed together with {title}",
        "content": f"similar to {title}",
    }
    out = Ranked()
    out.candidates = len(pool)
    ranked, promoted = _with_rules(pool, catalog, rules, item_id)
    kept = _select(ranked, catalog, filters, k, out.filtered)
    if rules is not None and rules.pins:
        kept = place_pins(kept, rules.pins, k)
    out.extend(
        Recommendation(
            i,
            round(cand[_SCORE], 6),
            cand[_SOURCE],
            PROMOTED if i in promoted else reasons.get(cand[_SOURCE], ""),
        )
        for i, cand in kept
    )
    return out


def _with_rules(
    pool: dict[str, list],
    catalog: Mapping[str, ItemInfo],
    rules: ActiveRules | None,
    itself: str | None = None,
) -> tuple[list[tuple[str, list]], frozenset[str]]:
    """The pool ranked after the merchandising rules (recolake/rules.py), and the items they
    promoted: boost/bury factors multiply the blended score; pinned items (proposed by a
    source or not, never ``itself``) go first, so ``_select`` passes them through every
    filter and the diversity cap like any candidate, and ``place_pins`` then moves the
    survivors to their positions. No rules: the plain ranking."""
    if not rules:
        return _ranked(pool), frozenset()
    promoted: set[str] = set()
    for item_id, cand in pool.items():
        info = catalog.get(item_id)
        factor = rules.factor(item_id, info.category if info is not None else None)
        if factor is not None:
            cand[_SCORE] *= factor
            if factor > 1:
                promoted.add(item_id)
    front = []
    for _, item_id in rules.pins:
        if item_id == itself:
            continue
        front.append((item_id, pool.pop(item_id, None) or [0.0, 0.0, "promoted", None]))
        promoted.add(item_id)
    return front + _ranked(pool), frozenset(promoted)
