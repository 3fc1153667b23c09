"""gold.user_profile -> the publication (pipelines/publish.write_profiles) -> Redis -> GET
/v1/users/{user_id}/profile behind the read token, and the publication's example users (raw
ids from bronze, publish.write_example_users) -> GET /v1/users: real Spark, Delta, Redis and
the API."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest
from pyspark.sql import functions as F

from features import columns as c
from features import profile
from features.tables import BRONZE_EVENTS, GOLD_USER_PROFILE
from features.transforms import pseudonymise_column, with_ds
from pipelines import publish
from recolake.onlinestore import KeyLayout
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.erasure import forget_user
from recolake.privacy import pseudonymise
from tests.conftest import TEST_KEY, make_settings
from tests.features.test_profile import catalog, events, strength

pytestmark = [pytest.mark.spark, pytest.mark.redis]

DS = date(2024, 5, 10)
KEY = TEST_KEY.encode()
READ = {"Authorization": "Bearer r-tok"}


def keyed(df):
    """The hand-checked frames with their users pseudonymised as silver has them (u1 ->
    HMAC('u1')): the API is asked by the raw id."""
    return df.withColumn(c.USER_KEY, pseudonymise_column(F.col(c.USER_KEY), KEY))


def bronze_users(spark, settings, users: dict[str, date]) -> None:
    """bronze.events with one event per raw user id, ingested on the given date."""
    now = datetime(2024, 5, 10, tzinfo=UTC)
    rows = [
        (None, u, "a", "view", "2024-05-10T10:00:00Z", None, None, None, "generic", "f", now, ds)
        for u, ds in users.items()
    ]
    BRONZE_EVENTS.overwrite(
        spark.createDataFrame([(*r, None) for r in rows], BRONZE_EVENTS.schema), settings
    )


def test_profiles_published_and_served_by_user_id(
    spark, tmp_path, redis_server, redis_client, api_server_factory
):
    settings = make_settings(
        tmp_path,
        redis_url=redis_server.url,
        api_read_token="r-tok",
        api_token="w-tok",
        publish_example_users=2,
    )
    writer = BatchWriter.from_settings(settings, "vprof")
    assert publish.write_profiles(spark, settings, DS, DS, writer) == 0  # no table yet: skipped
    published = keyed(strength(spark))  # u1: 3 items, u2 and u3: 2, u4: 1
    no_bronze = publish.write_example_users(spark, settings, DS, published, published, writer)
    assert no_bronze == 0
    # raw ids as bronze holds them (u2 untrimmed); u9 is no published user; u4 another day
    other_day = date(2024, 5, 9)
    bronze_users(spark, settings, {"u1": DS, " u2 ": DS, "u3": DS, "u9": DS, "u4": other_day})
    assert publish.write_example_users(spark, settings, DS, published, published, writer) == 2

    built = profile.user_profile(
        keyed(events(spark)), keyed(strength(spark)), catalog(spark), ds=DS, top_n=2
    )
    GOLD_USER_PROFILE.overwrite_partition(with_ds(built, DS), settings, "ds", DS)
    assert publish.write_profiles(spark, settings, DS, DS, writer) == 4

    layout = KeyLayout(settings.redis_namespace)
    staged = [
        k for k in layout.version_keys("vprof", settings.redis_buckets) if redis_client.exists(k)
    ]
    assert staged and all(
        (":profile:" in k or k.endswith(":examples")) and redis_client.ttl(k) > 0 for k in staged
    )
    writer.go_live(
        popular=[("a", 1.0)], meta={"model_version": "1", "ds": DS.isoformat()}, grace_seconds=5
    )
    assert all(redis_client.ttl(k) == -1 for k in staged)  # live with the rest

    api = api_server_factory(settings)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        body = http.get("/v1/users/u1/profile", headers=READ)
        assert body.status_code == 200, body.text
        assert body.json() == {
            "user_id": "u1",
            "publication": "vprof",
            "ds": "2024-05-10",
            "n_events": 4,
            "last_event_time": "2024-05-10T10:30:00Z",
            "days_since_last_event": 0,
            "last_purchase_time": "2024-05-10T10:00:00Z",
            "days_since_last_purchase": 0,
            "frequency": 2,
            "monetary": 35.0,
            "r_score": 5,
            "f_score": 4,
            "m_score": 3,
            "segment": "champions",
            "top_categories": [
                {"category": "home", "share": 0.8},
                {"category": "kitchen", "share": 0.2},
            ],
            "top_brands": [{"brand": "acme", "share": 0.75}, {"brand": "zeta", "share": 0.25}],
            "median_price": 10.0,
            "price_band": 2,
            "preferred_hours": [10, 15],
        }
        browser = http.get("/v1/users/u3/profile", headers=READ).json()
        assert (browser["segment"], browser["monetary"], browser["r_score"]) == (
            "browser",
            None,
            None,
        )
        assert browser["last_purchase_time"] is None

        unknown = http.get("/v1/users/never-seen/profile", headers=READ)
        assert unknown.status_code == 404
        assert unknown.json()["detail"].startswith("user 'never-seen' has no profile")
        assert "vprof" in unknown.json()["detail"]

        missing = http.get("/v1/users/u1/profile")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = http.get("/v1/users/u1/profile", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        # the write token reads too, as on every read
        write = {"Authorization": "Bearer w-tok"}
        assert http.get("/v1/users/u1/profile", headers=write).status_code == 200

        spec = http.get("/openapi.json").json()["paths"]["/v1/users/{user_id}/profile"]["get"]
        assert set(spec["responses"]) == {"200", "401", "403", "404", "422", "503"}

        # the two most active published users (ties by id), by raw id, behind the read token
        examples = http.get("/v1/users", headers=READ)
        assert examples.json() == {"publication": "vprof", "users": ["u1", "u2"], "examples": 2}
        found = http.get("/v1/users", params={"prefix": "u2", "limit": 5}, headers=READ).json()
        assert found["users"] == ["u2"]
        assert http.get("/v1/users").status_code == 401
        assert http.get("/v1/users", params={"limit": 0}, headers=READ).status_code == 422
        spec = http.get("/openapi.json").json()["paths"]["/v1/users"]["get"]
        assert set(spec["responses"]) == {"200", "401", "403", "422", "503"}

        # erasure takes the profile and the example entry out of every publication
        forget_user(redis_client, layout, pseudonymise("u1", KEY))
        assert http.get("/v1/users/u1/profile", headers=READ).status_code == 404
        assert http.get("/v1/users/u2/profile", headers=READ).status_code == 200
        assert http.get("/v1/users", headers=READ).json()["users"] == ["u2"]
