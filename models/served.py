"""The served ranker replayed offline: ``recolake.ranking.blend`` per evaluated user, with the
state that user had at the cut, inside Spark, and its weights chosen on validation.

What the API reads from Redis for a request (online/services/recommend.py ``_read``) is
rebuilt here from the lake, as of the split's cut:

- ALS: the user's list from the model fitted on the split's training part, truncated to
  ``max(blend_candidates_per_source, k)``;
- recent: what the streaming job would hold: ``merge_recent`` over the user's last
  ``recent_n`` events before the cut (the list expires ``realtime_user_ttl_hours`` after its
  last write, so a gap longer than that empties it), the category affinity ``merge_affinity``
  over the same chain of events (events older than the TTL window and than the last
  ``recent_n`` are left out: their decayed weight is below 2^-(ttl / half-life));
- anchors = ``ranking.anchors(recent, blend_recent_anchors)`` and their neighbour lists per
  kind (co_view / bought_together trained on the training part, content from the catalog);
- trending (the streaming job's sliding window ending at the cut) and popular (gold's
  ``item_popularity`` as of the cut, the publication's 200), small: shipped in the closure;
- the catalog entries of every candidate, as the publication encodes them.

Per user the rows are grouped (``applyInPandas``), ``Inputs`` rebuilt and ``blend`` called:
cost linear in users x candidates, never users x items. Tuning evaluates a whole grid of
``Weights`` in the same pass (one blend per user and grid point, NDCG@k in the worker).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from features import columns as c
from features import transforms
from models.evaluation import EvalSplit
from recolake.onlinestore.stream import (
    Event,
    merge_affinity,
    merge_hidden,
    merge_recent,
    trending_list,
)
from recolake.ranking import Filters, Inputs, ItemInfo, RecentEvent, Weights, anchors, blend
from recolake.rules import ActiveRules, RulesDocument
from recolake.settings import Settings

#: Length of the published popular list (pipelines/publish.py POPULAR_LIST_LENGTH).
POPULAR_LIST_LENGTH = 200
#: The source weights the tuning grid spreads over a simplex (affinity and anchor decay keep
#: their defaults: they shape a list rather than choose between sources).
TUNED = ("als", "neighbours", "content", "trending", "popular")
#: Neighbour kinds the API reads per anchor (recolake.onlinestore.NEIGHBOUR_KINDS).
CF_KINDS = ("co_view", "bought_together")

# The per-user rows handed to the workers: one long frame, told apart by _PART.
_PART = "_part"
ALS, NBR, RECENT, TRUTH, PURCHASED = "als", "nbr", "recent", "truth", "purchased"
_ANCHOR, _TS, _WEIGHT, _IN_CATALOG = "_anchor", "_ts", "_weight", "_in_catalog"
ROW_FIELDS = (
    (c.USER_KEY, "string"),
    (_PART, "string"),
    (c.KIND, "string"),
    (_ANCHOR, "string"),
    (c.ITEM_ID, "string"),
    (c.SCORE, "double"),
    (c.RANK, "int"),
    (c.EVENT_TYPE, "string"),
    (_TS, "double"),
    (c.EVENT_ID, "string"),
    (_WEIGHT, "double"),
    (_IN_CATALOG, "boolean"),
    (c.TITLE, "string"),
    (c.CATEGORY, "string"),
    (c.AVAILABLE, "boolean"),
)
ROWS_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in ROW_FIELDS)
#: What the replay returns (``source``: the blend's label of each item).
REPLAY_SCHEMA = (
    f"{c.USER_KEY} string, {c.ITEM_ID} string, {c.SCORE} double, {c.RANK} int, {c.SOURCE} string"
)
_COMBO = "_combo"
TUNING_SCHEMA = f"{_COMBO} int, {c.USER_KEY} string, ndcg double"


@dataclass(frozen=True)
class BlendConfig:
    """The settings the API's request path and the streaming job use, as plain values (they
    travel to the Python workers in the closure)."""

    k: int
    per_source: int
    n_anchors: int
    recent_n: int
    ttl_seconds: float
    half_life_seconds: float
    session_gap_seconds: float
    max_per_category: int | None
    #: event types that make no anchor (settings.non_anchor_event_types())
    not_anchor_types: frozenset[str] = frozenset()
    #: event types that hide an item from the subject (settings.negative_event_types)
    negative_types: frozenset[str] = frozenset()
    #: the API's default for exclude_purchased (settings.exclude_purchased_default)
    exclude_purchased: bool = True
    purchased_max_items: int = 1000
    hidden_max_items: int = 500

    @classmethod
    def from_settings(cls, settings: Settings, k: int) -> BlendConfig:
        return cls(
            k=k,
            per_source=max(settings.blend_candidates_per_source, k),
            n_anchors=settings.blend_recent_anchors,
            recent_n=settings.recent_n,
            ttl_seconds=settings.realtime_user_ttl_hours * 3600,
            half_life_seconds=settings.affinity_half_life_hours * 3600,
            session_gap_seconds=settings.session_window_minutes * 60,
            max_per_category=settings.max_per_category,
            not_anchor_types=settings.non_anchor_event_types(),
            negative_types=frozenset(settings.negative_event_types),
            exclude_purchased=settings.exclude_purchased_default,
            purchased_max_items=settings.purchased_max_items,
            hidden_max_items=settings.hidden_max_items,
        )


@dataclass(frozen=True)
class ServedState:
    """Every evaluated user's state at the cut: per-user rows (ROWS_SCHEMA: ALS, neighbours
    of the anchors, recent events) plus the lists every user shares. Another ALS on the same
    users and cut: ``dataclasses.replace(state, als=rows_of_als(...))``."""

    als: DataFrame
    neighbours: DataFrame
    recent: DataFrame
    users: DataFrame
    cutoff: datetime
    config: BlendConfig
    trending: list[tuple[str, float]] = field(default_factory=list)
    popular: list[tuple[str, float]] = field(default_factory=list)
    #: catalog entries of the trending and popular items
    catalog: dict[str, ItemInfo] = field(default_factory=dict)
    #: what state_at_cut cached (released by unpersist)
    cached: tuple[DataFrame, ...] = ()

    @property
    def rows(self) -> DataFrame:
        return self.als.unionByName(self.neighbours).unionByName(self.recent)

    def unpersist(self) -> None:
        for df in self.cached:
            df.unpersist()


# --------------------------------------------------------------------------- the state (Spark)


def cf_neighbours(split: EvalSplit, settings: Settings) -> DataFrame:
    """(kind, item_id, neighbour_id, score, rank) of co_view and bought_together, trained on
    the split's training part only (as pipelines/item_cf.py does on the lake)."""
    from models.item_cf import history_and_basket_neighbours

    kinds = history_and_basket_neighbours(
        split.train_strength,
        split.train_events,
        top_n=settings.neighbours_top_n,
        min_support=settings.cf_min_support,
        max_items=settings.cf_max_items_per_group,
    )
    return union_kinds(kinds)


