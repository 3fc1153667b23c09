"""Statistics of an online experiment, from per-variant sufficient statistics.

Pure Python (no Spark): the attribution job (pipelines/experiments.py) reduces the lake to
one ``VariantCounts`` per (experiment, variant) and this module turns them into rates with
95% confidence intervals and two-sided tests against the control, so the statistics are
tested on thousands of simulated experiments in milliseconds.

- CTR (impressions with a credited view / impressions) and conversion (impressions with a
  credited purchase / impressions): Wilson score intervals, two-proportion z-test (pooled).
- Revenue per impression: normal interval from the per-impression variance (sum and sum of
  squares), Welch's t-test (unequal variances, Welch-Satterthwaite degrees of freedom).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from scipy import stats

from features import columns as c

#: Two-sided 95%.
Z95 = 1.959963984540054

#: The variant every other one is compared with, when an experiment declares it.
CONTROL = "control"


@dataclass(frozen=True)
class VariantCounts:
    """What the lake says about one variant on one day (the job's only output to here)."""

    experiment: str
    variant: str
    impressions: int  # recommendation lists shown
    items_shown: int
    clicks: int  # credited views
    carts: int
    purchases: int
    revenue: float  # quantity * price of credited purchases
    revenue_sq: float  # sum over impressions of (revenue of the impression)^2
    clicked_impressions: int
    converted_impressions: int


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Comparison:
    """Variant minus control, with the two-sided p-value of "no difference"."""

    diff: float | None
    p_value: float | None


@dataclass(frozen=True)
class VariantResult:
    counts: VariantCounts
    control_variant: str
    rates: dict[str, Estimate]  # by name in columns.EXPERIMENT_RATES
    vs_control: dict[str, Comparison]  # empty for the control itself

    @property
    def is_control(self) -> bool:
        return self.counts.variant == self.control_variant

    def as_row(self) -> dict[str, object]:
        """One gold.experiment_results row (without ds and window): names from columns."""
        counts = asdict(self.counts)
        counts.pop("revenue_sq")
        row: dict[str, object] = {
            **counts,
            c.CONTROL_VARIANT: self.control_variant,
            c.IS_CONTROL: self.is_control,
        }
        for rate in c.EXPERIMENT_RATES:
            estimate = self.rates[rate]
            comparison = self.vs_control.get(rate, Comparison(None, None))
            row[rate] = estimate.value
            row[f"{rate}_low"] = estimate.low
            row[f"{rate}_high"] = estimate.high
            row[f"{rate}_diff"] = comparison.diff
            row[f"{rate}_p_value"] = comparison.p_value
        return row


def wilson_interval(successes: int, n: int, z: float = Z95) -> Estimate:
    """Wilson score interval: stays inside [0, 1] and is honest for rates near 0 (CTRs are)."""
    if n <= 0:
        return Estimate(None, None, None)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> Comparison:
    """p1 - p2 and the pooled two-proportion z-test's two-sided p-value."""
    if n1 <= 0 or n2 <= 0:
        return Comparison(None, None)
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:  # both all-zero or both all-one: no evidence of a difference
        return Comparison(p1 - p2, 1.0)
    z = (p1 - p2) / se
    return Comparison(p1 - p2, math.erfc(abs(z) / math.sqrt(2)))


def mean_and_variance(total: float, total_sq: float, n: int) -> tuple[float, float]:
    """Mean and unbiased sample variance from a sum and a sum of squares."""
    mean = total / n
    if n < 2:
        return mean, 0.0
    return mean, max(0.0, (total_sq - n * mean * mean) / (n - 1))


def mean_interval(total: float, total_sq: float, n: int, z: float = Z95) -> Estimate:
    """Normal-approximation interval of a per-impression mean (revenue per impression)."""
    if n <= 0:
        return Estimate(None, None, None)
    mean, variance = mean_and_variance(total, total_sq, n)
    half = z * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half)


def welch_test(
    total1: float, total_sq1: float, n1: int, total2: float, total_sq2: float, n2: int
) -> Comparison:
    """mean1 - mean2 and Welch's two-sided t-test p-value (unequal variances)."""
    if n1 < 2 or n2 < 2:
        return Comparison(None, None)
    m1, v1 = mean_and_variance(total1, total_sq1, n1)
    m2, v2 = mean_and_variance(total2, total_sq2, n2)
    a, b = v1 / n1, v2 / n2
    if a + b == 0:  # no variance anywhere: equal means are no evidence, unequal ones are
        return Comparison(m1 - m2, 1.0 if m1 == m2 else 0.0)
    t = (m1 - m2) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    return Comparison(m1 - m2, float(2 * stats.t.sf(abs(t), df)))


def choose_control(variants: Iterable[str]) -> str:
    """The variant named ``control``, else the first alphabetically."""
    names = sorted(set(variants))
    if not names:
        raise ValueError("an experiment without variants has no control")
    return CONTROL if CONTROL in names else names[0]


def rates(counts: VariantCounts) -> dict[str, Estimate]:
    n = counts.impressions
    return {
        "ctr": wilson_interval(counts.clicked_impressions, n),
        "conversion": wilson_interval(counts.converted_impressions, n),
        "revenue_per_impression": mean_interval(counts.revenue, counts.revenue_sq, n),
    }


def compare(variant: VariantCounts, control: VariantCounts) -> dict[str, Comparison]:
    """Each rate of ``variant`` against ``control`` (difference = variant - control)."""
    v, k = variant, control
    return {
        "ctr": two_proportion_test(
            v.clicked_impressions, v.impressions, k.clicked_impressions, k.impressions
        ),
        "conversion": two_proportion_test(
            v.converted_impressions, v.impressions, k.converted_impressions, k.impressions
        ),
        "revenue_per_impression": welch_test(
            v.revenue, v.revenue_sq, v.impressions, k.revenue, k.revenue_sq, k.impressions
        ),
    }


def experiment_results(counts: Iterable[VariantCounts]) -> list[VariantResult]:
    """Every variant's rates and, for the non-control ones, the test against the control of
    its experiment; ordered by experiment, control first, then variant name."""
    by_experiment: dict[str, dict[str, VariantCounts]] = defaultdict(dict)
    for row in counts:
        if row.variant in by_experiment[row.experiment]:
            raise ValueError(f"variant {row.variant!r} of {row.experiment!r} given twice")
        by_experiment[row.experiment][row.variant] = row
    results = []
    for experiment in sorted(by_experiment):
        variants = by_experiment[experiment]
        control_name = choose_control(variants)
        control = variants[control_name]
        for name in sorted(variants, key=lambda v: (v != control_name, v)):
            row = variants[name]
            results.append(
                VariantResult(
                    counts=row,
                    control_variant=control_name,
                    rates=rates(row),
                    vs_control={} if name == control_name else compare(row, control),
                )
            )
    return results
