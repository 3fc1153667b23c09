"""Impressions: every served list, logged through the event log before the answer leaves.

A recommendations (or similar-items) response with a ``recommendation_id`` is logged as one
impression record (recolake.eventlog.Impression) in the same event log as events; the
streaming job lands it in bronze.impressions, silver explodes it into silver.impressions and
the attribution job credits events to it.

Durability without an fsync per request: group commit. A request hands its record to the
app's ImpressionLog and awaits a future; one flusher task appends whatever has gathered (at
most ``impressions_batch_max`` records, after at most ``impressions_flush_ms`` since the
oldest one arrived) in one ``EventLog.append`` and resolves every future of that group. So
the answer leaves only once its impression is durable, and N concurrent requests cost about
one append per flush window instead of N.

An impression is telemetry: if the event log fails (or raises anything), the recommendation
is still answered; the error is logged and counted (``failed``), never raised into the
request. Both outcomes are counted per variant in /metrics (``recolake_impressions_total``).
With ``impressions_enabled`` false nothing is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from online.metrics import record_impression
from recolake.eventlog import EventLog, Impression, ImpressionItem
from recolake.experiments import DEFAULT_VARIANT
from recolake.settings import Settings
from recolake.validation import format_timestamp

log = logging.getLogger("recolake.impressions")


def impression_of(body: Mapping[str, Any], endpoint: str, now: datetime) -> Impression | None:
    """The impression of a response document, or None when there is nothing to credit (no
    recommendation id, no items)."""
    recommendation_id = body.get("recommendation_id")
    items = body.get("items") or ()
    if not recommendation_id or not items:
        return None
    return Impression(
        recommendation_id=str(recommendation_id),
        user_id=body.get("user_id"),
        session_id=body.get("session_id"),
        experiment=body.get("experiment"),
        variant=str(body.get("variant") or DEFAULT_VARIANT),
        endpoint=endpoint,
        items=tuple(
            ImpressionItem(str(item["item_id"]), position, str(item.get("source", "")))
            for position, item in enumerate(items, start=1)
        ),
        model_version=body.get("model_version"),
        publication=str(body.get("publication") or ""),
        timestamp=format_timestamp(now),
    )


@dataclass(eq=False)
class _Entry:
    record: dict[str, Any]
    future: asyncio.Future[bool]
    enqueued: float  # loop time


@dataclass(eq=False)
class ImpressionLog:
    """The group-commit buffer in front of the event log (one per app, on its event loop)."""

    event_log: EventLog
    flush_seconds: float = 0.02
    batch_max: int = 256
    enabled: bool = True
    #: Records durably appended / lost to a failing log, and appends made (for /metrics).
    stored: int = 0
    failed: int = 0
    appends: int = 0
    _pending: list[_Entry] = field(default_factory=list, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _closing: bool = field(default=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _full: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, event_log: EventLog) -> ImpressionLog:
        return cls(
            event_log,
            flush_seconds=settings.impressions_flush_ms / 1000.0,
            batch_max=settings.impressions_batch_max,
            enabled=settings.impressions_enabled,
        )

    async def start(self) -> None:
        """Start the flusher on the running loop (the app's lifespan)."""
        if self.enabled and self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="impression-flusher")

    async def stop(self) -> None:
        """Append what is pending, then stop the flusher (before the event log closes)."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        self._full.set()
        await self._task
        self._task = None

    async def log(self, impression: Impression) -> bool:
        """Wait until the impression is durable in the event log. True once stored; False
        when disabled or the log failed (logged and counted, never raised)."""
        if not self.enabled:
            return False
        record = impression.as_record()
        if self._task is None or self._task.done():  # not started (a bare service call)
            return await self._append([record])
        loop = asyncio.get_running_loop()
        entry = _Entry(record, loop.create_future(), loop.time())
        self._pending.append(entry)
        self._wake.set()
        if len(self._pending) >= self.batch_max:
            self._full.set()
        # A cancelled request cancels only its wait: the record stays in its group.
        return await entry.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._pending[0].enqueued + self.flush_seconds - loop.time()
            if wait > 0 and len(self._pending) < self.batch_max and not self._closing:
                self._full.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._full.wait()
                except TimeoutError:
                    pass
            group = self._pending[: self.batch_max]
            del self._pending[: self.batch_max]
            ok = await self._append([e.record for e in group])
            for entry in group:
                if not entry.future.done():
                    entry.future.set_result(ok)

    async def _append(self, records: list[dict[str, Any]]) -> bool:
        self.appends += 1
        try:
            await asyncio.to_thread(self.event_log.append, records)
        except Exception as exc:  # telemetry: the answer goes out anyway
            self.failed += len(records)
            for record in records:
                record_impression(record.get("variant"), stored=False)
            log.error(
                "impression log append failed, %d impression(s) lost (%d so far): %s: %s",
                len(records),
                self.failed,
                type(exc).__name__,
                exc,
            )
            return False
        self.stored += len(records)
        for record in records:
            record_impression(record.get("variant"), stored=True)
        return True


#: The ImpressionLog of each running app, by (its settings object, its event loop): a service
#: gets the settings its app was created with, and the log's futures belong to one loop.
_INSTALLED: dict[tuple[int, int], ImpressionLog] = {}


def _slot(settings: Settings) -> tuple[int, int]:
    return id(settings), id(asyncio.get_running_loop())


def install(settings: Settings, impressions: ImpressionLog) -> None:
    """Make ``impressions`` the log of the app created with ``settings`` (its lifespan)."""
    _INSTALLED[_slot(settings)] = impressions


def uninstall(settings: Settings) -> None:
    _INSTALLED.pop(_slot(settings), None)


async def log_impression(
    settings: Settings, body: Mapping[str, Any], endpoint: str = "recommendations"
) -> bool:
    """Log the response document ``body`` as an impression through its app's ImpressionLog
    and wait until it is durable. False, without raising, when there is no app log (a
    service called outside an app), nothing to log, or the log failed."""
    impressions = _INSTALLED.get(_slot(settings))
    if impressions is None:
        return False
    impression = impression_of(body, endpoint, datetime.now(UTC))
    if impression is None:
        return False
    return await impressions.log(impression)