def union_kinds(kinds: Mapping[str, DataFrame]) -> DataFrame:
    """{kind: (item_id, neighbour_id, score, rank)} as one frame with a ``kind`` column."""
    out = None
    for kind, df in kinds.items():
        part = df.select(
            F.lit(kind).alias(c.KIND), c.ITEM_ID, c.NEIGHBOUR_ID, c.SCORE, F.col(c.RANK).cast("int")
        )
        out = part if out is None else out.unionByName(part)
    if out is None:
        raise ValueError("union_kinds needs at least one kind")
    return out


def _epoch(column: str) -> F.Column:
    return F.unix_micros(column).cast("double") / 1e6


def recent_rows(
    events: DataFrame, users: DataFrame, cutoff: datetime, config: BlendConfig, weights
) -> DataFrame:
    """(user_key, item_id, event_type, _ts, event_id, _weight) of each user's events before
    ``cutoff`` that the streaming job's documents could still hold: the last ``recent_n``
    (the recent list) and those within the TTL before the cut (the affinity)."""
    before = events.where(F.col(c.EVENT_TIME) < F.lit(cutoff)).join(users, c.USER_KEY, "left_semi")
    newest = Window.partitionBy(c.USER_KEY).orderBy(
        F.desc(c.EVENT_TIME), F.asc(F.coalesce(F.col(c.EVENT_ID), F.lit("")))
    )
    horizon = cutoff - timedelta(seconds=config.ttl_seconds)
    return (
        before.withColumn("_n", F.row_number().over(newest))
        .where((F.col("_n") <= config.recent_n) | (F.col(c.EVENT_TIME) >= F.lit(horizon)))
        .select(
            c.USER_KEY,
            c.ITEM_ID,
            c.EVENT_TYPE,
            _epoch(c.EVENT_TIME).alias(_TS),
            F.coalesce(F.col(c.EVENT_ID), F.lit("")).alias(c.EVENT_ID),
            transforms.weight_column(weights).cast("double").alias(_WEIGHT),
            "_n",
        )
    )


