"""The attribution job on real Spark, Delta and MLflow: hand-checked attribution rules on
tiny frames, then A/A and A/B days of a seeded shopper model (tests/pipelines/
shopper_model.py), whose outcomes the job must recover exactly and judge correctly."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import mlflow
import pytest
from pyspark.sql import types as T

from features import columns as c
from features import experiments as fx
from features.tables import GOLD_EXPERIMENT_RESULTS, SILVER_EVENTS, SILVER_IMPRESSIONS
from pipelines import experiments
from recolake import tracking
from recolake.onlinestore import session_subject, user_subject
from tests.conftest import TEST_KEY, make_settings
from tests.pipelines.shopper_model import EXPERIMENT, ShopperModel, simulate_lake

pytestmark = pytest.mark.spark

KEY = TEST_KEY.encode()
DS = date(2026, 12, 1)
T0 = datetime(2026, 12, 1, 10, 0)
WINDOW = timedelta(hours=24)

IMPRESSIONS = SILVER_IMPRESSIONS.schema


def events_schema() -> T.StructType:
    """silver.events with the nullable recommendation_id; user_key nullable for anonymous
    session events."""
    fields = [
        T.StructField(f.name, f.dataType, True if f.name == c.USER_KEY else f.nullable)
        for f in SILVER_EVENTS.schema.fields
    ]
    if c.RECOMMENDATION_ID not in SILVER_EVENTS.schema.fieldNames():
        fields.append(T.StructField(c.RECOMMENDATION_ID, T.StringType(), True))
    return T.StructType(fields)


def impression_rows(rec, user, items, when, variant="control", experiment="exp"):
    return [
        (rec, user, None, user_subject(user), experiment, variant, "recommendations", item,
         pos, "als", when, when.date())
        for pos, item in enumerate(items, 1)
    ]  # fmt: skip


def event_row(event_id, user, item, etype, when, rec=None, qty=None, price=None, session=None):
    return (event_id, user, item, etype, when, session, qty, price, "api", DS, when.date(), rec)


def credits(spark, impressions, events):
    imps = spark.createDataFrame(impressions, IMPRESSIONS)
    evs = spark.createDataFrame(events, events_schema())
    rows = fx.attribute(imps, fx.creditable_events(evs, key=KEY), window=WINDOW).collect()
    return {r[fx._EVENT].split("\u0000")[1]: (r[c.RECOMMENDATION_ID], r.explicit) for r in rows}


def test_explicit_recommendation_id_wins_over_the_last_impression(spark):
    imps = impression_rows("r1", "u", ["a", "b"], T0) + impression_rows(
        "r2", "u", ["a", "c"], T0 + timedelta(hours=1)
    )
    got = credits(
        spark,
        imps,
        [
            event_row("e1", "u", "a", "view", T0 + timedelta(hours=2), rec="r1"),
            event_row("e2", "u", "a", "view", T0 + timedelta(hours=2)),  # no id: last = r2
            # names r1, which did not show c: falls back to the last that did (r2)
            event_row("e3", "u", "c", "view", T0 + timedelta(hours=2), rec="r1"),
            # names another subject's list: not theirs, so the last of u's own
            event_row("e4", "u", "a", "purchase", T0 + timedelta(hours=2), rec="other", qty=1),
        ],
    )
    assert got == {
        "e1": ("r1", True),
        "e2": ("r2", False),
        "e3": ("r2", False),
        "e4": ("r2", False),
    }


def test_events_outside_the_window_or_of_unshown_items_are_not_credited(spark):
    imps = impression_rows("r1", "u", ["a"], T0) + impression_rows("r9", "v", ["b"], T0)
    got = credits(
        spark,
        imps,
        [
            event_row("late", "u", "a", "purchase", T0 + timedelta(hours=24, seconds=1), "r1"),
            event_row("edge", "u", "a", "view", T0 + timedelta(hours=24)),  # inclusive bound
            event_row("before", "u", "a", "view", T0 - timedelta(minutes=1), "r1"),
            event_row("unshown", "u", "z", "view", T0 + timedelta(minutes=5), "r1"),
            event_row("other-user", "u", "b", "view", T0 + timedelta(minutes=5), "r9"),
            event_row("not-credited-type", "u", "a", "remove_from_cart", T0 + timedelta(1)),
        ],
    )
    assert got == {"edge": ("r1", False)}


def test_an_event_shown_by_three_impressions_is_credited_once_to_the_last(spark):
    imps = [
        row
        for h, rec in enumerate(["r1", "r2", "r3"])
        for row in impression_rows(rec, "u", ["a", "b"], T0 + timedelta(hours=h))
    ]
    evs = [event_row("e1", "u", "a", "purchase", T0 + timedelta(hours=5), qty=2, price=3.0)]
    assert credits(spark, imps, evs) == {"e1": ("r3", False)}
    imp_df = spark.createDataFrame(imps, IMPRESSIONS)
    outcomes = fx.impression_outcomes(
        imp_df,
        fx.attribute(
            imp_df,
            fx.creditable_events(spark.createDataFrame(evs, events_schema()), key=KEY),
            window=WINDOW,
        ),
    )
    counts = fx.variant_counts(outcomes).first()
    assert (counts["impressions"], counts["items_shown"], counts["purchases"]) == (3, 6, 1)
    assert (counts["converted_impressions"], counts[c.REVENUE]) == (1, 6.0)


def test_anonymous_session_events_meet_the_session_subject(spark):
    """An anonymous event (no user_key) is the session's ``s:<hmac>`` subject, exactly as the
    API names it; a logged-in event of that session still meets the session's list."""
    subject = session_subject("sess-1", KEY)
    imps = [
        ("r1", None, "sess-1", subject, "exp", "control", "recommendations", "a", 1, "als",
         T0, T0.date()),
    ]  # fmt: skip
    got = credits(
        spark,
        imps,
        [
            event_row("e1", None, "a", "view", T0 + timedelta(minutes=1), session="sess-1"),
            event_row("e2", "u", "a", "add_to_cart", T0 + timedelta(minutes=2), session="sess-1"),
            event_row("e3", None, "a", "view", T0 + timedelta(minutes=1), session="sess-2"),
        ],
    )
    assert got == {"e1": ("r1", False), "e2": ("r1", False)}
    anonymous = fx.creditable_events(
        spark.createDataFrame(
            [event_row("e1", None, "a", "view", T0, session="sess-1")], events_schema()
        ),
        key=KEY,
    ).collect()
    assert [r[c.SUBJECT] for r in anonymous] == [subject]


