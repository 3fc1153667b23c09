"""The impressions' group commit (online/services/impressions.py): concurrent requests share
appends, every impression lands in the event log exactly once, and a failing log never fails
the request."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime

from online.services import impressions as imp
from recolake.eventlog import IMPRESSION, RECORD, LocalEventLog, record_key
from tests.conftest import make_settings


def impression(n: int) -> imp.Impression:
    body = {
        "recommendation_id": f"rec-{n}",
        "user_id": f"user-{n}",
        "session_id": None,
        "experiment": "exp",
        "variant": "b" if n % 2 else "a",
        "items": [{"item_id": f"i{n}", "source": "als"}, {"item_id": "p1", "source": "popular"}],
        "model_version": "7",
        "publication": "v7",
    }
    made = imp.impression_of(body, "recommendations", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert made is not None
    return made


class CountingLog:
    """A real LocalEventLog that counts its appends (and how many run at once)."""

    def __init__(self, directory) -> None:
        self.log = LocalEventLog(directory)
        self.appends = 0
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def append(self, records):
        with self.lock:
            self.appends += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(0.005)  # an fsync's worth
            return self.log.append(records)
        finally:
            with self.lock:
                self.running -= 1

    def close(self) -> None:
        pass


def landed(directory) -> list[dict]:
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.open()]


def test_impression_record_is_the_contract():
    record = impression(3).as_record()
    assert record == {
        "record": "impression",
        "recommendation_id": "rec-3",
        "user_id": "user-3",
        "session_id": None,
        "experiment": "exp",
        "variant": "b",
        "endpoint": "recommendations",
        "items": [
            {"item_id": "i3", "position": 1, "source": "als"},
            {"item_id": "p1", "position": 2, "source": "popular"},
        ],
        "model_version": "7",
        "publication": "v7",
        "timestamp": "2026-01-02T03:04:05.000Z",
    }
    assert record_key(record) == "rec-3" and record[RECORD] == IMPRESSION
    # Nothing to credit: no id, or no items.
    assert imp.impression_of({"items": [{"item_id": "x"}]}, "similar", datetime.now(UTC)) is None
    assert (
        imp.impression_of({"recommendation_id": "r", "items": []}, "similar", datetime.now(UTC))
        is None
    )


def test_concurrent_requests_share_appends_and_each_impression_lands_once(tmp_path):
    n = 200
    counting = CountingLog(tmp_path)

    async def main():
        log = imp.ImpressionLog(counting, flush_seconds=0.02, batch_max=64)
        await log.start()
        results = await asyncio.gather(*(log.log(impression(i)) for i in range(n)))
        await log.stop()
        return log, results

    log, results = asyncio.run(main())
    assert results == [True] * n
    assert log.stored == n and log.failed == 0
    # Group commit: a handful of appends (each at most batch_max), one at a time.
    assert counting.appends == log.appends
    assert -(-n // 64) <= counting.appends <= n // 10, counting.appends
    assert counting.most_at_once == 1
    ids = [r["recommendation_id"] for r in landed(tmp_path)]
    assert sorted(ids) == sorted(f"rec-{i}" for i in range(n))  # every one, exactly once


def test_a_request_waits_until_its_impression_is_durable(tmp_path):
    """When log() returns, the record is in a landed (renamed, fsynced) file; and a lone
    request waits about flush_ms, not longer."""
    counting = CountingLog(tmp_path)

    async def main():
        log = imp.ImpressionLog(counting, flush_seconds=0.05, batch_max=64)
        await log.start()
        started = time.perf_counter()
        assert await log.log(impression(1))
        waited = time.perf_counter() - started
        on_disk = [r["recommendation_id"] for r in landed(tmp_path)]
        assert await log.log(impression(2))
        await log.stop()
        return waited, on_disk

    waited, on_disk = asyncio.run(main())
    assert on_disk == ["rec-1"]
    assert 0.04 <= waited < 1.0, waited


def test_a_full_batch_is_flushed_without_waiting_for_the_timer(tmp_path):
    counting = CountingLog(tmp_path)

    async def main():
        log = imp.ImpressionLog(counting, flush_seconds=30.0, batch_max=8)
        await log.start()
        started = time.perf_counter()
        ok = await asyncio.gather(*(log.log(impression(i)) for i in range(8)))
        took = time.perf_counter() - started
        await log.stop()
        return ok, took

    ok, took = asyncio.run(main())
    assert ok == [True] * 8 and took < 5.0 and counting.appends == 1


def test_stop_appends_what_is_pending(tmp_path):
    counting = CountingLog(tmp_path)

    async def main():
        log = imp.ImpressionLog(counting, flush_seconds=30.0, batch_max=100)
        await log.start()
        waiting = [asyncio.create_task(log.log(impression(i))) for i in range(5)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in waiting)  # the timer is 30 s
        await log.stop()
        return [t.result() for t in waiting]

    assert asyncio.run(main()) == [True] * 5
    assert len(landed(tmp_path)) == 5


class FailingLog:
    def __init__(self) -> None:
        self.calls = 0

    def append(self, records):
        self.calls += 1
        raise OSError("disk full")

    def close(self) -> None:
        pass


def impressions_counted(variant: str, outcome: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"variant": variant, "outcome": outcome}
    return REGISTRY.get_sample_value("recolake_impressions_total", labels) or 0.0


def test_a_failing_log_does_not_raise_into_the_request_and_is_counted(caplog):
    failing = FailingLog()
    before = impressions_counted("a", "failed"), impressions_counted("b", "failed")

    async def main():
        log = imp.ImpressionLog(failing, flush_seconds=0.01, batch_max=10)
        await log.start()
        results = await asyncio.gather(*(log.log(impression(i)) for i in range(25)))
        await log.stop()
        return log, results

    log, results = asyncio.run(main())
    assert results == [False] * 25
    assert log.failed == 25 and log.stored == 0 and failing.calls >= 3
    after = impressions_counted("a", "failed"), impressions_counted("b", "failed")
    assert (after[0] - before[0], after[1] - before[1]) == (13, 12)  # /metrics, per variant
    assert "impression log append failed" in caplog.text and "disk full" in caplog.text


def test_disabled_logs_nothing(tmp_path):
    counting = CountingLog(tmp_path)
    settings = make_settings(tmp_path, impressions_enabled=False, impressions_flush_ms=5)

    async def main():
        log = imp.ImpressionLog.from_settings(settings, counting)
        await log.start()
        ok = await log.log(impression(1))
        await log.stop()
        return log, ok

    log, ok = asyncio.run(main())
    assert ok is False and counting.appends == 0 and log.flush_seconds == 0.005


def test_log_impression_finds_its_apps_log_and_needs_one(tmp_path):
    counting = CountingLog(tmp_path)
    settings = make_settings(tmp_path)
    other = make_settings(tmp_path)
    body = impression(4).as_record() | {"items": [{"item_id": "x", "source": "als"}]}

    async def main():
        log = imp.ImpressionLog.from_settings(settings, counting)
        await log.start()
        imp.install(settings, log)
        try:
            mine = await imp.log_impression(settings, body, "recommendations")
            foreign = await imp.log_impression(other, body, "recommendations")  # no app
        finally:
            imp.uninstall(settings)
            await log.stop()
        return mine, foreign

    assert asyncio.run(main()) == (True, False)
    assert [r["items"] for r in landed(tmp_path)] == [
        [{"item_id": "x", "position": 1, "source": "als"}]
    ]