def anchor_rows(recent: DataFrame, config: BlendConfig) -> DataFrame:
    """(user_key, _anchor): ``ranking.anchors`` in Spark (the distinct items of the recent
    list, newest event of each first, at most ``n_anchors``), for the neighbour join. A list
    that expired (its newest event older than the TTL at the cut) has none; a gap inside it
    is handled by the worker, which may then use fewer anchors than joined here."""
    in_list = recent.where(F.col("_n") <= config.recent_n)
    first = in_list.groupBy(c.USER_KEY, c.ITEM_ID).agg(
        F.min_by(c.EVENT_TYPE, "_n").alias("_type"), F.min("_n").alias("_p")
    )
    if config.not_anchor_types:  # an item last removed from the cart is no anchor
        first = first.where(~F.col("_type").isin(sorted(config.not_anchor_types)))
    order = Window.partitionBy(c.USER_KEY).orderBy("_p")
    # twice the anchors: the worker skips hidden items, which this join cannot tell
    return (
        first.withColumn("_a", F.row_number().over(order))
        .where(F.col("_a") <= 2 * config.n_anchors)
        .select(c.USER_KEY, F.col(c.ITEM_ID).alias(_ANCHOR))
    )


def _with_catalog(frame: DataFrame, catalog: DataFrame) -> DataFrame:
    entries = catalog.select(
        c.ITEM_ID, c.TITLE, c.CATEGORY, c.AVAILABLE, F.lit(True).alias(_IN_CATALOG)
    )
    return frame.join(entries, c.ITEM_ID, "left")


def _as_rows(frame: DataFrame, part: str) -> DataFrame:
    """``frame`` padded to ROWS_SCHEMA."""
    present = set(frame.columns)
    cols = []
    for name, kind in ROW_FIELDS:
        if name == _PART:
            cols.append(F.lit(part).alias(_PART))
        elif name in present:
            cols.append(F.col(name).cast(kind).alias(name))
        else:
            cols.append(F.lit(None).cast(kind).alias(name))
    return frame.select(*cols)


def shared_lists(
    events: DataFrame, cutoff: datetime, settings: Settings, catalog: DataFrame
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], dict[str, ItemInfo]]:
    """(trending, popular, their catalog entries) as of ``cutoff``: the streaming job's
    window (``merge_trending``'s sum of event weights per item over the window before the
    cut, ranked by ``trending_list``) and gold's popularity (the publication's top 200)."""
    now = cutoff.timestamp()
    horizon = now - settings.trending_window_minutes * 60
    ts = _epoch(c.EVENT_TIME)
    window = events.where((ts > F.lit(horizon)) & (F.col(c.EVENT_TIME) < F.lit(cutoff)))
    totals = (
        window.groupBy(c.ITEM_ID)
        .agg(F.sum(F.greatest(transforms.weight_column(settings.event_weights), F.lit(0.0))))
        .collect()
    )
    state = {"buckets": {"window": {r[0]: float(r[1]) for r in totals}}}
    trending = [(str(i), float(s)) for i, s in trending_list(state, settings.trending_top_n)]
    popular_rows = (
        transforms.item_popularity(
            events.where(F.col(c.EVENT_TIME) < F.lit(cutoff)),
            as_of=cutoff,
            window_days=settings.popularity_window_days,
            weights=settings.event_weights,
        )
        .where(F.col(c.RANK) <= POPULAR_LIST_LENGTH)
        .select(c.ITEM_ID, c.N_USERS, c.RANK)
        .collect()
    )
    popular = [(r[0], float(r[1])) for r in sorted(popular_rows, key=lambda r: r[2])]
    wanted = sorted({i for i, _ in trending} | {i for i, _ in popular})
    entries = {}
    if wanted:
        for r in (
            catalog.where(F.col(c.ITEM_ID).isin(wanted))
            .select(c.ITEM_ID, c.TITLE, c.CATEGORY, c.AVAILABLE)
            .collect()
        ):
            entries[r[0]] = ItemInfo(r[1], r[2], bool(r[3]))
    return trending, popular, entries


