"""The bronze -> silver -> gold transforms on frames of a few rows."""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest
from pyspark.sql import Row

from features import columns as c
from features import transforms
from features.tables import BRONZE_EVENTS
from recolake.privacy import pseudonymise
from recolake.settings import DEFAULT_EVENT_WEIGHTS

pytestmark = pytest.mark.spark

DS = date(2024, 5, 1)
KEY = b"unit-test-key"


def bronze_rows(spark, rows, source_format="generic"):
    full = []
    for r in rows:
        values = {f: None for f in BRONZE_EVENTS.schema.fieldNames()}  # in schema order
        values.update(r)
        values.update(
            source_format=source_format,
            source_file="f.csv",
            ingested_at=datetime(2024, 5, 2),
            ingest_ds=DS,
        )
        full.append(Row(**values))
    return spark.createDataFrame(full, BRONZE_EVENTS.schema)


def split(spark, rows, source_format="generic"):
    return transforms.validate_events(
        bronze_rows(spark, rows, source_format),
        event_types=DEFAULT_EVENT_WEIGHTS,
        key=KEY,
        latest_allowed=datetime(2024, 5, 2, 1),
    )


GOOD = dict(user_id="u1", item_id="i1", event_type="view", timestamp="2024-05-01T10:00:00Z")


def test_spark_hmac_equals_python_hmac(spark):
    ids = ["u1", "17850", "ünïcødé-user", "x" * 200]
    df = spark.createDataFrame([(i,) for i in ids], "id string")
    got = [r[0] for r in df.select(transforms.pseudonymise_column(df["id"], KEY)).collect()]
    assert got == [pseudonymise(i, KEY) for i in ids]
    long_key = b"k" * 100  # longer than the SHA-256 block: hashed first, as HMAC requires
    got_long = df.select(transforms.pseudonymise_column(df["id"], long_key)).first()[0]
    assert got_long == pseudonymise(ids[0], long_key)


def test_each_bad_row_is_quarantined_with_its_reason(spark):
    rows = [
        GOOD,
        {**GOOD, "user_id": "  "},
        {**GOOD, "item_id": None},
        {**GOOD, "event_type": "wishlist"},
        {**GOOD, "timestamp": "yesterday-ish"},
        {**GOOD, "timestamp": "2030-01-01T00:00:00Z"},
        {**GOOD, "quantity": "two"},
        {**GOOD, "quantity": "-1"},
        {**GOOD, "price": "-3.5"},
        {**GOOD, "user_id": "u" * 300},
    ]
    result = split(spark, rows)
    reasons = sorted(r[c.REASON] for r in result.quarantined.collect())
    assert reasons == sorted(
        [
            "missing_user_id",
            "missing_item_id",
            "unknown_event_type",
            "unparseable_timestamp",
            "timestamp_after_ds",
            "invalid_quantity",
            "non_positive_quantity",
            "invalid_price",
            "id_too_long",
        ]
    )
    valid = result.valid.collect()
    assert len(valid) == 1
    assert valid[0][c.USER_KEY] == pseudonymise("u1", KEY)
    assert valid[0][c.EVENT_TIME] == datetime(2024, 5, 1, 10)


def test_raw_user_id_never_reaches_silver_or_quarantine(spark):
    result = split(spark, [GOOD, {**GOOD, "event_type": "bogus"}])
    assert c.USER_ID not in result.valid.columns
    assert c.USER_ID not in result.quarantined.columns
    q = result.quarantined.first()
    assert q[c.USER_KEY] == pseudonymise("u1", KEY)


def test_exact_duplicates_counted_once_and_rows_balance(spark):
    rows = [GOOD, GOOD, GOOD, {**GOOD, "item_id": "i2"}, {**GOOD, "event_type": "?"}]
    result = split(spark, rows)
    valid, id_dups = transforms.dedupe_by_event_id(result.valid)
    n_valid, n_quarantined = valid.count(), result.quarantined.count()
    n_dups = result.exact_duplicates.count() + id_dups.count()
    assert (n_valid, n_quarantined, n_dups) == (2, 1, 2)
    assert n_valid + n_quarantined + n_dups == len(rows)


