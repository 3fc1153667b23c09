"""The documented import path, end to end: a generic events CSV and a generic items CSV with
only the required columns (no `available`, no event ids, no quantities) -> the nightly ->
the running API. Ids look like a real shop's (slashes, umlauts, mixed case), sessions are
long, timestamps come in every documented format. Known users get personalised lists,
unknown users get k popular items: never an empty list."""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest

from features.tables import GOLD_ITEM_CATALOG
from pipelines import nightly
from tests.conftest import make_settings

pytestmark = [pytest.mark.spark, pytest.mark.redis, pytest.mark.slow]

DS = date(2024, 5, 31)
CATEGORIES = ["Küche", "garden/outdoor", "Toys & Games", "bath", "Office", "décor"]
K = 10


def item_ids(n: int) -> list[str]:
    shapes = ["SKU-{:05d}/b", "ü-{}", "A{:04d}-XL", "sku.{}.blue", "{}"]
    return [shapes[i % len(shapes)].format(i) for i in range(n)]


def write_shop(root, users: int = 200, items: int = 180, seed: int = 42):
    """events.csv (user_id,item_id,event_type,timestamp,session_id) and items.csv
    (item_id,title,category,price): users with a favourite category, long sessions of views
    ending now and then in a cart and a purchase, a popularity skew inside each category."""
    rng = random.Random(seed)
    ids = item_ids(items)
    category = {item: CATEGORIES[i % len(CATEGORIES)] for i, item in enumerate(ids)}
    by_category = {cat: [i for i in ids if category[i] == cat] for cat in CATEGORIES}
    items_csv = root / "items.csv"
    with open(items_csv, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["item_id", "title", "category", "price"])
        for n, item in enumerate(ids):
            out.writerow(
                [item, f"Product {n} ({category[item]})", category[item], f"{n % 50 + 0.99}"]
            )

    start = datetime(2024, 3, 20, tzinfo=UTC)
    span = (datetime(2024, 5, 31, 12, tzinfo=UTC) - start).total_seconds()
    offset = timezone(timedelta(hours=2))

    def stamp(t: datetime, n: int) -> str:
        # every documented timestamp format
        if n % 3 == 0:
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if n % 3 == 1:
            return t.astimezone(offset).isoformat()
        return t.strftime("%Y-%m-%d %H:%M:%S")

    events_csv = root / "events.csv"
    user_ids = [f"Kunde-{u:04d}@shop.example" if u % 2 else f"U{u}.de" for u in range(users)]
    rows = 0
    with open(events_csv, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["user_id", "item_id", "event_type", "timestamp", "session_id"])
        for u, user in enumerate(user_ids):
            favourite = CATEGORIES[u % len(CATEGORIES)]
            for s in range(rng.randint(3, 5)):
                t = start + timedelta(seconds=rng.uniform(0, span))
                session = f"sess-{u}-{s}"
                for _ in range(rng.randint(6, 24)):  # long sessions
                    pool = by_category[favourite] if rng.random() < 0.8 else ids
                    item = pool[min(int(rng.expovariate(0.15)), len(pool) - 1)]
                    out.writerow([user, item, "view", stamp(t, rows), session])
                    rows += 1
                    t += timedelta(seconds=rng.randint(5, 120))
                    if rng.random() < 0.15:
                        out.writerow([user, item, "add_to_cart", stamp(t, rows), session])
                        rows += 1
                        if rng.random() < 0.6:
                            t += timedelta(seconds=30)
                            out.writerow([user, item, "purchase", stamp(t, rows), session])
                            rows += 1
    return events_csv, items_csv, user_ids, rows


@pytest.mark.timeout(1800)  # one whole nightly; 5-6 min on an idle machine
def test_generic_csvs_with_only_required_columns_serve_every_user(
    spark, tmp_path, redis_server, api_server_factory
):
    events, items, users, rows = write_shop(tmp_path)
    assert "available" not in items.read_text(encoding="utf-8").splitlines()[0]
    settings = make_settings(
        tmp_path, redis_url=redis_server.url, als_max_iter=5, als_rank=8, hybrid_weight_step=0.5
    )
    argv = ["--format", "generic", "--events", str(events), "--items", str(items)]
    result = nightly.main([*argv, "--ds", DS.isoformat()], spark=spark, settings=settings)

    assert result.silver.input == rows and result.silver.quarantined == 0
    catalog = GOLD_ITEM_CATALOG.read(spark, settings).where(f"ds = '{DS}'")
    assert catalog.count() == 180
    assert catalog.where("NOT available").count() == 0  # no column = available
    assert result.promotion.promoted and result.publish.users > 0

    api = api_server_factory(settings)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        known = [client.get(f"/v1/recommendations/{u}", params={"k": K}) for u in users[:25]]
        for response in known:
            assert response.status_code == 200, response.text
            body = response.json()
            assert len(body["items"]) == K, body
            assert {i["source"] for i in body["items"]} - {"popular", "trending"}, body
        personalised = sum(
            1
            for r in known
            if {i["source"] for i in r.json()["items"]}
            & {"als", "co_view", "bought_together", "content"}
        )
        assert personalised == len(known)

        for stranger in ("nobody-knows-me", "Gast 42", "ü-12"):
            response = client.get(f"/v1/recommendations/{stranger}", params={"k": K})
            assert response.status_code == 200, response.text
            body = response.json()
            assert [i["source"] for i in body["items"]] == ["popular"] * K, body
            assert len({i["item_id"] for i in body["items"]}) == K
