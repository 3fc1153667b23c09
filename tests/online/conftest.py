"""A small publication of the real shape, written through the publish job's BatchWriter."""

from __future__ import annotations

import redis

from recolake.onlinestore import KeyLayout
from recolake.onlinestore.batch import BatchWriter
from recolake.privacy import pseudonymise
from recolake.settings import Settings
from tests.conftest import TEST_KEY

CATALOG = [
    ("i1", "Lamp", "home", True),
    ("i2", "Rug", "home", True),
    ("p1", "Mug", "kitchen", True),
    ("p2", "Pan", "kitchen", True),
    ("p3", "Cup", "kitchen", True),
    ("shoe", "Red shoe", "shoes", True),
    ("boot", "Boot", "shoes", True),
    ("sock", "Wool sock", "socks", True),
    ("gone", "Sold out", "shoes", False),
    ("new", "Brand new shoe", "shoes", True),
]
#: Published prices (publish_sample): "gone" has none, as an item of a catalog without one.
PRICES = {
    "i1": 24.5,
    "i2": 89.0,
    "p1": 6.5,
    "p2": 19.99,
    "p3": 3.25,
    "shoe": 59.0,
    "boot": 79.0,
    "sock": 4.5,
    "new": 64.0,
}


#: alice's published profile (gold.user_profile's fields: GET /v1/users/alice/profile).
ALICE_PROFILE = {
    "ds": "2026-01-01",
    "n_events": 12,
    "last_event_time": "2026-01-01T18:30:00Z",
    "days_since_last_event": 0,
    "last_purchase_time": "2025-12-30T09:00:00Z",
    "days_since_last_purchase": 2,
    "frequency": 3,
    "monetary": 42.5,
    "r_score": 4,
    "f_score": 5,
    "m_score": 3,
    "segment": "champions",
    "top_categories": [("home", 0.6), ("kitchen", 0.4)],
    "top_brands": [],
    "median_price": 9.99,
    "price_band": 2,
    "preferred_hours": [18, 9],
}


def publish_sample(url: str, settings: Settings, version: str = "v7") -> None:
    """alice's ALS list and profile, the catalog above (with PRICES), neighbours of "shoe",
    popular p1..p3, example users alice and bob; live."""
    layout = KeyLayout(settings.redis_namespace)
    writer = BatchWriter(url=url, layout=layout, version=version, buckets=settings.redis_buckets)
    alice = pseudonymise("alice", TEST_KEY.encode())
    writer.write_user_lists([(alice, [("i1", 0.9), ("i2", 0.8), ("p1", 0.7)])])
    writer.write_user_profiles([(alice, ALICE_PROFILE)])
    writer.write_example_users([(alice, "alice"), (pseudonymise("bob", TEST_KEY.encode()), "bob")])
    writer.write_catalog([(*entry, PRICES.get(entry[0])) for entry in CATALOG])
    writer.write_neighbours(
        [
            ("co_view", "shoe", [("boot", 0.9), ("gone", 0.8)]),
            ("bought_together", "shoe", [("sock", 0.7)]),
            ("content", "shoe", [("new", 0.6)]),
        ]
    )
    client = redis.Redis.from_url(url, decode_responses=True)
    writer.go_live(
        client=client,
        popular=[("p1", 30.0), ("p2", 20.0), ("p3", 10.0)],
        meta={"model_version": "7", "ds": "2026-01-01"},
        grace_seconds=5,
    )
    client.close()