def test_client_event_id_dedupes_retries_with_different_payload(spark):
    rows = [{**GOOD, "event_id": "e-1"}, {**GOOD, "event_id": "e-1", "item_id": "i9"}]
    valid, id_dups = transforms.dedupe_by_event_id(split(spark, rows).valid)
    assert valid.count() == 1 and id_dups.count() == 1
    assert valid.first()[c.EVENT_ID] == "e-1"


def test_timestamp_layouts(spark):
    stamps = [
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00.123+00:00",
        "2024-05-01 10:00:00",
        "2024-05-01 10:00:00 UTC",
        "2024-05-01 10:00",
    ]
    result = split(spark, [{**GOOD, "timestamp": s, "item_id": s} for s in stamps])
    assert result.quarantined.count() == 0
    times = {r[c.EVENT_TIME].replace(microsecond=0) for r in result.valid.collect()}
    assert times == {datetime(2024, 5, 1, 10)}


def test_online_retail_rules(spark):
    base = dict(
        user_id="17850",
        item_id="85123A",
        event_type="purchase",
        timestamp="2024-05-01 08:26:00",
        session_id="536365",
        quantity="6",
        price="2.55",
    )
    rows = [
        base,
        {**base, "session_id": "C536379", "quantity": "-1"},
        {**base, "item_id": "POST"},
        {**base, "item_id": "BANK CHARGES"},
        {**base, "price": "0"},
        {**base, "user_id": None},
    ]
    result = split(spark, rows, source_format="online_retail")
    reasons = sorted(r[c.REASON] for r in result.quarantined.collect())
    assert reasons == [
        "cancellation",
        "missing_user_id",
        "non_product_code",
        "non_product_code",
        "zero_price",
    ]
    assert result.valid.count() == 1


def test_generic_file_without_required_columns_is_rejected_clearly(spark):
    raw = spark.createDataFrame([("u", "i")], "user_id string, item_id string")
    with pytest.raises(
        ValueError, match=r"missing required column\(s\) \['event_type', 'timestamp'\]"
    ):
        transforms.generic_events_to_bronze(raw, DS)


def silver_events(spark, rows):
    return spark.createDataFrame(
        [Row(user_key=u, item_id=i, event_type=t, event_time=ts) for u, i, t, ts in rows]
    )


def test_strength_is_weighted_and_decayed_as_of_the_date(spark):
    as_of = datetime(2024, 5, 11)
    events = silver_events(
        spark,
        [
            ("a", "x", "purchase", datetime(2024, 5, 1)),  # 10 days old
            ("a", "x", "view", datetime(2024, 5, 11)),  # at as_of: excluded (exclusive)
            ("a", "y", "view", datetime(2024, 5, 10, 12)),
            ("b", "x", "remove_from_cart", datetime(2024, 5, 10)),  # weight 0: dropped
        ],
    )
    out = {
        (r[c.USER_KEY], r[c.ITEM_ID]): r
        for r in transforms.user_item_strength(
            events, as_of=as_of, weights=DEFAULT_EVENT_WEIGHTS, half_life_days=10
        ).collect()
    }
    assert set(out) == {("a", "x"), ("a", "y")}
    assert out[("a", "x")][c.STRENGTH] == pytest.approx(5.0 * 0.5)
    assert out[("a", "x")][c.PURCHASED] is True
    assert out[("a", "y")][c.STRENGTH] == pytest.approx(math.pow(0.5, 0.05))
    assert out[("a", "y")][c.PURCHASED] is False


