"""Uncertainty for per-timestep robustness numbers: intervals, paired tests against t = 0, verdicts.

Everything here is plain ``math`` and ``numpy``; the formulas are checked against scipy and statsmodels in the
tests. The conventions:

- A *series* is a bool array ``outcomes[N images, T + 1 timesteps]``; ``True`` is the event the series counts
  (a correct classification, or a successful attack). Its value at t is the event rate ``outcomes[:, t].mean()``.
- Every timestep is compared with t = 0 on the *same* images, so the comparison is paired: the exact McNemar
  test on the discordant images, Holm's correction over timesteps 1..T, and Newcombe's paired interval for
  ``value[t] - value[0]``.
- Results are JSON-ready: Python floats and ints, never NaN (an empty sample gets the uninformative
  interval (0, 1)).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from fractions import Fraction
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntervalMethod = Literal["wilson", "clopper-pearson", "bootstrap"]
METHODS: tuple[str, ...] = ("wilson", "clopper-pearson", "bootstrap")
SERIES_RESAMPLES = 2000  # bootstrap resamples of a series' intervals

PAIRED_TEST = "exact McNemar against t=0"
CORRECTION = "holm"


def statistics_block(level: float = 0.95, method: IntervalMethod = "wilson", seed: int = 0) -> dict[str, Any]:
    """The document's ``statistics`` object describing what :func:`annotate_series` computed."""
    _check_level(level)
    _check_method(method)
    if method == "bootstrap":
        return {"level": level, "interval": method, "paired_test": PAIRED_TEST, "correction": CORRECTION,
                "change_interval": "percentile bootstrap over images, paired (the same resampled images at t and 0)",
                "bootstrap": {"resamples": SERIES_RESAMPLES, "seed": seed, "method": "percentile"}}
    return {"level": level, "interval": method, "paired_test": PAIRED_TEST, "correction": CORRECTION,
            "change_interval": "Newcombe (1998) method 10, Wilson-score based"}


def _bootstrap_intervals(events: NDArray[np.bool_], level: float, seed: int) -> tuple[list[tuple[float, float]],
                                                                                     list[tuple[float, float]]]:
    """Per timestep, seeded percentile bootstrap intervals of the rate and of its change from t = 0."""
    n, width = events.shape
    if n == 0:
        return [(0.0, 1.0)] * width, [(-1.0, 1.0)] * width
    rows = events.astype(np.float64)
    low, high = bootstrap_interval(lambda s: np.concatenate([s.mean(0), s.mean(0) - s[:, 0].mean()]), rows,
                                   level, seed, SERIES_RESAMPLES)
    pairs = list(zip(low, high, strict=True))
    return pairs[:width], pairs[width:]


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must lie in (0, 1), got {level!r}")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; available: {', '.join(METHODS)}")


def _check_count(x: Any) -> int:
    """A non-negative integer count (numpy integers welcome, bools and fractions not)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or x < 0:
        raise ValueError(f"counts must be non-negative integers, got {x!r}")
    return int(x)


def _check_counts(k: Any, n: Any) -> tuple[int, int]:
    k, n = _check_count(k), _check_count(n)
    if k > n:
        raise ValueError(f"need k <= n, got k={k}, n={n}")
    return k, n


def _z(level: float) -> float:
    """The two-sided standard-normal quantile for ``level`` (1.959964 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


# --- binomial tails, in log space so that large n neither overflows nor underflows ------------------------------

def _log_binomial_coefficients(n: int) -> NDArray[np.float64]:
    """log C(n, j) for j = 0..n, from the running product of (n - j + 1) / j."""
    j = np.arange(1, n + 1, dtype=np.float64)
    return np.concatenate(([0.0], np.cumsum(np.log(n - j + 1) - np.log(j))))


def _log_sum_exp(values: NDArray[np.float64]) -> float:
    if values.size == 0:
        return -math.inf
    top = float(values.max())
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.exp(values - top).sum()))


