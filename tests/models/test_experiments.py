"""The experiment statistics (pure Python): textbook values, parity with scipy's tests, and
their error rates over hundreds of seeded shopper-model experiments (numpy, no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from models.experiments import (
    VariantCounts,
    choose_control,
    experiment_results,
    mean_interval,
    two_proportion_test,
    welch_test,
    wilson_interval,
)
from tests.pipelines.shopper_model import ShopperModel, simulate_counts

AA = ShopperModel()
AB = ShopperModel(preferred_share={"control": 0.05, "treatment": 0.2})


def counts(variant: str, n: int, clicked: int, converted: int, revenue: list[float]):
    return VariantCounts(
        experiment="e",
        variant=variant,
        impressions=n,
        items_shown=5 * n,
        clicks=clicked,
        carts=converted,
        purchases=converted,
        revenue=sum(revenue),
        revenue_sq=sum(r * r for r in revenue),
        clicked_impressions=clicked,
        converted_impressions=converted,
    )


def test_wilson_interval_textbook_values():
    # Wilson 95% intervals (Newcombe 1998, table I): 0/10 and 5/10.
    zero = wilson_interval(0, 10)
    assert zero.value == 0 and zero.low == 0 and zero.high == pytest.approx(0.2775, abs=1e-4)
    half = wilson_interval(5, 10)
    assert (half.low, half.high) == (
        pytest.approx(0.2366, abs=1e-4),
        pytest.approx(0.7634, abs=1e-4),
    )
    assert wilson_interval(0, 0).value is None


def test_two_proportion_z_test_by_hand():
    # 30/100 vs 20/100: pooled 0.25, se sqrt(0.25*0.75*0.02) = 0.061237, z = 1.633
    result = two_proportion_test(30, 100, 20, 100)
    assert result.diff == pytest.approx(0.10)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(0.10 / math.sqrt(0.00375)))
    assert result.p_value == pytest.approx(0.1025, abs=1e-3)
    assert two_proportion_test(0, 50, 0, 60).p_value == 1.0


def test_revenue_interval_and_welch_match_numpy_and_scipy():
    rng = np.random.default_rng(3)
    a = rng.exponential(2.0, 400) * (rng.random(400) < 0.1)
    b = rng.exponential(2.5, 300) * (rng.random(300) < 0.1)
    interval = mean_interval(a.sum(), (a * a).sum(), len(a))
    se = a.std(ddof=1) / math.sqrt(len(a))
    assert interval.value == pytest.approx(a.mean())
    assert interval.low == pytest.approx(a.mean() - 1.959964 * se)
    assert interval.high == pytest.approx(a.mean() + 1.959964 * se)
    welch = welch_test(a.sum(), (a * a).sum(), len(a), b.sum(), (b * b).sum(), len(b))
    assert welch.diff == pytest.approx(a.mean() - b.mean())
    assert welch.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_control_is_named_control_else_first_alphabetically():
    assert choose_control(["b", "control", "a"]) == "control"
    assert choose_control(["treatment", "baseline"]) == "baseline"
    results = experiment_results(
        [counts("zeta", 100, 10, 2, [5.0, 5.0]), counts("alpha", 100, 20, 4, [5.0] * 4)]
    )
    assert [r.counts.variant for r in results] == ["alpha", "zeta"]
    alpha, zeta = results
    assert alpha.is_control and alpha.vs_control == {}
    assert zeta.control_variant == "alpha"
    assert zeta.vs_control["ctr"].diff == pytest.approx(0.10 - 0.20)
    row = zeta.as_row()
    assert row["ctr"] == pytest.approx(0.10) and row["ctr_p_value"] is not None
    assert alpha.as_row()["ctr_p_value"] is None and alpha.as_row()["is_control"] is True


def false_positive_rates(model: ShopperModel, seeds: range) -> dict[str, float]:
    hits = dict.fromkeys(("ctr", "conversion", "revenue_per_impression"), 0)
    for seed in seeds:
        treatment = next(
            r for r in experiment_results(simulate_counts(model, seed)) if r.vs_control
        )
        for rate, comparison in treatment.vs_control.items():
            hits[rate] += comparison.p_value < 0.05
    return {rate: n / len(seeds) for rate, n in hits.items()}


def test_aa_false_positive_rate_is_about_five_percent():
    """Under A/A every test rejects at its nominal 5%: 400 seeds, 3 sigma is +-3.3 points.
    (Not 0: a test that never rejects would make the A/B check meaningless; not 50%.)"""
    rates = false_positive_rates(AA, range(400))
    print("A/A false-positive rates:", rates)
    for rate, value in rates.items():
        assert 0.02 <= value <= 0.085, (rate, value)


def test_ab_power_of_the_simulation_design_is_high():
    """The A/B design of the Spark simulation test detects the better variant almost always,
    so that test passing is the property, not a lucky seed."""
    power = false_positive_rates(AB, range(100))
    print("A/B power:", power)
    assert power["ctr"] >= 0.95 and power["conversion"] >= 0.9


def test_wilson_interval_covers_the_true_click_rate_about_95_percent():
    rng = np.random.default_rng(11)
    p, n = 0.03, 2000
    covered = 0
    for k in rng.binomial(n, p, 1000):
        interval = wilson_interval(int(k), n)
        covered += interval.low <= p <= interval.high
    assert 0.93 <= covered / 1000 <= 0.97
