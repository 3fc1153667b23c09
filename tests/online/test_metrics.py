"""GET /metrics: scraped from the real API over a real Redis, parsed as Prometheus does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from online import metrics
from online.metrics_dir import MULTIPROC_ENV, prepare_multiprocess
from recolake.onlinestore import KeyLayout
from recolake.onlinestore.reader import Reader
from recolake.onlinestore.stream import StreamProgress, decode_progress, write_progress
from tests.conftest import TEST_KEY, free_port, make_settings
from tests.online.conftest import publish_sample

USER_ROUTE = "/v1/recommendations/{user_id}"
VISITOR_ROUTE = "/v1/recommendations"
ROOT = Path(__file__).resolve().parents[2]


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of one scrape (asserts it answered 200)."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def total(scraped: dict, name: str, **labels: str) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and want <= set(ls))


@pytest.fixture
def published(redis_client, redis_server, tmp_path):
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    publish_sample(redis_server.url, settings)
    return settings


@pytest.mark.redis
def test_counters_move_by_exactly_the_requests_made(published, api_server_factory, redis_client):
    layout = KeyLayout(published.redis_namespace)
    lake = StreamProgress(batch_id=41, duration_seconds=2.5, ended_at=1_700_000_100.0, rows=7)
    redis_progress = StreamProgress(3, 0.125, 1_700_000_050.0, 12, newest_event_at=1_700_000_040.0)
    write_progress(redis_client, layout, "redis", redis_progress)
    write_progress(redis_client, layout, "lake", lake)
    api = api_server_factory(published)
    before = scrape(api.url)

    bodies = []
    for path, params in (
        ("/v1/recommendations/alice", {"k": 5}),  # ALS then popular
        ("/v1/recommendations/alice", {"k": 20}),  # short: few candidates
        ("/v1/recommendations", {"session_id": "s1", "k": 3}),  # cold start: popular only
    ):
        response = httpx.get(f"{api.url}{path}", params=params)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    assert httpx.get(f"{api.url}/v1/recommendations/alice", params={"k": 0}).status_code == 422
    assert httpx.get(f"{api.url}/v1/nowhere/alice").status_code == 404
    after = scrape(api.url)

    requests = "recolake_http_requests_total"
    for route, status, n in (
        (USER_ROUTE, "200", 2),
        (USER_ROUTE, "422", 1),
        (VISITOR_ROUTE, "200", 1),
        ("unmatched", "404", 1),
        ("/metrics", "200", 1),  # the first scrape (a scrape counts once it has answered)
    ):
        labels = {"method": "GET", "route": route, "status": status}
        assert delta(before, after, requests, **labels) == n, (route, status)
        latency = "recolake_http_request_duration_seconds_count"
        assert delta(before, after, latency, **labels) == n, (route, status)
    assert total(after, requests) - total(before, requests) == 6  # nothing else counted
    assert not any("alice" in str(key) for key in after)  # route templates, never raw paths

    served = Counter(item["source"] for body in bodies for item in body["items"])
    assert served["als"] == 6 and served["popular"] > 0  # the bodies say what was served
    for source in ("als", "co_view", "bought_together", "content", "trending", "popular"):
        name = "recolake_recommended_items_total"
        assert delta(before, after, name, source=source) == served[source], source

    short = Counter(body["short"]["reason"] for body in bodies if body.get("short"))
    assert short["few_candidates"] >= 1
    popular_only = sum(
        1 for b in bodies if b["items"] and {i["source"] for i in b["items"]} <= {"popular"}
    )
    assert popular_only == 1  # the cold-start visitor
    fallbacks = "recolake_fallback_responses_total"
    assert delta(before, after, fallbacks, reason="popular_only") == popular_only
    for reason in ("no_candidates", "few_candidates", "filtered"):
        assert delta(before, after, fallbacks, reason=reason) == short[reason], reason
    variants = Counter(body.get("variant") or "none" for body in bodies)
    for variant, n in variants.items():
        name = "recolake_recommendation_responses_total"
        assert delta(before, after, name, variant=variant) == n

    # The streaming job's progress, read from Redis at scrape time.
    assert after[("recolake_streaming_progress_up", ())] == 1
    for query, p in (("redis", redis_progress), ("lake", lake)):
        q = (("query", query),)
        assert after[("recolake_streaming_batch_duration_seconds", q)] == p.duration_seconds
        assert after[("recolake_streaming_batch_end_timestamp_seconds", q)] == p.ended_at
        assert after[("recolake_streaming_batch_id", q)] == p.batch_id
        assert after[("recolake_streaming_batch_rows", q)] == p.rows
    assert after[("recolake_streaming_input_lag_seconds", (("query", "redis"),))] == 10.0
    assert ("recolake_streaming_input_lag_seconds", (("query", "lake"),)) not in after


@pytest.mark.redis
def test_redis_outage_counts_errors_and_metrics_still_answers(tmp_path, api_server_factory):
    dead = make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    api = api_server_factory(dead)
    before = scrape(api.url)
    assert before[("recolake_streaming_progress_up", ())] == 0
    assert not any(name.startswith("recolake_streaming_batch") for name, _ in before)
    for _ in range(2):
        response = httpx.get(f"{api.url}/v1/recommendations/alice")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
    after = scrape(api.url)
    errors = "recolake_redis_errors_total"
    assert total(after, errors) - total(before, errors) == 2
    assert delta(before, after, errors, kind="connection") == 2  # refused: nothing listens
    labels = {"method": "GET", "route": USER_ROUTE, "status": "503"}
    assert delta(before, after, "recolake_http_requests_total", **labels) == 2


@pytest.mark.redis
def test_several_workers_are_summed_in_one_scrape(published, tmp_path):
    """`recolake serve --workers 2` as deployed: whichever worker answers a scrape, it
    reports every worker's requests (prometheus-client's multiprocess mode)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    shared = tmp_path / "prometheus"
    env = {
        **os.environ,
        "RECOLAKE_REDIS_URL": published.redis_url,
        "RECOLAKE_REDIS_BUCKETS": str(published.redis_buckets),
        "RECOLAKE_PSEUDONYMISATION_KEY": TEST_KEY,
        "RECOLAKE_LANDING_DIR": str(tmp_path / "landing"),
        "RECOLAKE_LAKE_ROOT": str(tmp_path / "lake"),
        MULTIPROC_ENV: str(shared),  # missing: serve creates it
    }
    args = [sys.executable, "-m", "recolake.cli", "serve", "--workers", "2", "--port", str(port)]
    process = subprocess.Popen(args, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while len({f.stem.rsplit("_", 1)[-1] for f in shared.glob("counter_*.db")}) < 2:
            assert process.poll() is None, "recolake serve exited"
            assert time.monotonic() < deadline, "the two workers did not start"
            time.sleep(0.1)
        while True:  # the socket is shared: whichever worker is ready answers
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "recolake serve did not answer"
                time.sleep(0.1)
        before = scrape(url)
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{url}/v1/recommendations/alice").status_code == 200
        after = scrape(url)
    finally:
        process.terminate()
        process.wait(timeout=30)
    labels = {"method": "GET", "route": USER_ROUTE, "status": "200"}
    assert delta(before, after, "recolake_http_requests_total", **labels) == 20
    assert delta(before, after, "recolake_recommended_items_total", source="als") == 60


@pytest.mark.redis
def test_stream_progress_round_trips_through_the_onlinestore_contract(redis_client, redis_server):
    layout = KeyLayout("recolake")
    written = {
        "redis": StreamProgress(9, 0.42, 1_700_000_000.5, 30, newest_event_at=1_699_999_999.0),
        "lake": StreamProgress(2, 3.0, 1_700_000_001.0, 0),
    }
    for query, progress in written.items():
        write_progress(redis_client, layout, query, progress)
    redis_client.hset(layout.stream_progress, "Not A Query", written["lake"].encode())
    redis_client.hset(layout.stream_progress, "broken", "{not json")

    async def read() -> dict[str, StreamProgress]:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            return await Reader(client, layout).stream_progress()
        finally:
            await client.aclose()

    assert asyncio.run(read()) == written  # bad names and documents are left out
    assert written["redis"].lag_seconds == 1.5 and written["lake"].lag_seconds is None
    with pytest.raises(ValueError):
        write_progress(redis_client, layout, "redis:1", written["lake"])


def test_progress_lag_and_decoding_rules():
    ahead = StreamProgress(1, 0.1, ended_at=100.0, rows=1, newest_event_at=105.0)
    assert ahead.lag_seconds == 0.0  # an event stamped ahead of the clock is not negative lag
    assert StreamProgress.decode(ahead.encode()) == ahead
    for bad in ("[]", '{"batch_id": 1}', "7", '{"batch_id":"x","duration_seconds":1,'):
        with pytest.raises(ValueError):
            StreamProgress.decode(bad)
    many = {f"q{i:02d}": ahead.encode() for i in range(40)}
    assert len(decode_progress(many)) == 16  # bounded gauge series whatever Redis holds


def test_labels_stay_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_variants", set())  # this process's other tests keep theirs

    def labels() -> set[str]:
        return {s.labels["variant"] for m in metrics.IMPRESSIONS.collect() for s in m.samples}

    before = labels()  # what earlier tests in this process recorded stays in the counter
    for i in range(metrics.MAX_VARIANTS + 10):
        metrics.record_impression(f"variant-{i}")
    metrics.record_impression("x" * 500)
    values = labels()
    assert len(values - before) <= metrics.MAX_VARIANTS + 1  # + "other"
    assert "other" in values and f"variant-{metrics.MAX_VARIANTS + 5}" not in values
    assert metrics.redis_error_kind(TimeoutError()) == "timeout"
    assert metrics.redis_error_kind(ValueError("bad doc")) == "malformed"


def test_prepare_multiprocess_empties_the_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert prepare_multiprocess(1) is None  # one worker: in-process metrics
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "mp"))
    (tmp_path / "mp").mkdir()
    (tmp_path / "mp" / "counter_123.db").write_bytes(b"old run")
    assert prepare_multiprocess(4) == str(tmp_path / "mp")
    assert list((tmp_path / "mp").iterdir()) == []
