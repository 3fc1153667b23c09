"""Attribution of shopper events to the recommendations that showed the item: pure
DataFrame -> DataFrame transforms (the job is pipelines/experiments.py).

An event (view, add_to_cart, purchase) of an item is credited to at most one impression: the
one its ``recommendation_id`` names, if that impression was shown to the event's subject,
showed the item and lies within the attribution window before the event; else the last
impression of that subject that showed the item within the window. Events meet impressions
on (subject, item) only, so the work grows with the impressions of each subject's items
inside the window, never with users x items.

Subjects are the real-time ones (recolake.onlinestore): ``u:<user_key>`` for a known user and
``s:<hmac of the session id>`` (= onlinestore.session_subject) for a session. An event may be
credited under either of its subjects: an impression shown to the anonymous session still
counts when the shopper logs in before buying.
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from features import columns as c
from features.transforms import pseudonymise_column
from recolake.onlinestore.keys import SESSION_PREFIX, USER_PREFIX

#: Label of impressions served outside any experiment (experiment null in the log).
NO_EXPERIMENT = "none"

VIEW, CART, PURCHASE = "view", "add_to_cart", "purchase"
#: Event types an impression can earn (a view of a shown item is its click).
CREDITED_TYPES = (VIEW, CART, PURCHASE)

_EVENT = "_event"  # one event: its primary subject and event id (silver's dedupe key)
_EXPLICIT = "_explicit"
_EVENT_RECOMMENDATION = "_event_recommendation_id"
_REVENUE_SQ = "revenue_sq"


def subject_columns(key: bytes) -> tuple[Column, Column]:
    """The user subject (null for an anonymous event) and the session subject (null without a
    session id) of a silver event, as the streaming job and the API name them."""
    user = F.concat(F.lit(USER_PREFIX), F.col(c.USER_KEY))
    session = F.when(
        F.col(c.SESSION_ID).isNotNull(),
        F.concat(
            F.lit(SESSION_PREFIX),
            pseudonymise_column(F.concat(F.lit("session:"), F.col(c.SESSION_ID)), key),
        ),
    )
    return user, session


def creditable_events(events: DataFrame, *, key: bytes) -> DataFrame:
    """Silver events -> one row per (event, subject it can be credited under), credited types
    only, with the event's revenue (quantity * price; a missing quantity counts 1, a missing
    price 0) and its explicit recommendation id (null when absent or the column is missing)."""
    user, session = subject_columns(key)
    recommendation = (
        F.col(c.RECOMMENDATION_ID)
        if c.RECOMMENDATION_ID in events.columns
        else F.lit(None).cast("string")
    )
    revenue = F.when(
        F.col(c.EVENT_TYPE) == PURCHASE,
        F.coalesce(F.col(c.QUANTITY), F.lit(1)).cast("double")
        * F.coalesce(F.col(c.PRICE), F.lit(0.0)),
    ).otherwise(F.lit(0.0))
    return events.where(F.col(c.EVENT_TYPE).isin(*CREDITED_TYPES)).select(
        F.explode(F.array_distinct(F.array_compact(F.array(user, session)))).alias(c.SUBJECT),
        F.concat_ws("\u0000", F.coalesce(user, session), F.col(c.EVENT_ID)).alias(_EVENT),
        c.ITEM_ID,
        c.EVENT_TYPE,
        c.EVENT_TIME,
        recommendation.alias(_EVENT_RECOMMENDATION),
        revenue.alias(c.REVENUE),
    )


def attribute(impressions: DataFrame, events: DataFrame, *, window: timedelta) -> DataFrame:
    """Credit each event (``creditable_events``) to one impression row (one shown item):
    the explicitly named one first, else the latest; ties broken by recommendation id, so a
    re-run credits the same. Returns one row per credited event: the event key, its type and
    revenue, the impression's recommendation_id, experiment and variant."""
    seconds = window.total_seconds()
    shown = impressions.select(
        c.RECOMMENDATION_ID,
        c.SUBJECT,
        c.ITEM_ID,
        c.IMPRESSION_TIME,
        F.coalesce(F.col(c.EXPERIMENT), F.lit(NO_EXPERIMENT)).alias(c.EXPERIMENT),
        c.VARIANT,
    )
    lag = F.unix_micros(F.col(c.EVENT_TIME)) - F.unix_micros(F.col(c.IMPRESSION_TIME))
    candidates = events.join(shown, [c.SUBJECT, c.ITEM_ID]).where(
        (lag >= 0) & (lag <= F.lit(int(seconds * 1_000_000)))
    )
    candidates = candidates.withColumn(
        _EXPLICIT,
        F.coalesce(F.col(_EVENT_RECOMMENDATION) == F.col(c.RECOMMENDATION_ID), F.lit(False)),
    )
    best = candidates.groupBy(_EVENT).agg(
        F.max_by(
            F.struct(
                c.RECOMMENDATION_ID, c.EXPERIMENT, c.VARIANT, c.EVENT_TYPE, c.REVENUE, _EXPLICIT
            ),
            F.struct(_EXPLICIT, c.IMPRESSION_TIME, c.RECOMMENDATION_ID),
        ).alias("b")
    )
    return best.select(
        _EVENT,
        *(
            F.col(f"b.{x}").alias(x)
            for x in (c.RECOMMENDATION_ID, c.EXPERIMENT, c.VARIANT, c.EVENT_TYPE, c.REVENUE)
        ),
        F.col(f"b.{_EXPLICIT}").alias("explicit"),
    )


