"""Statistics of continuous per-image measures (distances, errors) over timesteps.

For a measure with per-image values ``v[i, t]`` (NaN where undefined for image i):

- ``values[t]`` is the mean over images, ``mean_i v[i, t]`` (undefined images left out);
- ``normalised[t] = values[t] / values[0]``, the mean divided by its value at t = 0 (exactly 1 at t = 0), as the
  Predify paper normalises its Fig. 2b and 2d; undefined (``None``) when ``values[0]`` is 0;
- both get a seeded percentile bootstrap interval over images (the images are resampled, the ratio recomputed);
- ``vs_t0``: per timestep the images whose value is ``lower`` or ``higher`` than their own value at t = 0, a
  two-sided sign test on them (exact, as :func:`~pcrobust.stats.mcnemar_exact`) and Holm's correction over 1..T.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcrobust.sections import Measure
from pcrobust.stats import bootstrap_interval, holm, mcnemar_exact, verdict

RESAMPLES = 1000  # bootstrap resamples of the intervals
PAIRED_TEST = "sign test of each image's value at t against its value at t=0, Holm over timesteps 1..T"


def _json(values: Any) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.ravel(np.asarray(values, dtype=np.float64))]


def _means(sample: NDArray[np.float64]) -> NDArray[np.float64]:
    """``[N, M, T+1]`` → means and ratios to t = 0, ``[2, M, T+1]`` (NaN where undefined)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is undefined, as documented
        means = np.nanmean(sample, axis=0)
        first = means[:, :1]
        ratios = np.where(first == 0, np.nan, means / np.where(first == 0, 1.0, first))
    return np.stack([means, ratios])


def _sign_test(values: NDArray[np.float64]) -> dict[str, list[Any]]:
    """Per timestep, images below / above their t = 0 value, the sign test's p and Holm's adjusted p."""
    width = values.shape[1]
    lower = [int(np.sum(values[:, t] < values[:, 0])) for t in range(width)]
    higher = [int(np.sum(values[:, t] > values[:, 0])) for t in range(width)]
    p_value = [1.0] + [mcnemar_exact(lower[t], higher[t]) for t in range(1, width)]
    return {"lower": lower, "higher": higher, "p_value": p_value, "p_adjusted": [1.0] + holm(p_value[1:])}


def _group(measures: Sequence[Measure], level: float, seed: int, resamples: int) -> list[dict[str, Any]]:
    """The entries of measures that share their images, bootstrapped together (one resample of images for all)."""
    stacked = np.stack([np.asarray(m.values, dtype=np.float64) for m in measures], axis=1)  # [N, M, T+1]
    point = _means(stacked)
    if len(stacked):
        low, high = bootstrap_interval(lambda s: _means(s).ravel(), stacked, level, seed, resamples)
        lows, highs = np.asarray(low).reshape(point.shape), np.asarray(high).reshape(point.shape)
    else:
        lows = highs = np.full(point.shape, np.nan)
    entries = []
    for m, measure in enumerate(measures):
        values = stacked[:, m]
        changes = [float(v - point[0, m, 0]) if np.isfinite(v - point[0, m, 0]) else 0.0 for v in point[0, m]]
        signs = _sign_test(values)
        entries.append({
            "label": measure.label, "key": dict(measure.key), "metric": measure.metric, "panel": measure.panel,
            "higher_is_better": measure.higher_is_better, "n": len(values),
            "n_defined": [int(v) for v in np.isfinite(values).sum(0)],
            "values": _json(point[0, m]), "interval": {"low": _json(lows[0, m]), "high": _json(highs[0, m])},
            "normalised": {"values": _json(point[1, m]),
                           "interval": {"low": _json(lows[1, m]), "high": _json(highs[1, m])}},
            "vs_t0": signs,
            "verdict": verdict(changes, signs["p_adjusted"], measure.higher_is_better, len(values), level,
                               measure.metric.replace("_", " ")),
            "per_image": [_json(row) for row in values],
        })
    return entries


def annotate_measures(measures: Sequence[Measure], level: float, seed: int,
                      resamples: int = RESAMPLES) -> list[dict[str, Any]]:
    """The results entries of ``measures``, in their order: mean and mean / mean at t = 0 per timestep with
    bootstrap intervals (seeded by ``seed``), the sign test against t = 0, a verdict and the per-image values."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, measure in enumerate(measures):
        groups.setdefault(tuple(int(i) for i in measure.indices), []).append(position)
    found: dict[int, dict[str, Any]] = {}
    for positions in groups.values():
        for position, entry in zip(positions, _group([measures[p] for p in positions], level, seed, resamples),
                                   strict=True):
            found[position] = entry
    return [found[position] for position in range(len(measures))]


def bootstrap_block(level: float, seed: int, resamples: int = RESAMPLES) -> dict[str, Any]:
    """How a section's measure intervals were computed, for its results entry."""
    return {"over": "images", "method": "percentile", "resamples": resamples, "seed": seed, "level": level,
            "paired_test": PAIRED_TEST}