def state_at_cut(
    split: EvalSplit,
    settings: Settings,
    *,
    als: DataFrame,
    neighbours: DataFrame,
    catalog: DataFrame,
    k: int,
    users: DataFrame | None = None,
    shared: tuple | None = None,
) -> ServedState:
    """Each evaluated user's blend inputs as of ``split.cutoff``.

    ``als``: (user_key, item_id, score, rank) of the model fitted on the training part, at
    least ``max(blend_candidates_per_source, k)`` deep; ``neighbours``: (kind, item_id,
    neighbour_id, score, rank) of every kind the publication would carry; ``catalog``:
    (item_id, title, category, available); ``users``: a subset of the split's users (default
    all); ``shared``: shared_lists() of this cut, when already computed."""
    config = BlendConfig.from_settings(settings, k)
    users = (users if users is not None else split.users).select(c.USER_KEY).distinct()
    recent = recent_rows(
        split.train_events, users, split.cutoff, config, settings.event_weights
    ).cache()
    anchored = anchor_rows(recent, config)
    nbr = anchored.join(
        neighbours.select(
            c.KIND,
            F.col(c.ITEM_ID).alias(_ANCHOR),
            F.col(c.NEIGHBOUR_ID).alias(c.ITEM_ID),
            c.SCORE,
            c.RANK,
        ),
        _ANCHOR,
    )
    trending, popular, entries = shared or shared_lists(
        split.train_events, split.cutoff, settings, catalog
    )
    purchased = purchased_rows(split, users, config)
    return ServedState(
        als=rows_of_als(als, users, catalog, config),
        neighbours=_as_rows(_with_catalog(nbr, catalog), NBR).unionByName(purchased),
        recent=_as_rows(_with_catalog(recent.drop("_n"), catalog), RECENT),
        users=users,
        cutoff=split.cutoff,
        config=config,
        trending=trending,
        popular=popular,
        catalog=entries,
        cached=(recent,),
    )


def purchased_rows(split: EvalSplit, users: DataFrame, config: BlendConfig) -> DataFrame:
    """The publication's purchased set of each user as of the cut (pipelines/publish.py
    ``purchased_sets``: items bought in the training part, the newest
    ``purchased_max_items``), which the API drops from every source by default."""
    strength = split.train_strength
    if not {c.PURCHASED, c.LAST_EVENT_TIME} <= set(strength.columns):
        return _as_rows(strength.limit(0).select(c.USER_KEY, c.ITEM_ID), PURCHASED)
    order = Window.partitionBy(c.USER_KEY).orderBy(F.desc(c.LAST_EVENT_TIME), c.ITEM_ID)
    bought = (
        strength.where(F.col(c.PURCHASED))
        .join(users, c.USER_KEY, "left_semi")
        .withColumn("_n", F.row_number().over(order))
        .where(F.col("_n") <= config.purchased_max_items)
        .select(c.USER_KEY, c.ITEM_ID)
    )
    return _as_rows(bought, PURCHASED)


def rows_of_als(
    als: DataFrame, users: DataFrame, catalog: DataFrame, config: BlendConfig
) -> DataFrame:
    """The ALS part of a state's rows: each user's top ``per_source`` with catalog entries."""
    top = als.where(F.col(c.RANK) <= config.per_source).join(users, c.USER_KEY, "left_semi")
    return _as_rows(_with_catalog(top, catalog), ALS)


# --------------------------------------------------------------------------- per user (pure)


