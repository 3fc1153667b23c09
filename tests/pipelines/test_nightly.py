"""The whole nightly pipeline on a slice of the bundled sample, then the running API."""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from datetime import date
from functools import partial

import httpx
import mlflow
import pytest

from features.tables import BRONZE_EVENTS, GOLD_USER_ITEM_STRENGTH, QUARANTINE_EVENTS, SILVER_EVENTS
from models.offline import MODELS
from pipelines import nightly, publish
from recolake import tracking
from recolake.onlinestore import KeyLayout
from recolake.privacy import pseudonymise
from recolake.progress import Progress
from recolake.ranking import Weights
from recolake.settings import PROJECT_ROOT
from tests.conftest import TEST_KEY, make_settings
from tests.recolake.test_progress import Terminal

pytestmark = [pytest.mark.spark, pytest.mark.redis, pytest.mark.slow]

DS = date(2011, 12, 9)
SAMPLE = PROJECT_ROOT / "data" / "sample" / "online_retail_sample.csv.gz"


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    """About a quarter of the sample's customers (whole histories), plus two broken lines."""
    path = tmp_path_factory.mktemp("data") / "retail.csv.gz"
    with gzip.open(SAMPLE, "rt", newline="") as src, gzip.open(path, "wt", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            key = row["CustomerID"] or row["InvoiceNo"]
            if zlib.crc32(key.encode()) % 4 == 0:
                writer.writerow(row)
        broken = dict(row, InvoiceDate="not a date", CustomerID="99999")
        writer.writerow(broken)
    return path


def customer_with_purchases(path) -> str:
    with gzip.open(path, "rt", newline="") as f:
        counts: dict[str, int] = {}
        for row in csv.DictReader(f):
            if row["CustomerID"] and not row["InvoiceNo"].startswith("C"):
                counts[row["CustomerID"]] = counts.get(row["CustomerID"], 0) + 1
    return max(counts, key=counts.get)


@pytest.mark.timeout(1800)  # two whole nightlies of a slice of the sample
def test_nightly_end_to_end_and_rerun(
    spark, small_sample, redis_server, redis_client, tmp_path, api_server_factory, monkeypatch
):
    settings = make_settings(tmp_path, redis_url=redis_server.url, als_max_iter=5, als_rank=16)
    argv = ["--ds", DS.isoformat(), "--events", str(small_sample), "--format", "online_retail"]
    terminal = Terminal()  # publish's progress bar, as a terminal would show it
    monkeypatch.setattr(publish, "Progress", partial(Progress, stream=terminal))
    first = nightly.main(argv, spark=spark, settings=settings)
    batches = len(publish.PUBLISH_BATCHES)
    drawn = terminal.getvalue()
    assert f"publish {DS} [" in drawn and f"] {batches}/{batches} " in drawn, drawn[-300:]
    assert "user lists: " in drawn and "writing example users" in drawn

    counts = first.silver
    assert counts.input == first.ingest.events > 5000
    assert counts.input == counts.silver + counts.quarantined + counts.duplicates
    assert counts.quarantine_reasons["missing_user_id"] > 0
    assert counts.quarantine_reasons["unparseable_timestamp"] == 1
    assert counts.quarantine_reasons["cancellation"] > 0
    metrics = first.evaluation.metrics
    assert set(metrics) == {*MODELS, "hybrid", "served"}
    assert 0 < metrics["als"]["ndcg@10"] <= 1
    assert first.item_cf.co_view > 0 and first.item_cf.bought_together > 0
    assert first.content_items > 0
    for values in metrics.values():
        assert 0 <= values["hit_rate@10"] <= 1 and 0 < values["coverage@10"] <= 1
        assert values["hit_rate@10"] >= values["precision@10"]
        assert 0 <= values["diversity@10"] <= 1 and values["novelty@10"] >= 0
    # Popularity recommends the same few items to everyone: least coverage, least novelty.
    pop = metrics["popularity"]
    assert pop["coverage@10"] < metrics["item_cf"]["coverage@10"]
    assert pop["novelty@10"] < metrics["content"]["novelty@10"]
    assert first.evaluation.report.exists() and first.promotion.promoted

    # MLflow: metrics, lineage and the champion alias are recorded.
    client = tracking.configure(settings)  # registry too, not a global left by another test
    run = client.get_run(first.evaluation.run_id)
    assert run.data.metrics["als.ndcg_at_10"] == pytest.approx(metrics["als"]["ndcg@10"])
    assert run.data.metrics["item_cf.hit_rate_at_10"] == pytest.approx(
        metrics["item_cf"]["hit_rate@10"]
    )
    assert int(client.get_run(first.train.run_id).data.tags["delta_version.silver.events"]) >= 0
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert champion.run_id == first.train.run_id

    # Per-step wall time: every step, in order, in the result and on the run tagged nightly.
    assert list(first.step_seconds) == nightly.STEPS
    assert all(v > 0 for v in first.step_seconds.values())
    assert sum(first.step_seconds.values()) <= first.seconds
    timing = client.get_run(first.timing_run_id).data
    assert timing.tags["step"] == "nightly" and timing.tags["ds"] == DS.isoformat()
    for step, seconds in first.step_seconds.items():
        assert timing.metrics[f"step_seconds.{step}"] == pytest.approx(seconds)
        assert timing.metrics[f"spark_jobs.{step}"] >= (0 if step in ("promote", "forget") else 1)
    assert timing.metrics["nightly_seconds"] == pytest.approx(first.seconds)
    for step in nightly.STEPS:
        assert any(line.split()[0] == step for line in first.step_report.splitlines())
    # What it prints at the end (after the step lines): a screenful, one line per model.
    summary = first.summary().splitlines()
    assert len(summary) <= len(metrics) + 12, summary
    for name, values in metrics.items():
        row = next(line.split() for line in summary if line.split()[:1] == [name])
        assert float(row[1]) == pytest.approx(values["ndcg@10"], abs=5e-5, nan_ok=True), row
    ratio = metrics["served"]["ndcg@10"] / metrics["popularity"]["ndcg@10"]
    assert f"served blend: {ratio:.2f}x popularity on ndcg@10" in summary

    # The running API serves ALS lists for a real customer, without purchased items.
    api = api_server_factory(settings)
    customer = customer_with_purchases(small_sample)
    body = httpx.get(f"{api.url}/v1/recommendations/{customer}", params={"k": 10}).json()
    assert len(body["items"]) == 10
    assert body["model_version"] == first.publish.model_version
    # ... ranked with the weights the evaluation chose on validation (what `served` measured),
    # carried by the model version's tags and the publication's metadata.
    served = first.evaluation.document["served"]
    assert body["weights_source"] == "publication"
    layout = KeyLayout(settings.redis_namespace)
    published = Weights.from_json(redis_client.hget(layout.meta(first.publish.version), "weights"))
    assert published == Weights.from_mapping(served["weights"])
    tags = client.get_model_version(settings.registered_model_name, champion.version).tags
    assert Weights.from_json(tags[tracking.SERVED_WEIGHTS_TAG]) == published
    assert json.loads(tags[tracking.PERSONAL_WEIGHTS_TAG]) == served["personal"]["weights"]
    user_key = pseudonymise(customer, TEST_KEY.encode())
    purchased = {
        r.item_id
        for r in GOLD_USER_ITEM_STRENGTH.read(spark, settings)
        .where(f"user_key = '{user_key}' AND purchased")
        .collect()
    }
    assert purchased and not purchased & {
        i["item_id"] for i in body["items"] if i["source"] == "als"
    }
    unknown = httpx.get(f"{api.url}/v1/recommendations/nobody-knows-me?k=3").json()
    assert [i["source"] for i in unknown["items"]] == ["popular"] * 3
    # Prices from the sample's catalog, and example users (raw ids of published users).
    priced = httpx.get(
        f"{api.url}/v1/recommendations/{customer}", params={"fields": "title,price"}
    ).json()["items"]
    assert all(isinstance(i["price"], float) and i["price"] > 0 for i in priced), priced
    examples = httpx.get(f"{api.url}/v1/users", params={"limit": 100}).json()
    assert examples["examples"] == first.publish.examples == settings.publish_example_users
    for user_id in examples["users"]:
        key = pseudonymise(user_id, TEST_KEY.encode())
        bucket = layout.bucket_of(key, settings.redis_buckets)
        assert redis_client.hexists(layout.recs(first.publish.version, bucket), key), user_id

    # Re-running the same date duplicates nothing and switches to a new publication.
    sizes = {
        t.qualified_name: t.read(spark, settings).count()
        for t in (BRONZE_EVENTS, SILVER_EVENTS, QUARANTINE_EVENTS, GOLD_USER_ITEM_STRENGTH)
    }
    second = nightly.main(argv, spark=spark, settings=settings)
    assert sizes == {
        t.qualified_name: t.read(spark, settings).count()
        for t in (BRONZE_EVENTS, SILVER_EVENTS, QUARANTINE_EVENTS, GOLD_USER_ITEM_STRENGTH)
    }
    assert second.silver.silver_inserted == 0
    # The champion (the first run's model) has the candidate's parameters on the same split:
    # measured once, and said so.
    assert second.evaluation.reused == ["champion_config_is_candidate"]
    assert second.evaluation.document["champion"]["metrics"]["ndcg@10"] == pytest.approx(
        second.evaluation.metrics["als"]["ndcg@10"]
    )
    assert second.publish.replaced == first.publish.version
    layout = KeyLayout(settings.redis_namespace)
    assert redis_client.get(layout.live) == second.publish.version
    assert (
        0 < redis_client.ttl(layout.meta(first.publish.version)) <= settings.publish_grace_seconds
    )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