def impression_outcomes(impressions: DataFrame, credits: DataFrame) -> DataFrame:
    """One row per recommendation list shown (``impressions`` = the cohort being measured,
    one row per shown item) with what was credited to it: items shown, clicks, carts,
    purchases, revenue."""
    lists = impressions.groupBy(c.RECOMMENDATION_ID).agg(
        F.first(F.coalesce(F.col(c.EXPERIMENT), F.lit(NO_EXPERIMENT))).alias(c.EXPERIMENT),
        F.first(c.VARIANT).alias(c.VARIANT),
        F.count(F.lit(1)).alias("items_shown"),
    )
    earned = credits.groupBy(c.RECOMMENDATION_ID).agg(
        F.count(F.when(F.col(c.EVENT_TYPE) == VIEW, 1)).alias("clicks"),
        F.count(F.when(F.col(c.EVENT_TYPE) == CART, 1)).alias("carts"),
        F.count(F.when(F.col(c.EVENT_TYPE) == PURCHASE, 1)).alias("purchases"),
        F.sum(c.REVENUE).alias(c.REVENUE),
    )
    return lists.join(earned, c.RECOMMENDATION_ID, "left").na.fill(
        {"clicks": 0, "carts": 0, "purchases": 0, c.REVENUE: 0.0}
    )


def variant_counts(outcomes: DataFrame) -> DataFrame:
    """Per (experiment, variant): the sufficient statistics of models.experiments.VariantCounts
    (counts, revenue and its sum of squares per impression)."""
    return outcomes.groupBy(c.EXPERIMENT, c.VARIANT).agg(
        F.count(F.lit(1)).alias("impressions"),
        F.sum("items_shown").alias("items_shown"),
        F.sum("clicks").alias("clicks"),
        F.sum("carts").alias("carts"),
        F.sum("purchases").alias("purchases"),
        F.sum(c.REVENUE).cast("double").alias(c.REVENUE),
        F.sum(F.col(c.REVENUE) * F.col(c.REVENUE)).cast("double").alias(_REVENUE_SQ),
        F.count(F.when(F.col("clicks") > 0, 1)).alias("clicked_impressions"),
        F.count(F.when(F.col("purchases") > 0, 1)).alias("converted_impressions"),
    )