def _value(v):
    """None for pandas' missing values (NaN, NaT, pd.NA), the value otherwise."""
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def inputs_of(
    rows: pd.DataFrame,
    *,
    cutoff: float,
    config: BlendConfig,
    trending: Sequence[tuple[str, float]],
    popular: Sequence[tuple[str, float]],
    catalog: Mapping[str, ItemInfo],
) -> Inputs:
    """One user's ``Inputs`` from their rows (ROWS_SCHEMA), as ``_read`` builds them from
    Redis. ``cutoff``: epoch seconds of the cut."""
    entries = dict(catalog)
    for item, in_cat, title, category, available in zip(
        rows[c.ITEM_ID],
        rows[_IN_CATALOG],
        rows[c.TITLE],
        rows[c.CATEGORY],
        rows[c.AVAILABLE],
        strict=True,
    ):
        if _value(in_cat) and item not in entries:
            entries[item] = ItemInfo(_value(title), _value(category), bool(_value(available)))
    part = rows[_PART]

    als_rows = rows[part == ALS].sort_values(c.RANK, kind="stable")
    als = [(str(i), float(s)) for i, s in zip(als_rows[c.ITEM_ID], als_rows[c.SCORE], strict=True)]

    chain = _chain(rows[part == RECENT], cutoff, config.ttl_seconds, entries)
    # the streaming job routes hides/dislikes to the hidden set only (never recent/affinity)
    negative = [e for e in chain if e.event_type in config.negative_types]
    events = [e for e in chain if e.event_type not in config.negative_types]
    recent_docs = merge_recent([], events, config.recent_n)
    recent = [RecentEvent(d["item_id"], d["event_type"] or "view", d["ts"]) for d in recent_docs]
    affinity: dict[str, float] = {}
    if events:
        doc = merge_affinity(
            None,
            events,
            as_of=cutoff,
            half_life_seconds=config.half_life_seconds,
            session_gap_seconds=config.session_gap_seconds,
        )
        affinity = {str(k): float(v) for k, v in doc["categories"].items()}

    hidden = frozenset(i for i, _ in merge_hidden([], negative, config.hidden_max_items))
    purchased = frozenset(str(i) for i in rows.loc[part == PURCHASED, c.ITEM_ID])
    used = {a.item_id for a in anchors(recent, config.n_anchors, config.not_anchor_types, hidden)}
    nbr_rows = rows[part == NBR].sort_values([c.KIND, _ANCHOR, c.RANK], kind="stable")
    neighbours: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for kind, anchor, item, score in zip(
        nbr_rows[c.KIND], nbr_rows[_ANCHOR], nbr_rows[c.ITEM_ID], nbr_rows[c.SCORE], strict=True
    ):
        if anchor in used:
            neighbours.setdefault((kind, anchor), []).append((str(item), float(score)))
    return Inputs(
        als=als[: config.per_source],
        recent=recent,
        neighbours=neighbours,
        trending=list(trending[: config.per_source]),
        popular=list(popular[: config.per_source]),
        category_affinity=affinity,
        catalog=entries,
        purchased=purchased,
        hidden=hidden,
    )


def _chain(
    rows: pd.DataFrame, cutoff: float, ttl: float, catalog: Mapping[str, ItemInfo]
) -> list[Event]:
    """The events the real-time documents hold at ``cutoff``: a document expires ``ttl``
    seconds after its last write, so only the events after the last longer gap (or none,
    when the newest is older than ``ttl``) count. Categories as the streaming job's lookup
    gives them (the catalog's)."""
    if rows.empty:
        return []
    events = sorted(
        (
            Event(
                str(e),
                str(i),
                str(t),
                float(ts),
                (catalog.get(str(i)) or ItemInfo()).category,
                float(_value(w) or 0.0),
            )
            for e, i, t, ts, w in zip(
                rows[c.EVENT_ID],
                rows[c.ITEM_ID],
                rows[c.EVENT_TYPE],
                rows[_TS],
                rows[_WEIGHT],
                strict=True,
            )
        ),
        key=lambda e: (e.ts, e.event_id),
    )
    if cutoff - events[-1].ts > ttl:
        return []
    start = 0
    for n in range(1, len(events)):
        if events[n].ts - events[n - 1].ts > ttl:
            start = n
    return events[start:]


def ndcg_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Binary-gain NDCG@k exactly as models.evaluation.RankingEvaluation computes it (a user
    without relevant items scores 0)."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def blend_user(
    inputs: Inputs, weights: Weights, config: BlendConfig, rules: ActiveRules | None = None
):
    """THE ranker's call, as the API makes it for a request without filters (``rules``: the
    merchandising rules live at the cut, as the API passes them)."""
    return blend(
        inputs,
        weights=weights,
        filters=Filters(
            max_per_category=config.max_per_category, exclude_purchased=config.exclude_purchased
        ),
        k=config.k,
        n_anchors=config.n_anchors,
        not_anchor_types=config.not_anchor_types,
        rules=rules,
    )


# --------------------------------------------------------------------------- replay and tuning


def _grouped(state: ServedState, extra: DataFrame | None = None):
    rows = state.rows if extra is None else state.rows.unionByName(extra)
    # every user gets a group, even one with no row of any source (trending/popular only)
    present = state.users.select(c.USER_KEY)
    return rows.unionByName(_as_rows(present, "user")).groupBy(c.USER_KEY)