@pytest.fixture(scope="module")
def lake_settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("experiments"))


def run_day(spark, settings, lake, ds):
    return experiments.run_on(
        spark,
        settings,
        ds,
        spark.createDataFrame(lake.impressions, IMPRESSIONS),
        spark.createDataFrame(lake.events, events_schema()),
    )


def check_truth(result, lake):
    """The job recovers exactly what the shopper model did: nothing lost, nothing credited
    twice, no noise credited."""
    by_variant = {r.counts.variant: r.counts for r in result.results}
    assert set(by_variant) == set(lake.truth)
    for variant, truth in lake.truth.items():
        got = by_variant[variant]
        assert got.revenue == pytest.approx(truth.revenue)
        assert got.revenue_sq == pytest.approx(truth.revenue_sq)
        assert got.__dict__ | {"revenue": 0, "revenue_sq": 0} == truth.__dict__ | {
            "revenue": 0,
            "revenue_sq": 0,
        }


def test_aa_day_finds_no_difference(spark, lake_settings):
    lake = simulate_lake(ShopperModel(), seed=5, ds=DS, key=KEY)
    result = run_day(spark, lake_settings, lake, DS)
    check_truth(result, lake)
    print(result.report_text())
    treatment = next(r for r in result.results if r.counts.variant == "treatment")
    assert treatment.control_variant == "control"
    for rate, comparison in treatment.vs_control.items():
        assert comparison.p_value > 0.05, (rate, comparison)


def test_ab_day_through_the_lake_finds_the_better_variant_logs_and_renders(spark, lake_settings):
    """The whole job, ``recolake experiments --ds``, reading silver from Delta (users only:
    silver.events keeps no anonymous events)."""
    ds = DS + timedelta(days=1)
    model = ShopperModel(preferred_share={"control": 0.05, "treatment": 0.2}, anonymous_share=0.0)
    lake = simulate_lake(model, seed=5, ds=ds, key=KEY)
    SILVER_IMPRESSIONS.overwrite(
        spark.createDataFrame(lake.impressions, IMPRESSIONS), lake_settings
    )
    SILVER_EVENTS.overwrite(spark.createDataFrame(lake.events, SILVER_EVENTS.schema), lake_settings)
    result = experiments.main(["--ds", ds.isoformat()], spark=spark, settings=lake_settings)
    check_truth(result, lake)
    print(result.report_text())
    treatment = next(r for r in result.results if r.counts.variant == "treatment")
    for rate in ("ctr", "conversion"):
        assert treatment.vs_control[rate].diff > 0, rate
        assert treatment.vs_control[rate].p_value < 0.05, rate

    # Gold: this ds's rows, replaced (not appended) on a re-run.
    experiments.run(spark, lake_settings, ds)
    gold = GOLD_EXPERIMENT_RESULTS.read(spark, lake_settings).where(f"ds = DATE'{ds}'")
    rows = {r[c.VARIANT]: r for r in gold.collect()}
    assert set(rows) == {"control", "treatment"}
    assert rows["treatment"]["ctr_p_value"] == pytest.approx(treatment.vs_control["ctr"].p_value)
    assert rows["control"]["ctr_p_value"] is None and rows["control"][c.IS_CONTROL]
    assert rows["treatment"][c.EXPERIMENT] == EXPERIMENT

    # MLflow: a run tagged step=experiments with the variant's metrics.
    client = tracking.configure(lake_settings)
    run = mlflow.get_run(result.run_id)
    assert run.data.tags[tracking.STEP_TAG] == "experiments"
    assert run.data.tags["ds"] == ds.isoformat()
    key = experiments.metric_name(EXPERIMENT, "treatment", "ctr")
    assert run.data.metrics[key] == pytest.approx(treatment.rates["ctr"].value)
    assert client.list_artifacts(result.run_id, "experiments")

    # Report: the table and the plot.
    html = result.report.read_text()
    assert result.report.parent.name == "experiments" and "treatment" in html
    png = result.report.parent / "experiment-0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_day_without_impressions_writes_nothing_and_says_so(spark, lake_settings):
    """What the nightly does before any experiment ran: no rows, a report that says so."""
    ds = DS + timedelta(days=10)
    result = experiments.run(spark, lake_settings, ds)
    assert result.results == [] and result.report_text() == "no impressions"
    assert GOLD_EXPERIMENT_RESULTS.read(spark, lake_settings).where(f"ds = DATE'{ds}'").count() == 0
    assert "No impressions" in result.report.read_text()