def test_hide_and_dislike_zero_the_strength_until_new_interest(spark):
    as_of = datetime(2024, 5, 11)
    events = silver_events(
        spark,
        [
            ("a", "x", "purchase", datetime(2024, 5, 1)),
            ("a", "x", "hide", datetime(2024, 5, 2)),  # zeroes x: dropped
            ("a", "y", "view", datetime(2024, 5, 1)),
            ("a", "y", "dislike", datetime(2024, 5, 2)),
            ("a", "y", "add_to_cart", datetime(2024, 5, 3)),  # interest after: counts alone
            ("a", "z", "view", datetime(2024, 5, 1)),  # untouched
            ("b", "x", "view", datetime(2024, 5, 1)),  # another user's hide is not b's
            ("b", "w", "dislike", datetime(2024, 5, 1)),  # alone: never a positive pair
        ],
    )
    strength = transforms.user_item_strength(
        events, as_of=as_of, weights=DEFAULT_EVENT_WEIGHTS, half_life_days=1e9
    )
    out = {(r[c.USER_KEY], r[c.ITEM_ID]): r for r in strength.collect()}
    assert set(out) == {("a", "y"), ("a", "z"), ("b", "x")}
    assert out[("a", "y")][c.STRENGTH] == pytest.approx(3.0)
    assert out[("a", "y")][c.N_EVENTS] == 1
    assert out[("a", "z")][c.STRENGTH] == pytest.approx(1.0)
    assert all(r[c.STRENGTH] > 0 for r in out.values())
    # with no negative types configured, a hide weighs 0 and changes nothing
    plain = transforms.user_item_strength(
        events, as_of=as_of, weights=DEFAULT_EVENT_WEIGHTS, half_life_days=1e9, negative_types=()
    )
    assert {(r[c.USER_KEY], r[c.ITEM_ID]) for r in plain.collect()} >= {("a", "x")}


def test_popularity_counts_distinct_users_in_window(spark):
    as_of = datetime(2024, 5, 11)
    events = silver_events(
        spark,
        [
            ("a", "x", "view", datetime(2024, 5, 10)),
            ("a", "x", "view", datetime(2024, 5, 10, 1)),
            ("b", "x", "view", datetime(2024, 5, 9)),
            ("a", "y", "purchase", datetime(2024, 5, 9)),
            ("c", "z", "purchase", datetime(2024, 1, 1)),  # outside the window
        ],
    )
    ranked = transforms.item_popularity(
        events, as_of=as_of, window_days=7, weights=DEFAULT_EVENT_WEIGHTS
    ).orderBy(c.RANK)
    assert [(r[c.ITEM_ID], r[c.N_USERS], r[c.RANK]) for r in ranked.collect()] == [
        ("x", 2, 1),
        ("y", 1, 2),
    ]


def test_silver_items_latest_ingest_wins_and_types(spark):
    rows = [
        Row(
            item_id="i1",
            title="Old",
            category="A",
            price="1.0",
            available="true",
            source_format="generic",
            source_file=None,
            ingested_at=datetime(2024, 5, 1),
            ingest_ds=date(2024, 5, 1),
            brand=None,
            attributes=None,
        ),
        Row(
            item_id="i1",
            title="New",
            category="A",
            price="oops",
            available="false",
            source_format="generic",
            source_file=None,
            ingested_at=datetime(2024, 5, 2),
            ingest_ds=date(2024, 5, 2),
            brand=None,
            attributes=None,
        ),
    ]
    from features.tables import BRONZE_ITEMS

    out = transforms.silver_items(spark.createDataFrame(rows, BRONZE_ITEMS.schema)).collect()
    assert len(out) == 1
    assert (out[0][c.TITLE], out[0][c.PRICE], out[0][c.AVAILABLE]) == ("New", None, False)


def test_silver_items_missing_or_blank_available_means_available(spark):
    """The documented items CSV has no `available` column: bronze holds null for it, and that
    must not mark the whole catalog unavailable. Blank is the same; only false/0/no/n say no."""
    from features.tables import BRONZE_ITEMS

    def row(item_id, available):
        return Row(
            item_id=item_id,
            title=f"T {item_id}",
            category="C",
            price="2.5",
            available=available,
            source_format="generic",
            source_file=None,
            ingested_at=datetime(2024, 5, 1),
            ingest_ds=date(2024, 5, 1),
            brand=None,
            attributes=None,
        )

    values = {"null": None, "blank": "  ", "yes": "Yes", "one": "1", "no": "No", "zero": "0"}
    frame = spark.createDataFrame([row(k, v) for k, v in values.items()], BRONZE_ITEMS.schema)
    out = {r[c.ITEM_ID]: r[c.AVAILABLE] for r in transforms.silver_items(frame).collect()}
    assert out == {
        "null": True,
        "blank": True,
        "yes": True,
        "one": True,
        "no": False,
        "zero": False,
    }


