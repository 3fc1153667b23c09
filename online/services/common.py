"""What the recommendation and item services share: the weights a request ranks with, the
declared experiment, filters, Redis errors as answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace
from functools import lru_cache
from typing import Literal, TypeVar

from redis.exceptions import RedisError

from online.services import UnavailableError
from recolake.experiments import Experiment, Variant
from recolake.experiments import load as load_experiment
from recolake.onlinestore.reader import NothingPublishedError, Publication
from recolake.ranking import Filters, Weights
from recolake.settings import Settings

log = logging.getLogger("recolake.api")

T = TypeVar("T")

#: Retry-After (seconds) while Redis does not answer in time: a stall is usually short.
RETRY_AFTER_REDIS = 1
#: Retry-After while nothing is published (an operator has to run publish/republish).
RETRY_AFTER_UNPUBLISHED = 30


#: Blend weight -> the setting that overrides it (RECOLAKE_BLEND_WEIGHT_<NAME>).
WEIGHT_SETTINGS = {
    "als": "blend_weight_als",
    "neighbours": "blend_weight_neighbours",
    "content": "blend_weight_content",
    "trending": "blend_weight_trending",
    "popular": "blend_weight_popular",
    "affinity": "blend_weight_affinity",
}

#: The response's ``weights_source`` (online/schemas.py documents each).
WeightsSource = Literal["publication", "settings", "experiment", "default"]


def settings_override(settings: Settings) -> dict[str, float]:
    """The blend weights set explicitly (env, .env or constructor), not left at their
    defaults: only those override the publication's."""
    explicit = settings.model_fields_set
    return {w: getattr(settings, s) for w, s in WEIGHT_SETTINGS.items() if s in explicit}


def weights_for(
    settings: Settings, publication: Publication, variant: Variant | None = None
) -> tuple[Weights, WeightsSource]:
    """The weights one request ranks with, and where they came from: the publication's
    (chosen by the evaluation for its model, or the defaults if it carried none), then the
    explicitly set settings over them, then the experiment variant's over those."""
    weights = publication.weights
    source: WeightsSource = (
        "publication" if publication.weights_source == "evaluation" else "default"
    )
    override = settings_override(settings)
    if override:
        weights, source = replace(weights, **override), "settings"
    if variant is not None and variant.weights:
        weights, source = variant.apply(weights), "experiment"
    return weights, source


@lru_cache(maxsize=8)
def _experiment(path: str) -> Experiment:
    return load_experiment(path)


def experiment_of(settings: Settings) -> Experiment | None:
    """The declared experiment (settings.experiments_file), read once per process;
    ExperimentConfigError if the file is unreadable or invalid (the app checks at start-up)."""
    path = settings.experiments_file
    return _experiment(path) if path else None


def filters_of(settings: Settings, exclude: frozenset[str], category: str | None) -> Filters:
    return Filters(exclude, category, settings.max_per_category)


async def guarded(call: Awaitable[T], deadline: float) -> T:
    """Await a Reader call; Redis faults become 503 + Retry-After (never a 500, never an
    unbounded wait: the client's connect/socket/pool timeouts bound every command, and
    ``deadline`` bounds the whole call, however many commands and reconnects it takes)."""
    try:
        async with asyncio.timeout(deadline):
            return await call
    except NothingPublishedError as exc:
        raise UnavailableError(str(exc), RETRY_AFTER_UNPUBLISHED) from exc
    except (TimeoutError, RedisError, OSError) as exc:
        raise UnavailableError(
            f"recommendation store unavailable: {type(exc).__name__}: {exc}", RETRY_AFTER_REDIS
        ) from exc
    except ValueError as exc:  # a stored document that breaks the contract
        log.error("malformed online-store document: %s", exc)
        raise UnavailableError(
            f"recommendation store returned a malformed document: {exc}", RETRY_AFTER_REDIS
        ) from exc
