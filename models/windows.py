"""Evaluation and tuning windows that fit the data's span.

The configured windows (the last ``holdout_days`` before the end of ``--ds`` held out, the
``validation_days`` before them for tuning) suit a shop with months of history. On a
week-long clickstream they leave almost no one: a 14-day hold-out swallowed the whole week,
one user was evaluated, every metric was 0, tuning chose on nothing and the model was
published anyway. So both train and evaluate call ``choose_windows``: the configured windows
when each leaves at least ``min_evaluation_users`` users; otherwise the smallest hold-out and
validation windows (equal lengths, a fraction of the span, whole hours) that do; otherwise the
fraction that leaves the most, flagged as too small, and then nothing is tuned on it (the
configured ALS parameters and blend weights are used, and the report says so).

Counting is one aggregation per user over the events (linear in events, a row per user), for
every candidate at once. A user counts for a window when they have an event before it and a
positive event inside it: an upper bound of the users the evaluation scores (it also drops
items the user already had), which is what a choice between windows needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import columns as c

#: Hold-out (and validation) lengths tried, as fractions of the data's span, smallest first:
#: the smallest that leaves enough users keeps the most history for training.
SPAN_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25)


@dataclass(frozen=True)
class Windows:
    """Training before ``validation_start`` (tuning) or ``cutoff`` (evaluation); validation
    in [validation_start, cutoff); hold-out in [cutoff, end)."""

    validation_start: datetime
    cutoff: datetime
    end: datetime
    adapted: bool = False  # not the configured windows
    note: str = ""  # why, for the report and the logs
    holdout_users: int | None = None  # users with history and a positive event in the window
    validation_users: int | None = None
    enough: bool = True  # both counts reach the minimum: tuning may run

    @property
    def holdout_hours(self) -> float:
        return (self.end - self.cutoff).total_seconds() / 3600

    @property
    def validation_hours(self) -> float:
        return (self.cutoff - self.validation_start).total_seconds() / 3600

    def describe(self) -> str:
        counts = f"{self.holdout_users} hold-out / {self.validation_users} validation users"
        shape = f"hold-out {_span(self.holdout_hours)}, validation {_span(self.validation_hours)}"
        return f"{shape} ({counts}){': ' + self.note if self.note else ''}"


def configured(end: datetime, holdout_days: int, validation_days: int) -> Windows:
    cutoff = end - timedelta(days=holdout_days)
    return Windows(cutoff - timedelta(days=validation_days), cutoff, end)


def span_windows(first: datetime, end: datetime) -> list[Windows]:
    """Equal hold-out and validation windows, each a fraction of [first, end), whole hours
    (at least one), largest fraction last; duplicates (a short span) removed."""
    span_hours = (end - first).total_seconds() / 3600
    out: list[Windows] = []
    for fraction in SPAN_FRACTIONS:
        hours = max(1, round(span_hours * fraction))
        if 2 * hours >= span_hours:  # no history left before the validation window
            break
        cutoff = end - timedelta(hours=hours)
        w = Windows(cutoff - timedelta(hours=hours), cutoff, end, adapted=True)
        if not out or out[-1].cutoff != w.cutoff:
            out.append(w)
    return out


def user_counts(
    events: DataFrame, candidates: Sequence[Windows], positive_types: Sequence[str]
) -> list[tuple[int, int]]:
    """(hold-out users, validation users) of each candidate, in one pass over ``events``."""
    t, positive = F.col(c.EVENT_TIME), F.col(c.EVENT_TYPE).isin(list(positive_types))
    per_user = [F.min(t).alias("first")]
    for i, w in enumerate(candidates):
        in_holdout = positive & (t >= F.lit(w.cutoff)) & (t < F.lit(w.end))
        in_validation = positive & (t >= F.lit(w.validation_start)) & (t < F.lit(w.cutoff))
        per_user += [
            F.max(F.when(in_holdout, 1).otherwise(0)).alias(f"h{i}"),
            F.max(F.when(in_validation, 1).otherwise(0)).alias(f"v{i}"),
        ]
    users = events.groupBy(c.USER_KEY).agg(*per_user)
    totals = []
    for i, w in enumerate(candidates):
        totals += [
            F.sum(F.when((F.col("first") < F.lit(w.cutoff)) & (F.col(f"h{i}") == 1), 1)).alias(
                f"h{i}"
            ),
            F.sum(
                F.when((F.col("first") < F.lit(w.validation_start)) & (F.col(f"v{i}") == 1), 1)
            ).alias(f"v{i}"),
        ]
    row = users.agg(*totals).first()
    return [(int(row[f"h{i}"] or 0), int(row[f"v{i}"] or 0)) for i in range(len(candidates))]


def choose_windows(
    events: DataFrame,
    end: datetime,
    *,
    holdout_days: int,
    validation_days: int,
    min_users: int,
    positive_types: Sequence[str],
) -> Windows:
    """The windows train and evaluate use for ``events`` (silver) up to ``end``."""
    events = events.where(F.col(c.EVENT_TIME) < F.lit(end))
    default = configured(end, holdout_days, validation_days)
    first = events.agg(F.min(c.EVENT_TIME)).first()[0]
    candidates = [default, *(span_windows(first, end) if first is not None else [])]
    counts = user_counts(events, candidates, positive_types)
    counted = [
        replace(w, holdout_users=h, validation_users=v)
        for w, (h, v) in zip(candidates, counts, strict=True)
    ]
    chosen = next(
        (w for w in counted if min(w.holdout_users, w.validation_users) >= min_users), None
    )
    if chosen is None:
        best = max(counted, key=lambda w: min(w.holdout_users, w.validation_users))
        return replace(
            best,
            enough=False,
            note=f"no windows leave {min_users} users (min_evaluation_users): the widest "
            "count is used and nothing is tuned on it",
        )
    if chosen.adapted:
        return replace(
            chosen,
            note=f"the configured {holdout_days}-day hold-out and {validation_days}-day "
            f"validation leave {counted[0].holdout_users} / {counted[0].validation_users} users "
            f"(fewer than {min_users}): windows fitted to the data's span",
        )
    return chosen


def _span(hours: float) -> str:
    return f"{hours / 24:g} days" if hours % 24 == 0 else f"{hours:g} hours"
