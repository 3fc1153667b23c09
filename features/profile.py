"""User profile features (gold.user_profile): the shop's view of one customer as of ds.

Pure DataFrame -> DataFrame transforms, like features/transforms.py. Every step is a group-by
per user (or per user and hour / category / brand) and joins between per-user frames, so the
cost is linear in events. Quantile scores never use a global window (``percent_rank`` or
``ntile`` without a partition moves every row into one task): the thresholds are one
``percentile_approx`` aggregate row, broadcast to the users and compared there (bucketing).

Works on data without prices (the generic CSV needs only user, item, type and time): monetary
value, M score, median price and price band are then null, everything else is filled.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import columns as c
from features.transforms import end_of_day

#: Quantiles that cut a distribution into five equal parts (scores and bands 1..5).
QUINTILES = (0.2, 0.4, 0.6, 0.8)
#: percentile_approx accuracy (its default): exact on up to this many distinct values.
ACCURACY = 10_000
#: Hours of day kept in preferred_hours.
TOP_HOURS = 3
#: The segment of a user who never bought anything.
BROWSER = "browser"


def _before(events: DataFrame, ds: date) -> DataFrame:
    return events.where(F.col(c.EVENT_TIME) < F.lit(end_of_day(ds)))


def _days_since(col: str, ds: date) -> Column:
    """Whole days from ``col``'s date to ds (0: that same day)."""
    return F.datediff(F.lit(ds), F.to_date(F.col(col)))


def item_prices(catalog: DataFrame, events: DataFrame, ds: date) -> DataFrame:
    """(item_id, price): the catalog's price, else the mean price the item's events carried
    (items seen only in events, catalogs without prices); items with neither are absent."""
    seen = (
        _before(events, ds)
        .where(F.col(c.PRICE).isNotNull())
        .groupBy(c.ITEM_ID)
        .agg(F.avg(c.PRICE).alias("_event_price"))
    )
    listed = catalog.where(F.col(c.PRICE).isNotNull()).select(c.ITEM_ID, c.PRICE)
    return (
        listed.join(seen, c.ITEM_ID, "full")
        .select(c.ITEM_ID, F.coalesce(F.col(c.PRICE), F.col("_event_price")).alias(c.PRICE))
        .where(F.col(c.PRICE).isNotNull())
    )


def user_activity(
    events: DataFrame,
    prices: DataFrame,
    *,
    ds: date,
    purchase_type: str = "purchase",
    col_user: str = c.USER_KEY,
) -> DataFrame:
    """Recency, frequency and monetary value per user from the events before the end of ds.

    Frequency counts distinct purchase baskets: the session when the event has one (an
    Online Retail invoice), else each purchase event on its own. Monetary value sums price x
    quantity (quantity 1 when absent) over the purchases whose price is known, the event's
    own price first, else the item's (``prices``); null when none is known."""
    before = _before(events, ds)
    purchase = F.col(c.EVENT_TYPE) == purchase_type
    basket = F.coalesce(
        F.concat(F.lit("s:"), F.col(c.SESSION_ID)), F.concat(F.lit("e:"), F.col(c.EVENT_ID))
    )
    priced = before.join(prices.withColumnRenamed(c.PRICE, "_item_price"), c.ITEM_ID, "left")
    amount = F.coalesce(F.col(c.PRICE), F.col("_item_price")) * F.coalesce(
        F.col(c.QUANTITY), F.lit(1)
    ).cast("double")
    return (
        priced.groupBy(col_user)
        .agg(
            F.count(F.lit(1)).alias(c.N_EVENTS),
            F.max(c.EVENT_TIME).alias(c.LAST_EVENT_TIME),
            F.max(F.when(purchase, F.col(c.EVENT_TIME))).alias(c.LAST_PURCHASE_TIME),
            F.count_distinct(F.when(purchase, basket)).alias(c.FREQUENCY),
            F.sum(F.when(purchase, amount)).alias(c.MONETARY),
        )
        .withColumns(
            {
                c.DAYS_SINCE_LAST_EVENT: _days_since(c.LAST_EVENT_TIME, ds),
                c.DAYS_SINCE_LAST_PURCHASE: _days_since(c.LAST_PURCHASE_TIME, ds),
            }
        )
    )


