"""Intervals, the paired test against t = 0, Holm's correction and verdicts, against hand values and scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pcrobust.stats import (
    annotate_series,
    binomial_interval,
    bootstrap_interval,
    holm,
    mcnemar_exact,
    paired_difference_interval,
    statistics_block,
    verdict,
)

scipy_stats = pytest.importorskip("scipy.stats")
proportion = pytest.importorskip("statsmodels.stats.proportion")
multitest = pytest.importorskip("statsmodels.stats.multitest")

Z95 = 1.959963984540054


# --- binomial intervals ----------------------------------------------------------------------------------------

def test_wilson_by_hand():
    # 3 of 10: centre (3 + z²/2) / (10 + z²), half-width z / (10 + z²) · sqrt(3·7/10 + z²/4)
    centre = (3 + Z95**2 / 2) / (10 + Z95**2)
    half = Z95 / (10 + Z95**2) * math.sqrt(2.1 + Z95**2 / 4)
    low, high = binomial_interval(3, 10)
    assert low == pytest.approx(centre - half, abs=1e-12) and high == pytest.approx(centre + half, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.1078, 0.6032)


def test_clopper_pearson_by_hand():
    assert tuple(round(x, 4) for x in binomial_interval(3, 10, method="clopper-pearson")) == (0.0667, 0.6525)
    # closed forms at the edges: k = 0 → (0, 1 − (α/2)^(1/n)); k = n → ((α/2)^(1/n), 1)
    assert binomial_interval(0, 10, method="clopper-pearson") == (0.0, pytest.approx(1 - 0.025 ** 0.1))
    assert binomial_interval(10, 10, method="clopper-pearson") == (pytest.approx(0.025 ** 0.1), 1.0)


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 7), (3, 10), (10, 10), (1, 100), (50, 100), (962, 1000),
                                 (999, 1000), (12, 60), (1, 20000), (7331, 20000)])
@pytest.mark.parametrize("method,reference", [("wilson", "wilson"), ("clopper-pearson", "beta")])
def test_binomial_interval_matches_statsmodels(k, n, level, method, reference):
    low, high = binomial_interval(k, n, level, method)
    ref_low, ref_high = proportion.proportion_confint(k, n, alpha=1 - level, method=reference)
    assert low == pytest.approx(ref_low, abs=1e-9) and high == pytest.approx(ref_high, abs=1e-9)
    assert 0 <= low <= k / n <= high <= 1


def test_binomial_interval_edge_cases():
    assert binomial_interval(0, 0) == (0.0, 1.0)
    assert binomial_interval(0, 0, method="clopper-pearson") == (0.0, 1.0)
    assert binomial_interval(0, 5)[0] == 0.0 and binomial_interval(5, 5)[1] == 1.0
    assert binomial_interval(np.int64(3), np.int64(10)) == binomial_interval(3, 10)
    for bad in [(-1, 5), (6, 5), (1.5, 5), (True, 5)]:
        with pytest.raises(ValueError):
            binomial_interval(*bad)
    with pytest.raises(ValueError, match="level"):
        binomial_interval(1, 2, level=1.0)
    with pytest.raises(ValueError, match="unknown interval method"):
        binomial_interval(1, 2, method="wald")  # type: ignore[arg-type]


def test_exact_interval_is_wider_than_wilson():
    for k in (1, 5, 30):
        wilson, exact = binomial_interval(k, 60), binomial_interval(k, 60, method="clopper-pearson")
        assert exact[0] <= wilson[0] and exact[1] >= wilson[1]


# --- McNemar ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("b,c,p", [
    (0, 0, 1.0),            # no discordant pairs: no evidence
    (3, 3, 1.0),            # balanced
    (5, 1, 14 / 64),        # 2 · (C(6,0) + C(6,1)) / 2^6
    (0, 6, 2 / 64),         # 2 · C(6,0) / 2^6
    (1, 2, 1.0),            # 2 · (1 + 3) / 8, capped
    (0, 1, 1.0),
    (9, 0, 2 / 512),
])
def test_mcnemar_small_tables_by_hand(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-15)
    assert mcnemar_exact(c, b) == mcnemar_exact(b, c)


@pytest.mark.parametrize("b,c", [(1, 0), (4, 11), (17, 30), (60, 40), (250, 320), (1400, 1550), (2600, 2450)])
def test_mcnemar_matches_scipy_binomtest(b, c):
    reference = scipy_stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(reference, rel=1e-9, abs=1e-300)


def test_mcnemar_rejects_bad_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# --- Holm ------------------------------------------------------------------------------------------------------

def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.2, 0.5 times 5, 4, 3, 2, 1 → 0.05, 0.12, 0.12, 0.4, 0.5, back in input order
    assert holm([0.01, 0.04, 0.03, 0.2, 0.5]) == pytest.approx([0.05, 0.12, 0.12, 0.4, 0.5])
    assert holm([0.3, 0.6]) == [0.6, 0.6]          # monotone: the larger p never gets a smaller adjustment
    assert holm([0.9, 0.8]) == [1.0, 1.0]          # capped at 1
    assert holm([0.02]) == [0.02] and holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 9, 40):
        for _ in range(4):  # statsmodels takes ~50 ms a call
            p = rng.random(size) ** 3
            p[rng.random(size) < 0.2] = p[0]     # ties
            assert holm(p) == pytest.approx(list(multitest.multipletests(p, method="holm")[1]), abs=1e-15)


# --- Newcombe's paired interval --------------------------------------------------------------------------------

def test_paired_interval_reproduces_newcombe_example():
    # Newcombe (1998), paired example with a = 36, b = 12, c = 2, d = 0: θ = 0.2, method 10 gives 0.0569 to 0.3404
    low, high = paired_difference_interval(36, 12, 2, 0)
    assert (round(low, 4), round(high, 4)) == (0.0569, 0.3404)


def test_paired_interval_step_by_step():
    a, b, c, d = 40, 9, 3, 48
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion.proportion_confint(a + b, n, 0.05, "wilson")
    l2, u2 = proportion.proportion_confint(a + c, n, 0.05, "wilson")
    phi = (a * d - b * c - n / 2) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))  # AD > BC: reduced by n/2
    delta = math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    eps = math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    low, high = paired_difference_interval(a, b, c, d)
    assert low == pytest.approx(p1 - p2 - delta, abs=1e-12) and high == pytest.approx(p1 - p2 + eps, abs=1e-12)


def test_paired_interval_properties():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b, c, d = (int(x) for x in rng.integers(0, 40, size=4))
        n = a + b + c + d
        if n == 0:
            continue
        low, high = paired_difference_interval(a, b, c, d)
        assert -1 <= low <= (b - c) / n <= high <= 1
        mirrored = paired_difference_interval(a, c, b, d)
        assert mirrored == pytest.approx((-high, -low), abs=1e-12)
    assert paired_difference_interval(0, 0, 0, 0) == (-1.0, 1.0)
    narrow, wide = paired_difference_interval(90, 5, 5, 900), paired_difference_interval(9, 5, 5, 90)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_paired_interval_is_tighter_than_unpaired_for_correlated_pairs():
    # many concordant pairs: the paired interval must be much narrower than the two marginal intervals suggest
    low, high = paired_difference_interval(450, 12, 4, 534)
    l1, u1 = binomial_interval(462, 1000)
    assert high - low < (u1 - l1)


# --- bootstrap -------------------------------------------------------------------------------------------------

def test_bootstrap_is_seeded_and_close_to_wilson_for_a_rate():
    values = np.random.default_rng(3).random(2000) < 0.3
    first = bootstrap_interval(np.mean, values, seed=7)
    assert first == bootstrap_interval(np.mean, values, seed=7)
    assert first != bootstrap_interval(np.mean, values, seed=8)
    wilson = binomial_interval(int(values.sum()), values.size)
    assert first[0] == pytest.approx(wilson[0], abs=0.006) and first[1] == pytest.approx(wilson[1], abs=0.006)


def test_bootstrap_vector_statistic_per_timestep():
    values = np.random.default_rng(4).random((300, 3))
    low, high = bootstrap_interval(lambda x: x.mean(axis=0), values, level=0.9, seed=0, resamples=500)
    assert isinstance(low, list) and len(low) == len(high) == 3
    assert all(lo < m < hi for lo, m, hi in zip(low, values.mean(axis=0), high, strict=True))
    json.dumps([low, high])
    with pytest.raises(ValueError):
        bootstrap_interval(np.mean, np.array([]))


# --- whole series ----------------------------------------------------------------------------------------------

def constructed(n: int = 200, gains: tuple[int, ...] = (0, 10, 30), losses: tuple[int, ...] = (0, 2, 2),
                base: int = 100) -> np.ndarray:
    """``base`` events at t = 0; at t, the first ``losses[t]`` of them are lost, ``gains[t]`` others gained."""
    outcomes = np.zeros((n, len(gains)), dtype=bool)
    outcomes[:base, :] = True
    for t, (gained, lost) in enumerate(zip(gains, losses, strict=True)):
        outcomes[:lost, t] = False
        outcomes[base:base + gained, t] = True
    return outcomes


def test_annotate_series_fields_for_accuracy():
    outcomes = constructed()
    fields = annotate_series(outcomes, higher_is_better=True)
    assert set(fields) == {"interval", "vs_t0", "verdict"}
    vs_t0 = fields["vs_t0"]
    assert vs_t0["gained"] == [0, 10, 30] and vs_t0["lost"] == [0, 2, 2]
    assert vs_t0["improved"] == vs_t0["gained"] and vs_t0["worsened"] == vs_t0["lost"]
    raw = [mcnemar_exact(10, 2), mcnemar_exact(30, 2)]
    assert vs_t0["p_value"] == pytest.approx([1.0, *raw])
    assert vs_t0["p_adjusted"] == pytest.approx([1.0, *holm(raw)])
    assert vs_t0["change_interval"]["low"][0] == 0 == vs_t0["change_interval"]["high"][0]
    counts = outcomes.sum(axis=0)
    for t in range(3):
        assert (fields["interval"]["low"][t], fields["interval"]["high"][t]) == binomial_interval(int(counts[t]), 200)
        change = (counts[t] - counts[0]) / 200
        assert vs_t0["change_interval"]["low"][t] <= change <= vs_t0["change_interval"]["high"][t]
    assert fields["verdict"] == (f"robustness rises over timesteps (t=2 vs t=0: +0.14, adjusted p = "
                                 f"{vs_t0['p_adjusted'][2]:.2g})")
    json.dumps(fields, allow_nan=False)


def test_annotate_series_for_attack_success_reads_the_other_way():
    fields = annotate_series(constructed(), higher_is_better=False, metric="success rate")
    vs_t0 = fields["vs_t0"]
    assert vs_t0["gained"] == [0, 10, 30] and vs_t0["improved"] == [0, 2, 2] and vs_t0["worsened"] == [0, 10, 30]
    assert fields["verdict"].startswith("robustness falls over timesteps (t=2 vs t=0: success rate +0.14, ")
    fewer = annotate_series(constructed(gains=(0, 2, 2), losses=(0, 10, 30)), higher_is_better=False)
    assert fewer["verdict"].startswith("robustness rises over timesteps (t=2 vs t=0: -0.14, adjusted p = ")


def test_annotate_series_no_change():
    fields = annotate_series(constructed(gains=(0, 3, 2), losses=(0, 2, 3)), higher_is_better=True)
    smallest = min(fields["vs_t0"]["p_adjusted"][1:])
    assert fields["verdict"] == f"shows no detectable change over timesteps (smallest adjusted p = {smallest:.2g})"
    flat = annotate_series(np.ones((50, 4), dtype=bool), higher_is_better=True)
    assert flat["verdict"] == "shows no detectable change over timesteps (smallest adjusted p = 1)"
    assert flat["vs_t0"]["p_value"] == [1.0] * 4


def test_annotate_series_both_directions():
    outcomes = constructed(n=400, gains=(0, 40, 0), losses=(0, 0, 40), base=200)
    text = annotate_series(outcomes, higher_is_better=True)["verdict"]
    assert text.startswith("robustness changes in both directions over timesteps (rises at t=1 vs t=0: +0.1")
    assert "falls at t=2 vs t=0: -0.1" in text


def test_annotate_series_single_timestep_and_no_images():
    single = annotate_series(np.ones((30, 1), dtype=bool), higher_is_better=True)
    assert single["verdict"] == "has a single timestep (t=0), so there is nothing to compare over timesteps"
    assert single["vs_t0"]["p_adjusted"] == [1.0] and single["vs_t0"]["change_interval"] == {"low": [0.0],
                                                                                                "high": [0.0]}
    empty = annotate_series(np.zeros((0, 3), dtype=bool), higher_is_better=True)
    assert empty["verdict"] == "has no images, so nothing can be concluded"
    assert empty["interval"] == {"low": [0.0] * 3, "high": [1.0] * 3}
    json.dumps(empty, allow_nan=False)


def test_annotate_series_rejects_bad_outcomes():
    with pytest.raises(ValueError):
        annotate_series(np.ones(5, dtype=bool), higher_is_better=True)
    with pytest.raises(ValueError):
        annotate_series(np.full((3, 2), 0.5), higher_is_better=True)
    assert annotate_series(np.ones((3, 2), dtype=int), True)["vs_t0"]["gained"] == [0, 0]


def test_verdict_holds_the_level():
    # adjusted p 0.03 is a change at 95 % but not at 99 %
    assert verdict([0, 0.05], [1, 0.03], True, 100).startswith("robustness rises")
    assert verdict([0, 0.05], [1, 0.03], True, 100, level=0.99).startswith("shows no detectable change")


def test_statistics_block():
    assert statistics_block() == {"level": 0.95, "interval": "wilson", "paired_test": "exact McNemar against t=0",
                                  "correction": "holm",
                                  "change_interval": "Newcombe (1998) method 10, Wilson-score based"}