def test_items_csv_brand_is_optional_and_reaches_silver_and_the_gold_catalog(spark, tmp_path):
    """The generic items CSV's optional brand column survives ingest, silver (latest ingest
    wins, blank -> null) and the gold catalog; a CSV without it reads null."""
    from features.tables import BRONZE_ITEMS, GOLD_ITEM_CATALOG

    with_brand = tmp_path / "with.csv"
    with_brand.write_text("item_id,title,category,price,brand\ni1,Kettle,kitchen,9.5, Acme \n")
    without = tmp_path / "without.csv"
    without.write_text("item_id,title,category,price\ni2,Drill,tools,30\n")
    read = spark.read.option("header", True).csv
    bronze = transforms.generic_items_to_bronze(read(str(with_brand)), date(2024, 5, 1))
    bronze = bronze.unionByName(
        transforms.generic_items_to_bronze(read(str(without)), date(2024, 5, 1))
    )
    bronze = BRONZE_ITEMS.conform(bronze)
    assert {r[c.ITEM_ID]: r[c.BRAND] for r in bronze.collect()} == {"i1": " Acme ", "i2": None}
    silver = transforms.silver_items(bronze)
    assert {r[c.ITEM_ID]: r[c.BRAND] for r in silver.collect()} == {"i1": "Acme", "i2": None}
    events = spark.createDataFrame([], "item_id string, event_time timestamp")
    gold = transforms.with_ds(
        transforms.item_catalog(silver, events, as_of=datetime(2024, 5, 2)), date(2024, 5, 1)
    )
    rows = {r[c.ITEM_ID]: r[c.BRAND] for r in GOLD_ITEM_CATALOG.conform(gold).collect()}
    assert rows == {"i1": "Acme", "i2": None}
    # silver written before the column existed (no brand column at all) still builds gold
    old = transforms.item_catalog(silver.drop(c.BRAND), events, as_of=datetime(2024, 5, 2))
    assert [r[c.BRAND] for r in old.collect()] == [None, None]


def test_event_ids_dedupe_per_user_or_session_not_globally(spark):
    rows = [
        {**GOOD, "event_id": "e-1", "user_id": "alice"},
        {**GOOD, "event_id": "e-1", "user_id": "alice", "item_id": "i9"},  # alice's retry
        {**GOOD, "event_id": "e-1", "user_id": "bob"},  # bob's own e-1
    ]
    valid, id_dups = transforms.dedupe_by_event_id(split(spark, rows).valid)
    kept = sorted(r[c.USER_KEY] for r in valid.collect())
    assert kept == sorted([pseudonymise("alice", KEY), pseudonymise("bob", KEY)])
    assert id_dups.count() == 1
    # anonymous rows (the streaming job's valid events: no user_key) key on their session
    schema = "event_id string, user_key string, session_id string, item_id string"
    anonymous = spark.createDataFrame(
        [("e-1", None, "s1", "a"), ("e-1", None, "s2", "b"), ("e-1", None, "s1", "c")], schema
    )
    unique, dups = transforms.dedupe_by_event_id(anonymous)
    assert sorted(r["session_id"] for r in unique.collect()) == ["s1", "s2"]
    assert dups.count() == 1
    # a user's event and a session's event never share a key, even with equal raw ids
    mixed = spark.createDataFrame([("e-1", "k", None, "a"), ("e-1", None, "k", "b")], schema)
    assert transforms.dedupe_by_event_id(mixed)[0].count() == 2


def test_silver_merges_on_user_and_event_id():
    from features.tables import SILVER_EVENTS

    assert SILVER_EVENTS.keys == (c.USER_KEY, c.EVENT_ID)


def test_validation_limits_are_the_shared_ones(spark):
    rows = [
        {**GOOD, "price": "NaN"},
        {**GOOD, "price": "Infinity"},
        {**GOOD, "price": "1.0E10"},
        {**GOOD, "quantity": "2147483648"},
        {**GOOD, "timestamp": "1969-12-31T23:59:59.999Z"},
        {**GOOD, "item_id": "ok-max", "quantity": "2147483647", "price": "1.0E9"},
        {**GOOD, "item_id": "ok-min", "timestamp": "1970-01-01T00:00:00.000Z", "price": "5e-324"},
    ]
    result = split(spark, rows)
    reasons = sorted(r[c.REASON] for r in result.quarantined.collect())
    assert reasons == sorted(["invalid_price"] * 3 + ["invalid_quantity", "timestamp_before_min"])
    assert sorted(r[c.ITEM_ID] for r in result.valid.collect()) == ["ok-max", "ok-min"]