def _binomial_tail(log_coef: NDArray[np.float64], lo: int, hi: int, p: float) -> float:
    """P(lo <= X <= hi) for X ~ Binomial(n, p), n = len(log_coef) - 1, 0 < p < 1."""
    n = log_coef.size - 1
    j = np.arange(lo, hi + 1, dtype=np.float64)
    terms = log_coef[lo:hi + 1] + j * math.log(p) + (n - j) * math.log1p(-p)
    return min(1.0, math.exp(_log_sum_exp(terms)))


def _bisect_decreasing(f: Callable[[float], float], target: float) -> float:
    """The p in (0, 1) where the decreasing function ``f`` crosses ``target`` (bisection to float precision)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    alpha = 1 - level
    log_coef = _log_binomial_coefficients(n)
    if k == 0:
        low = 0.0
    elif k == n:
        low = (alpha / 2) ** (1 / n)
    else:
        # lower limit: the p at which P(X >= k | p) = alpha/2; P(X >= k) increases with p.
        low = _bisect_decreasing(lambda p: -_binomial_tail(log_coef, k, n, p), -alpha / 2)
    if k == n:
        high = 1.0
    elif k == 0:
        high = 1 - (alpha / 2) ** (1 / n)
    else:
        # upper limit: the p at which P(X <= k | p) = alpha/2; P(X <= k) decreases with p.
        high = _bisect_decreasing(lambda p: _binomial_tail(log_coef, 0, k, p), alpha / 2)
    return low, high


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    z = _z(level)
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def binomial_interval(k: int, n: int, level: float = 0.95,
                      method: IntervalMethod = "wilson") -> tuple[float, float]:
    """Two-sided confidence interval ``(low, high)`` for a binomial rate ``k / n``.

    ``method="wilson"`` is the Wilson score interval (closed form); ``"clopper-pearson"`` is the exact interval,
    the beta quantiles found by bisection on the binomial tail probabilities. An empty sample (``n == 0``) says
    nothing about the rate and gets ``(0.0, 1.0)``.
    """
    _check_level(level)
    _check_method(method)
    k, n = _check_counts(k, n)
    if n == 0:
        return 0.0, 1.0
    if method == "wilson":
        return _wilson(k, n, level)
    return _clopper_pearson(k, n, level)


_EXACT_UP_TO = 2000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    This is the exact binomial test of ``b`` successes in ``b + c`` trials against p = 1/2: twice the smaller
    tail, capped at 1. No discordant pairs (``b == c == 0``) is no evidence of change: p = 1.
    """
    b, c = _check_count(b), _check_count(c)
    n = b + c
    if n == 0:
        return 1.0
    small = min(b, c)
    if 2 * small >= n:
        return 1.0
    if n <= _EXACT_UP_TO:  # exact rational arithmetic, then one rounding
        return float(Fraction(2 * sum(math.comb(n, j) for j in range(small + 1)), 2 ** n))
    log_coef = _log_binomial_coefficients(n)
    tail = math.exp(_log_sum_exp(log_coef[:small + 1] - n * math.log(2)))
    return min(1.0, 2 * tail)


def holm(pvalues: Sequence[float] | ArrayLike) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the input order.

    The i-th smallest of m p-values is multiplied by ``m - i`` (i from 0), then a running maximum makes the
    adjusted values monotone in the raw ones, and everything is capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size == 0:
        return []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


def paired_difference_interval(n11: int, n10: int, n01: int, n00: int,
                               level: float = 0.95) -> tuple[float, float]:
    """Confidence interval for the difference of two correlated proportions, Newcombe (1998) method 10.

    The table counts paired observations: ``n11`` with the event under both conditions, ``n10`` under the first
    only, ``n01`` under the second only, ``n00`` under neither. The difference is
    ``p1 - p2 = (n10 - n01) / n`` with ``p1 = (n11 + n10) / n`` and ``p2 = (n11 + n01) / n``. The interval
    combines the Wilson intervals ``(l1, u1)`` and ``(l2, u2)`` of the two marginal rates with the correlation of
    the pairs, estimated by the phi coefficient (numerator reduced by n/2 when positive, and 0 when a margin is
    empty):

        low  = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        high = d + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2)

    An empty table gives ``(-1.0, 1.0)``.
    """
    _check_level(level)
    a, b, c, d = (_check_count(x) for x in (n11, n10, n01, n00))
    n = a + b + c + d
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, level)
    l2, u2 = _wilson(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        phi = 0.0
    else:
        cross = a * d - b * c
        numerator = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
        phi = numerator / math.sqrt(margins)
    diff = p1 - p2
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, diff - below), min(1.0, diff + above)


