"""What the recommendation and item services share: filters, Redis errors as answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import RedisError

from online.services import UnavailableError
from recolake.onlinestore.reader import NothingPublishedError
from recolake.ranking import Filters, Weights
from recolake.settings import Settings

log = logging.getLogger("recolake.api")

T = TypeVar("T")

#: Retry-After (seconds) while Redis does not answer in time: a stall is usually short.
RETRY_AFTER_REDIS = 1
#: Retry-After while nothing is published (an operator has to run publish/republish).
RETRY_AFTER_UNPUBLISHED = 30


def weights_of(settings: Settings) -> Weights:
    return Weights(
        als=settings.blend_weight_als,
        neighbours=settings.blend_weight_neighbours,
        content=settings.blend_weight_content,
        trending=settings.blend_weight_trending,
        popular=settings.blend_weight_popular,
        affinity=settings.blend_weight_affinity,
    )


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