def _quintile_thresholds(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    """One row: for each name, the array of its column's QUINTILES (null when the column has
    no non-null value). An aggregate, so it runs in parallel with a final merge."""
    return df.agg(
        *(
            F.percentile_approx(col, list(QUINTILES), ACCURACY).alias(name)
            for name, col in columns.items()
        )
    )


def _above(value: Column, thresholds: str) -> Column:
    """How many of the quintile thresholds ``value`` exceeds (0..4)."""
    return sum(
        (
            F.when(value > F.col(thresholds)[i], F.lit(1)).otherwise(F.lit(0))
            for i in range(len(QUINTILES))
        ),
        F.lit(0),
    )


def segment_of(r: Column, f: Column) -> Column:
    """The named RFM segment of the R and F scores (the usual R x F grid; M stays out, as
    many shops' data carry no prices). Checked in this order:

    champions (r >= 4, f >= 4), at_risk (r <= 2, f >= 3: bought often, not lately), loyal
    (f >= 4), potential_loyalist (r >= 4, f 2..3), new (r >= 4, f == 1), hibernating (r <= 2),
    need_attention (the rest: r == 3, f <= 3); a user who never bought is ``browser``."""
    return (
        F.when(f.isNull(), F.lit(BROWSER))
        .when((r >= 4) & (f >= 4), "champions")
        .when((r <= 2) & (f >= 3), "at_risk")
        .when(f >= 4, "loyal")
        .when((r >= 4) & (f >= 2), "potential_loyalist")
        .when(r >= 4, "new")
        .when(r <= 2, "hibernating")
        .otherwise("need_attention")
    )


def rfm_scores(activity: DataFrame) -> DataFrame:
    """``activity`` (user_activity) plus r_score, f_score, m_score (1..5, 5 best) and the
    segment. Scores rank buyers only (frequency > 0; the others get nulls and ``browser``)
    against the buyers' quintiles: R = 5 - (thresholds the days since the last purchase
    exceed), F and M = 1 + (thresholds the value exceeds). Ties share a score, so with many
    one-time buyers F is 1 for all of them."""
    buyer = F.col(c.FREQUENCY) > 0
    thresholds = _quintile_thresholds(
        activity,
        {
            "_r": F.col(c.DAYS_SINCE_LAST_PURCHASE),
            "_f": F.when(buyer, F.col(c.FREQUENCY)),
            "_m": F.col(c.MONETARY),
        },
    )
    r_score = F.lit(5) - _above(F.col(c.DAYS_SINCE_LAST_PURCHASE), "_r")
    f_score = F.lit(1) + _above(F.col(c.FREQUENCY), "_f")
    m_score = F.lit(1) + _above(F.col(c.MONETARY), "_m")
    # one row: a broadcast to every user, not a cross product
    scored = activity.crossJoin(F.broadcast(thresholds)).select(
        *activity.columns,
        F.when(buyer, r_score).cast("int").alias(c.R_SCORE),
        F.when(buyer, f_score).cast("int").alias(c.F_SCORE),
        F.when(buyer & F.col(c.MONETARY).isNotNull(), m_score).cast("int").alias(c.M_SCORE),
    )
    return scored.withColumn(c.SEGMENT, segment_of(F.col(c.R_SCORE), F.col(c.F_SCORE)))


def top_shares(
    strength: DataFrame,
    catalog: DataFrame,
    attribute: str,
    *,
    top_n: int,
    col_user: str = c.USER_KEY,
) -> DataFrame:
    """(user_key, array<struct<attribute, share>>): the user's ``top_n`` values of a catalog
    ``attribute`` (category, brand) by their share of the user's strength over items that
    have one, largest first (ties by name). Items without the attribute are left out."""
    labelled = catalog.where(F.col(attribute).isNotNull()).select(c.ITEM_ID, attribute)
    per_value = (
        strength.join(labelled, c.ITEM_ID)
        .groupBy(col_user, attribute)
        .agg(F.sum(c.STRENGTH).alias("_s"))
    )
    totals = per_value.groupBy(col_user).agg(F.sum("_s").alias("_total"))
    shared = per_value.join(totals, col_user).withColumn(c.SHARE, F.col("_s") / F.col("_total"))
    ranked = shared.groupBy(col_user).agg(
        F.sort_array(
            F.collect_list(F.struct((-F.col(c.SHARE)).alias("_k"), attribute, c.SHARE))
        ).alias("_ranked")
    )
    return ranked.select(
        col_user,
        F.transform(
            F.slice("_ranked", 1, top_n),
            lambda e: F.struct(
                F.coalesce(e[attribute], F.lit("")).alias(attribute),
                F.coalesce(e[c.SHARE], F.lit(0.0)).alias(c.SHARE),
            ),
        ).alias(attribute),
    )


def price_bands(strength: DataFrame, prices: DataFrame, *, col_user: str = c.USER_KEY) -> DataFrame:
    """(user_key, median_price, price_band): the median price of the items the user
    interacted with (percentile_approx: the lower middle for an even count) and its band
    1..5 against the catalog's price quintiles (1: the cheapest fifth of ``prices``);
    users none of whose items has a price are absent."""
    thresholds = _quintile_thresholds(prices, {"_p": F.col(c.PRICE)})
    medians = (
        strength.join(prices, c.ITEM_ID)
        .groupBy(col_user)
        .agg(F.percentile_approx(c.PRICE, 0.5, ACCURACY).alias(c.MEDIAN_PRICE))
    )
    band = F.lit(1) + _above(F.col(c.MEDIAN_PRICE), "_p")
    return medians.crossJoin(F.broadcast(thresholds)).select(  # one row: a broadcast
        col_user, c.MEDIAN_PRICE, band.cast("int").alias(c.PRICE_BAND)
    )


def preferred_hours(
    events: DataFrame, *, ds: date, top: int = TOP_HOURS, col_user: str = c.USER_KEY
) -> DataFrame:
    """(user_key, preferred_hours): the ``top`` hours of day (0..23, UTC: the jobs' session
    time zone) with the most events before the end of ds, most first (ties: earlier hour)."""
    counts = (
        _before(events, ds)
        .groupBy(col_user, F.hour(c.EVENT_TIME).alias("_hour"))
        .agg(F.count(F.lit(1)).alias("_n"))
    )
    ranked = counts.groupBy(col_user).agg(
        F.sort_array(F.collect_list(F.struct((-F.col("_n")).alias("_k"), "_hour"))).alias("_r")
    )
    return ranked.select(
        col_user,
        F.transform(F.slice("_r", 1, top), lambda e: F.coalesce(e["_hour"], F.lit(-1))).alias(
            c.PREFERRED_HOURS
        ),
    )


def _empty_shares(name: str) -> Column:
    element = T.StructType(
        [T.StructField(name, T.StringType(), False), T.StructField(c.SHARE, T.DoubleType(), False)]
    )
    return F.array().cast(T.ArrayType(element, False))


def user_profile(
    events: DataFrame,
    strength: DataFrame,
    catalog: DataFrame,
    *,
    ds: date,
    top_n: int = 5,
    purchase_type: str = "purchase",
    col_user: str = c.USER_KEY,
) -> DataFrame:
    """One row per user with events before the end of ds, in gold.user_profile's shape
    (without ds): user_activity + rfm_scores, top categories and brands (top_shares over
    ``strength``: gold.user_item_strength, so hidden items do not count), price band over
    the catalog's prices (item_prices), preferred hours."""
    brand = F.col(c.BRAND) if c.BRAND in catalog.columns else F.lit(None).cast("string")
    catalog = catalog.select(c.ITEM_ID, c.CATEGORY, brand.alias(c.BRAND), c.PRICE)
    prices = item_prices(catalog, events, ds)
    scored = rfm_scores(
        user_activity(events, prices, ds=ds, purchase_type=purchase_type, col_user=col_user)
    )
    categories = top_shares(strength, catalog, c.CATEGORY, top_n=top_n, col_user=col_user)
    brands = top_shares(strength, catalog, c.BRAND, top_n=top_n, col_user=col_user)
    profile = (
        scored.join(categories, col_user, "left")
        .join(brands, col_user, "left")
        .join(price_bands(strength, prices, col_user=col_user), col_user, "left")
        .join(preferred_hours(events, ds=ds, col_user=col_user), col_user, "left")
    )
    return profile.select(
        F.col(col_user).alias(c.USER_KEY),
        c.N_EVENTS,
        c.LAST_EVENT_TIME,
        c.DAYS_SINCE_LAST_EVENT,
        c.LAST_PURCHASE_TIME,
        c.DAYS_SINCE_LAST_PURCHASE,
        F.col(c.FREQUENCY).cast("long").alias(c.FREQUENCY),
        F.col(c.MONETARY).cast("double").alias(c.MONETARY),
        c.R_SCORE,
        c.F_SCORE,
        c.M_SCORE,
        c.SEGMENT,
        F.coalesce(F.col(c.CATEGORY), _empty_shares(c.CATEGORY)).alias(c.TOP_CATEGORIES),
        F.coalesce(F.col(c.BRAND), _empty_shares(c.BRAND)).alias(c.TOP_BRANDS),
        c.MEDIAN_PRICE,
        c.PRICE_BAND,
        F.coalesce(
            F.col(c.PREFERRED_HOURS), F.array().cast(T.ArrayType(T.IntegerType(), False))
        ).alias(c.PREFERRED_HOURS),
    )