def bootstrap_draws(statistic: Callable[[NDArray[Any]], Any], per_image_values: ArrayLike, seed: int = 0,
                    resamples: int = 2000) -> NDArray[np.float64]:
    """``statistic`` of each seeded bootstrap resample over images: ``[resamples, ...]``.

    ``per_image_values`` has one row per image (any trailing shape); each resample draws N rows with replacement
    from ``numpy.random.default_rng(seed)``. An empty sample raises :class:`ValueError`."""
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    values = np.asarray(per_image_values)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError("bootstrap_interval needs at least one image")
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    return np.stack([np.asarray(statistic(values[rng.integers(0, n, size=n)]), dtype=np.float64)
                     for _ in range(resamples)])


def percentile_bounds(draws: NDArray[np.float64], level: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of ``draws`` over its first axis, undefined (NaN)
    draws left out; NaN where every draw is."""
    _check_level(level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as documented
        low, high = np.nanquantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def bootstrap_interval(statistic: Callable[[NDArray[Any]], Any], per_image_values: ArrayLike,
                       level: float = 0.95, seed: int = 0,
                       resamples: int = 2000) -> tuple[Any, Any]:
    """Seeded percentile bootstrap over images (:func:`bootstrap_draws`, :func:`percentile_bounds`).

    The result is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled statistic:
    floats for a scalar statistic, lists for a vector one (e.g. one value per timestep). The same seed gives
    the same interval. Resamples where the statistic is undefined (NaN, e.g. a ratio over a zero) are left out;
    NaN where every resample is. An empty sample raises :class:`ValueError`.
    """
    _check_level(level)
    low, high = percentile_bounds(bootstrap_draws(statistic, per_image_values, seed, resamples), level)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return [float(v) for v in np.ravel(low)], [float(v) for v in np.ravel(high)]


# --- a whole series --------------------------------------------------------------------------------------------

def _format_p(p: float) -> str:
    return f"{p:.2g}"


def _format_change(change: float) -> str:
    return f"{change:+.3g}"


def verdict(changes: Sequence[float], p_adjusted: Sequence[float], higher_is_better: bool, n: int,
            level: float = 0.95, metric: str | None = None) -> str:
    """One line on whether the series moves away from t = 0, in terms of the model's robustness.

    A timestep differs from t = 0 when its Holm-adjusted p is below ``1 - level``. ``changes[t]`` is
    ``value[t] - value[0]``; with ``higher_is_better`` a positive change is a rise in robustness (accuracy), without
    it a fall (attack success). The line names the timestep with the smallest adjusted p (the larger change on a
    tie), or says that the series has no images or only one timestep.
    """
    if n == 0:
        return "has no images, so nothing can be concluded"
    if len(changes) < 2:
        return "has a single timestep (t=0), so there is nothing to compare over timesteps"
    alpha = 1 - level
    later = range(1, len(changes))
    smallest = min(p_adjusted[t] for t in later)
    significant = [t for t in later if p_adjusted[t] < alpha and changes[t] != 0]
    if not significant:
        return f"shows no detectable change over timesteps (smallest adjusted p = {_format_p(smallest)})"
    what = f"{metric} " if metric else ""

    def rises(t: int) -> bool:
        return (changes[t] > 0) == higher_is_better

    def detail(t: int) -> str:
        return f"t={t} vs t=0: {what}{_format_change(changes[t])}, adjusted p = {_format_p(p_adjusted[t])}"

    def best(ts: list[int]) -> int:
        return min(ts, key=lambda t: (p_adjusted[t], -abs(changes[t]), t))

    up = [t for t in significant if rises(t)]
    down = [t for t in significant if not rises(t)]
    if up and down:
        return (f"robustness changes in both directions over timesteps (rises at {detail(best(up))}; "
                f"falls at {detail(best(down))})")
    direction = "rises" if up else "falls"
    return f"robustness {direction} over timesteps ({detail(best(significant))})"


def annotate_series(outcomes: ArrayLike, higher_is_better: bool, level: float = 0.95,
                    method: IntervalMethod = "wilson", metric: str | None = None, seed: int = 0) -> dict[str, Any]:
    """The statistics fields of one schema-2 series, from its per-image outcomes.

    ``outcomes`` is a bool array ``[N images, T + 1 timesteps]``, ``True`` where the series' event happened
    (correct, or attack success). Returns a dict with exactly the keys ``interval``, ``vs_t0`` and ``verdict``:

    - ``interval``: ``{"low": [...], "high": [...]}``, the per-timestep interval of the rate (``method``,
      ``level``; ``bootstrap``: a percentile bootstrap over images seeded by ``seed``, which also gives the
      change interval).
    - ``vs_t0``: paired comparison of every timestep with t = 0 on the same images.
      ``gained[t]``: images with the event at t but not at 0; ``lost[t]``: with the event at 0 but not at t.
      ``improved``/``worsened`` say the same for the *model*: for a series where more events are better
      (``higher_is_better``, accuracy) ``improved = gained``; otherwise (attack success) ``improved = lost``.
      ``p_value[t]``: exact McNemar on ``gained[t]`` vs ``lost[t]`` (1 at t = 0); ``p_adjusted``: Holm over
      timesteps 1..T (1 at t = 0); ``change_interval``: Newcombe's paired interval for ``value[t] - value[0]``
      (``[0, 0]`` at t = 0, where the difference is zero by construction).
    - ``verdict``: see :func:`verdict`.

    ``metric`` (e.g. ``"accuracy"``) only words the verdict.
    """
    _check_level(level)
    _check_method(method)
    events = np.asarray(outcomes)
    if events.ndim != 2 or events.shape[1] == 0:
        raise ValueError(f"outcomes must be [N images, T + 1 timesteps], got shape {events.shape}")
    if events.dtype != np.bool_:
        if not np.isin(events, (0, 1)).all():
            raise ValueError("outcomes must be booleans")
        events = events.astype(bool)
    n, width = events.shape
    counts = events.sum(axis=0)
    if method == "bootstrap":
        intervals, changes_at = _bootstrap_intervals(events, level, seed)
    else:
        intervals = [binomial_interval(int(k), n, level, method) for k in counts]
    first = events[:, 0]
    both = (events & first[:, None]).sum(axis=0)
    gained = (events & ~first[:, None]).sum(axis=0)
    lost = (~events & first[:, None]).sum(axis=0)
    neither = n - both - gained - lost
    p_value = [1.0] + [mcnemar_exact(int(gained[t]), int(lost[t])) for t in range(1, width)]
    p_adjusted = [1.0] + holm(p_value[1:])
    change_low, change_high = [0.0], [0.0]
    for t in range(1, width):
        low, high = (changes_at[t] if method == "bootstrap" else
                     paired_difference_interval(int(both[t]), int(gained[t]), int(lost[t]), int(neither[t]), level))
        change_low.append(low)
        change_high.append(high)
    changes = [float((int(counts[t]) - int(counts[0])) / n) if n else 0.0 for t in range(width)]
    gained_list = [int(v) for v in gained]
    lost_list = [int(v) for v in lost]
    return {
        "interval": {"low": [lo for lo, _ in intervals], "high": [hi for _, hi in intervals]},
        "vs_t0": {
            "gained": gained_list,
            "lost": lost_list,
            "improved": gained_list if higher_is_better else lost_list,
            "worsened": lost_list if higher_is_better else gained_list,
            "p_value": p_value,
            "p_adjusted": p_adjusted,
            "change_interval": {"low": change_low, "high": change_high},
        },
        "verdict": verdict(changes, p_adjusted, higher_is_better, n, level, metric),
    }
