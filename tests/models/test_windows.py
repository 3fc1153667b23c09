"""Windows fitted to the data's span, on hand-made events."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from features import columns as c
from models.windows import SPAN_FRACTIONS, choose_windows, configured, span_windows

END = datetime(2024, 1, 11)
POSITIVE = ["view", "purchase"]


def test_span_windows_are_whole_hours_of_the_span():
    first = END - timedelta(hours=100)
    got = [(w.holdout_hours, w.validation_hours) for w in span_windows(first, END)]
    assert got == [(5.0, 5.0), (10.0, 10.0), (15.0, 15.0), (20.0, 20.0), (25.0, 25.0)]
    assert len(got) == len(SPAN_FRACTIONS)
    # Three hours of data: one-hour windows, never a validation window reaching the start.
    short = span_windows(END - timedelta(hours=3), END)
    assert [(w.cutoff, w.validation_start) for w in short] == [
        (END - timedelta(hours=1), END - timedelta(hours=2))
    ]
    assert all(w.adapted for w in short)


def test_configured_windows():
    w = configured(END, 14, 7)
    assert w.cutoff == END - timedelta(days=14) and w.validation_start == END - timedelta(days=21)
    assert not w.adapted and w.holdout_hours == 14 * 24 and w.validation_hours == 7 * 24


def _events(spark, rows):
    return spark.createDataFrame(
        [(u, "i1", t, at) for u, t, at in rows],
        f"{c.USER_KEY} string, {c.ITEM_ID} string, {c.EVENT_TYPE} string, {c.EVENT_TIME} timestamp",
    )


def ten_days(spark):
    """Ten days (240 h): three users buy 2 h before the end, three 16 h before, all with
    history on day one; a newcomer's only event is in the last hour (never counted)."""
    rows = []
    for i in range(3):
        rows += [
            (f"h{i}", "view", datetime(2024, 1, 1)),
            (f"h{i}", "purchase", END - timedelta(hours=2)),
        ]
        rows += [
            (f"v{i}", "view", datetime(2024, 1, 1)),
            (f"v{i}", "purchase", END - timedelta(hours=16)),
        ]
    rows.append(("newcomer", "view", END - timedelta(minutes=30)))
    rows.append(("h0", "remove_from_cart", END - timedelta(hours=1)))  # not positive
    return _events(spark, rows)


@pytest.mark.spark
def test_a_short_history_gets_windows_that_fit_it(spark):
    w = choose_windows(
        ten_days(spark),
        END,
        holdout_days=14,
        validation_days=14,
        min_users=3,
        positive_types=POSITIVE,
    )
    # 5% of 240 h = 12 h: hold-out [end-12h, end) holds the h users, validation
    # [end-24h, end-12h) the v users; the 14-day windows held no one with history.
    assert w.adapted and w.enough
    assert (w.holdout_hours, w.validation_hours) == (12.0, 12.0)
    assert (w.holdout_users, w.validation_users) == (3, 3)
    assert "leave 0 / 0 users" in w.note and "12 hours" in w.describe()


@pytest.mark.spark
def test_too_few_users_anywhere_is_flagged_not_tuned(spark):
    w = choose_windows(
        ten_days(spark),
        END,
        holdout_days=14,
        validation_days=14,
        min_users=4,
        positive_types=POSITIVE,
    )
    # Wider windows put both groups in the hold-out and nobody in validation: 12 h keeps 3/3.
    assert not w.enough and (w.holdout_users, w.validation_users) == (3, 3)
    assert "nothing is tuned" in w.note


@pytest.mark.spark
def test_enough_history_keeps_the_configured_windows(spark):
    start = END - timedelta(days=60)
    rows = []
    for i in range(4):
        rows += [(f"u{i}", "view", start), (f"u{i}", "purchase", END - timedelta(days=3))]
        rows += [(f"u{i}", "purchase", END - timedelta(days=20))]
    w = choose_windows(
        _events(spark, rows),
        END,
        holdout_days=14,
        validation_days=14,
        min_users=4,
        positive_types=POSITIVE,
    )
    assert not w.adapted and w.enough and w.note == ""
    assert w == configured(END, 14, 14).__class__(
        configured(END, 14, 14).validation_start,
        END - timedelta(days=14),
        END,
        holdout_users=4,
        validation_users=4,
    )
