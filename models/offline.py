"""Every model's ranked lists on one evaluation split, each trained on that split's past only.

Used twice by `recolake evaluate`: on the validation split (to choose the hybrid's weights;
the served blend's are chosen by models/served.py on the same split) and on the test split
(to measure everything), and by `recolake train` to tune ALS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyspark.sql import DataFrame

from features import transforms
from models.als import ALSParams, Indexes, recommend, train_als
from models.baselines import popular_for_users, popular_in_user_categories, trending_items
from models.evaluation import EvalSplit
from models.item_cf import history_and_basket_neighbours, merge_kinds, score_from_neighbours
from models.user_cf import user_cf_lists
from recolake.settings import Settings

log = logging.getLogger("recolake.offline")

#: Every model `recolake evaluate` knows, in report order ("hybrid" is built from the others).
MODELS = (
    "als",
    "item_cf",
    "user_cf",
    "content",
    "popularity",
    "popularity_by_category",
    "trending",
    "trending_by_category",
)


def als_lists(
    split: EvalSplit,
    params: ALSParams,
    depth: int,
    indexes: Indexes | None = None,
    training: DataFrame | None = None,
) -> DataFrame:
    """ALS fitted on the split's training strength, top-``depth`` for the evaluated users.

    ``indexes``, ``training``: the split's id maps and encoded strength when several fits
    share them (the tuning trials)."""
    indexes = indexes or Indexes.build(split.train_strength)
    model = train_als(split.train_strength, indexes, params, training=training)
    return recommend(model, indexes, split.users, split.train_strength, depth)


def model_lists(
    split: EvalSplit,
    settings: Settings,
    *,
    als_params: ALSParams,
    content_neighbours: DataFrame | None,
    catalog: DataFrame,
    depth: int,
    models: Iterable[str] = MODELS,
    fitted: dict[str, DataFrame] | None = None,
    cf_neighbours: DataFrame | None = None,
) -> dict[str, DataFrame]:
    """{model: (user_key, item_id, score, rank) with rank <= depth} for the evaluated users.

    Content neighbours come from the catalog only (no interactions), so the --ds table
    leaks nothing about the hold-out; a missing table leaves the content model out.
    ``fitted``: lists already computed on this very split (the tuning's ALS fit), used as
    they are instead of fitting again; ``cf_neighbours``: the split's item-CF neighbours
    (models.served.cf_neighbours: kind, item_id, neighbour_id, score, rank) when the served
    replay needs them too, so they are computed once."""
    fitted = fitted or {}
    wanted = list(models)
    unknown = set(wanted) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; known: {MODELS}")
    s, cutoff = settings, split.cutoff
    strength, users = split.train_strength, split.users
    out: dict[str, DataFrame] = {}
    popularity = trending = None
    if {"popularity", "popularity_by_category"} & (set(wanted) - set(fitted)):
        popularity = transforms.item_popularity(
            split.train_events,
            as_of=cutoff,
            window_days=s.popularity_window_days,
            weights=s.event_weights,
        )
    if {"trending", "trending_by_category"} & (set(wanted) - set(fitted)):
        trending = trending_items(
            split.train_events,
            cutoff,
            s.trending_window_days,
            s.trending_half_life_days,
            s.event_weights,
        )
    for name in wanted:
        if name in fitted:
            out[name] = fitted[name]
        elif name == "als":
            out[name] = als_lists(split, als_params, depth)
        elif name == "item_cf":
            if cf_neighbours is not None:
                merged = merge_kinds({"all": cf_neighbours})
            else:
                kinds = history_and_basket_neighbours(
                    strength,
                    split.train_events,
                    top_n=s.neighbours_top_n,
                    min_support=s.cf_min_support,
                    max_items=s.cf_max_items_per_group,
                )
                merged = merge_kinds(kinds)
            out[name] = score_from_neighbours(split.history, merged, depth)
        elif name == "user_cf":
            out[name] = user_cf_lists(
                strength,
                depth,
                top_n=s.user_cf_neighbours,
                max_items_per_user=s.cf_max_items_per_group,
                max_users_per_item=s.user_cf_max_users_per_item,
                users=users,
                exclude=split.history,
            )
        elif name == "content":
            if content_neighbours is None or content_neighbours.isEmpty():
                log.info("no content neighbours: the content model is not evaluated")
                continue
            out[name] = score_from_neighbours(split.history, content_neighbours, depth)
        elif name in ("popularity", "trending"):
            ranking = popularity if name == "popularity" else trending
            out[name] = popular_for_users(users, ranking, strength, depth)
        else:
            ranking = popularity if name == "popularity_by_category" else trending
            out[name] = popular_in_user_categories(users, ranking, catalog, strength, depth)
    return out