def replay(state: ServedState, weights: Weights, rules: RulesDocument | None = None) -> DataFrame:
    """(user_key, item_id, score, rank, source): ``blend``'s top k for every user of
    ``state`` with ``weights``, and the merchandising ``rules`` (recolake/rules.py) as the
    recommendations endpoint applies them at the cut: what a promotion costs or earns offline.
    A pinned item outside ``state.catalog`` is served like an item of unknown category."""
    config, cutoff = state.config, state.cutoff.timestamp()
    at = state.cutoff if state.cutoff.tzinfo else state.cutoff.replace(tzinfo=UTC)  # UTC cut
    active = rules.active("recommendations", at) if rules is not None else None
    trending, popular, catalog = state.trending, state.popular, state.catalog

    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        user = pdf[c.USER_KEY].iloc[0]
        inputs = inputs_of(
            pdf, cutoff=cutoff, config=config, trending=trending, popular=popular, catalog=catalog
        )
        ranked = blend_user(inputs, weights, config, active)
        return pd.DataFrame(
            {
                c.USER_KEY: [user] * len(ranked),
                c.ITEM_ID: [r.item_id for r in ranked],
                c.SCORE: [float(r.score) for r in ranked],
                c.RANK: pd.Series(range(1, len(ranked) + 1), dtype="int32"),
                c.SOURCE: [r.source for r in ranked],
            }
        )

    return _grouped(state).applyInPandas(per_user, REPLAY_SCHEMA)


def weight_grid(step: float, names: Sequence[str] = TUNED) -> list[Weights]:
    """Weights on the simplex over ``names`` in multiples of ``step`` (models.hybrid's grid);
    the other sources weigh 0, affinity and anchor decay keep their defaults."""
    from models.hybrid import weight_grid as simplex

    off = dict.fromkeys(TUNED, 0.0)
    return [Weights.from_mapping({**off, **point}) for point in simplex(list(names), step)]


def sample_users(users: DataFrame, limit: int, seed: int) -> DataFrame:
    """At most ``limit`` users, the same ones for the same seed (smallest seeded hash)."""
    keyed = users.select(c.USER_KEY).distinct()
    order = F.xxhash64(F.lit(seed), F.col(c.USER_KEY))
    return keyed.orderBy(order, c.USER_KEY).limit(limit)


@dataclass(frozen=True)
class Tuned:
    """The grid's outcome: best first (ties broken by grid order)."""

    ranked: list[tuple[Weights, float]]
    users: int

    @property
    def best(self) -> tuple[Weights, float]:
        return self.ranked[0]


def tune(state: ServedState, truth: DataFrame, grid: Sequence[Weights]) -> Tuned:
    """NDCG@k of ``blend`` under every weight vector of ``grid``, averaged over the users of
    ``state``, in one pass: each worker builds a user's Inputs once and blends them per grid
    point against that user's truth items (binary gain, as RankingEvaluation)."""
    if not grid:
        raise ValueError("tune needs at least one grid point")
    config, cutoff = state.config, state.cutoff.timestamp()
    trending, popular, catalog = state.trending, state.popular, state.catalog
    points = list(grid)
    truth_rows = _as_rows(
        truth.join(state.users, c.USER_KEY, "left_semi").select(c.USER_KEY, c.ITEM_ID), TRUTH
    )

    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        user = pdf[c.USER_KEY].iloc[0]
        relevant = set(pdf.loc[pdf[_PART] == TRUTH, c.ITEM_ID])
        rows = pdf[pdf[_PART] != TRUTH]
        inputs = inputs_of(
            rows, cutoff=cutoff, config=config, trending=trending, popular=popular, catalog=catalog
        )
        values = [
            ndcg_at_k([r.item_id for r in blend_user(inputs, w, config)], relevant, config.k)
            for w in points
        ]
        return pd.DataFrame(
            {
                _COMBO: pd.Series(range(len(points)), dtype="int32"),
                c.USER_KEY: [user] * len(points),
                "ndcg": values,
            }
        )

    scored = _grouped(state, truth_rows).applyInPandas(per_user, TUNING_SCHEMA)
    n_users = state.users.join(truth_rows, c.USER_KEY, "left_semi").count()
    if n_users == 0:
        raise ValueError("no user of the tuning state has ground truth")
    # users without truth score 0 in the sum but do not count: only truth users are averaged
    with_truth = scored.join(truth_rows.select(c.USER_KEY).distinct(), c.USER_KEY, "left_semi")
    sums = {r[0]: float(r[1]) for r in with_truth.groupBy(_COMBO).agg(F.sum("ndcg")).collect()}
    means = [(w, sums.get(i, 0.0) / n_users) for i, w in enumerate(points)]
    order = sorted(range(len(points)), key=lambda i: (-round(means[i][1], 12), i))
    return Tuned([means[i] for i in order], n_users)
