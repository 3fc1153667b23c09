"""gold.user_profile -> the publication (pipelines/publish.write_profiles) -> Redis -> GET
/v1/users/{user_id}/profile behind the read token: real Spark, Delta, Redis and the API."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from pyspark.sql import functions as F

from features import columns as c
from features import profile
from features.tables import GOLD_USER_PROFILE
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


def test_profiles_published_and_served_by_user_id(
    spark, tmp_path, redis_server, redis_client, api_server_factory
):
    settings = make_settings(
        tmp_path, redis_url=redis_server.url, api_read_token="r-tok", api_token="w-tok"
    )
    writer = BatchWriter.from_settings(settings, "vprof")
    assert publish.write_profiles(spark, settings, DS, DS, writer) == 0  # no table yet: skipped

    built = profile.user_profile(
        keyed(events(spark)), keyed(strength(spark)), catalog(spark), ds=DS, top_n=2
    )
    GOLD_USER_PROFILE.overwrite_partition(with_ds(built, DS), settings, "ds", DS)
    assert publish.write_profiles(spark, settings, DS, DS, writer) == 4

    layout = KeyLayout(settings.redis_namespace)
    staged = [
        k for k in layout.version_keys("vprof", settings.redis_buckets) if redis_client.exists(k)
    ]
    assert staged and all(":profile:" in k and redis_client.ttl(k) > 0 for k in staged)
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

        # erasure takes the profile out of every publication with the lists
        forget_user(redis_client, layout, pseudonymise("u1", KEY))
        assert http.get("/v1/users/u1/profile", headers=READ).status_code == 404
        assert http.get("/v1/users/u2/profile", headers=READ).status_code == 200
