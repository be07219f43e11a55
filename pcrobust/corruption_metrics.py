"""Corruption error (CE), mCE and relative mCE per timestep (Hendrycks & Dietterich, ICLR 2019).

For corruption c, severities s and timestep t, with top-1 errors E_{c,s}(t) and the clean error E_clean(t):

- AlexNet-normalised: CE_c(t) = Σ_s E_{c,s}(t) / Σ_s A_{c,s}, relative CE_c(t) = Σ_s (E_{c,s}(t) − E_clean(t)) /
  Σ_s (A_{c,s} − A_clean), with AlexNet's errors A on ImageNet-C (only meaningful for ImageNet-size images with
  the 1000 ImageNet classes).
- t=0-normalised (the model's own feedforward pass as the reference): CE_c(t) = Σ_s E_{c,s}(t) / Σ_s E_{c,s}(0),
  relative CE_c(t) = Σ_s (E_{c,s}(t) − E_clean(t)) / Σ_s (E_{c,s}(0) − E_clean(0)).
- mCE and relative mCE: the mean over the 15 standard corruptions (those evaluated) of CE_c and relative CE_c.
- The Predify paper's curve (``mean_error_ratio``): the mean over every evaluated corruption of Σ_s E_{c,s}(t),
  divided by its value at t = 0.

A ratio whose denominator is not positive is undefined (``None`` in results): errors are means over N images, so
their sums are multiples of 1/N, and a denominator of at most half an image (0.5/N) is 0, or negative, up to
rounding. Relative CE over such a denominator (the corruption does not raise the error at t=0) has no meaning, and
rounding would otherwise make it ±10^16. The bootstrap interval of a measure comes from its defined resamples when
at least :data:`MIN_DEFINED` of them are; otherwise it is undefined, and ``defined_resamples`` records the
fraction per timestep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcrobust.corrupt import STANDARD
from pcrobust.stats import bootstrap_draws, percentile_bounds

# Top-1 errors of AlexNet on ImageNet-C, per severity 1..5 (Hendrycks & Dietterich; as in AugMix's imagenet.py)
ALEXNET_ERRORS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}
# Mean over the 5 severities only; from evaluation scripts outside Hendrycks' code (not in the paper)
ALEXNET_EXTRA_MEANS: dict[str, float] = {"speckle_noise": 0.845388, "gaussian_blur": 0.787108,
                                         "spatter": 0.717512, "saturate": 0.658248}
ALEXNET_CLEAN = 0.4348
ALEXNET_SOURCE = ("AlexNet top-1 errors on ImageNet-C per severity (Hendrycks & Dietterich 2019, as in AugMix's "
                  "imagenet.py), clean error 0.4348; the 4 extra corruptions' means come from third-party "
                  "evaluation scripts, not from the paper, and need all 5 severities")
IMAGENET_CLASSES = 1000
IMAGENET_SIZE = 224
RESAMPLES = 1000  # bootstrap resamples of the intervals
MIN_DEFINED = 0.95  # the least fraction of resamples with a defined measure that gives an interval


def alexnet_applies(image_shape: Sequence[int], num_classes: int) -> bool:
    """Whether AlexNet's ImageNet-C errors are a meaningful reference: 224×224 RGB images, 1000 classes."""
    return num_classes == IMAGENET_CLASSES and list(image_shape) == [3, IMAGENET_SIZE, IMAGENET_SIZE]


def alexnet_errors(name: str, severities: Sequence[int]) -> NDArray[np.float64] | None:
    """AlexNet's error per given severity, or ``None`` where the table does not have them."""
    if name in ALEXNET_ERRORS:
        return np.asarray([ALEXNET_ERRORS[name][s - 1] for s in severities])
    if name in ALEXNET_EXTRA_MEANS and sorted(severities) == [1, 2, 3, 4, 5]:
        return np.full(5, ALEXNET_EXTRA_MEANS[name])
    return None


def _ratio(top: NDArray[np.float64], bottom: NDArray[np.float64] | float, floor: float) -> NDArray[np.float64]:
    """``top / bottom``, NaN where ``bottom`` is at most ``floor`` (broadcast)."""
    undefined = np.asarray(bottom) <= floor
    return np.where(undefined, np.nan, top / np.where(undefined, 1.0, bottom))


def measures(errors: NDArray[np.float64], clean: NDArray[np.float64], names: Sequence[str],
             severities: Sequence[int], alexnet: bool,
             floor: float = 0.0) -> dict[tuple[str, str, str], NDArray[np.float64]]:
    """Every measure per timestep, keyed (normalisation, measure, corruption or ``""``).

    ``errors`` is ``[corruptions, severities, T + 1]``, ``clean`` is ``[T + 1]``; normalisations are ``t0`` and,
    with ``alexnet``, ``alexnet``. A ratio is undefined (NaN) where its denominator is at most ``floor``."""
    summed = errors.sum(1)  # [C, T+1]
    degraded = (errors - clean[None, None, :]).sum(1)
    ce, relative = _ratio(summed, summed[:, :1], floor), _ratio(degraded, degraded[:, :1], floor)
    found: dict[tuple[str, str, str], NDArray[np.float64]] = {}
    for c, name in enumerate(names):
        found["t0", "ce", name], found["t0", "relative_ce", name] = ce[c], relative[c]
        reference = alexnet_errors(name, severities) if alexnet else None
        if reference is not None:
            found["alexnet", "ce", name] = _ratio(summed[c], float(reference.sum()), floor)
            found["alexnet", "relative_ce", name] = _ratio(degraded[c], float((reference - ALEXNET_CLEAN).sum()),
                                                           floor)
    found["t0", "mean_error_ratio", ""] = _ratio(summed.mean(0), summed[:, 0].mean(), floor)
    standard = [name for name in names if name in STANDARD]
    for normalisation in ("t0", "alexnet"):
        for measure, mean in (("ce", "mce"), ("relative_ce", "relative_mce")):
            rows = [found[normalisation, measure, n] for n in standard if (normalisation, measure, n) in found]
            if rows and len(rows) == len(standard):
                found[normalisation, mean, ""] = np.mean(rows, axis=0)
    return found


def _json(values: NDArray[np.float64]) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.ravel(values)]


def corruption_summary(wrong: NDArray[np.bool_], clean_wrong: NDArray[np.bool_], names: Sequence[str],
                       severities: Sequence[int], alexnet: bool, level: float, seed: int,
                       resamples: int = RESAMPLES) -> dict[str, Any]:
    """Errors, CE, mCE and relative mCE per timestep from per-image outcomes, with bootstrap intervals.

    ``wrong`` is ``[N images, corruptions, severities, T + 1]`` (True where the image was misclassified),
    ``clean_wrong`` ``[N, T + 1]``; intervals are percentile bootstraps over images seeded by ``seed``, from the
    defined resamples when at least :data:`MIN_DEFINED` of them are (else ``None``)."""
    n, width = wrong.shape[0], wrong.shape[-1]
    rows = np.concatenate([wrong.reshape(n, -1), clean_wrong], axis=1).astype(np.float64)
    floor = 0.5 / n  # half an image: a sum of errors at most this is 0 up to rounding

    def estimate(sample: NDArray[Any]) -> dict[tuple[str, str, str], NDArray[np.float64]]:
        means = sample.mean(0)
        return measures(means[:-width].reshape(wrong.shape[1:]), means[-width:], names, severities, alexnet, floor)

    point = estimate(rows)
    keys = list(point)

    def flat(sample: NDArray[Any]) -> NDArray[np.float64]:
        found = estimate(sample)
        return np.concatenate([found[k] for k in keys])

    draws = bootstrap_draws(flat, rows, seed, resamples)
    defined = np.isfinite(draws).mean(0)
    low_arr, high_arr = (np.where(defined >= MIN_DEFINED, bound, np.nan) for bound in percentile_bounds(draws, level))
    errors = rows.mean(0)
    result: dict[str, Any] = {
        "error": {name: {str(s): _json(errors[(c * len(severities) + j) * width:(c * len(severities) + j + 1) * width])
                         for j, s in enumerate(severities)} for c, name in enumerate(names)},
        "clean_error": _json(errors[-width:]),
        "mean_error": _json(errors[:-width].reshape(len(names), len(severities), width).mean((0, 1))),
        "mce_over": [name for name in names if name in STANDARD],
    }
    normalised: dict[str, Any] = {}
    for position, (normalisation, measure, name) in enumerate(keys):
        block = normalised.setdefault(normalisation, {})
        part = slice(position * width, (position + 1) * width)
        entry: dict[str, Any] = {"values": _json(point[normalisation, measure, name]),
                                 "interval": {"low": _json(low_arr[part]), "high": _json(high_arr[part])}}
        if (defined[part] < 1).any():
            entry["defined_resamples"] = [float(v) for v in defined[part]]
        if name:
            block.setdefault(measure, {})[name] = entry
        else:
            block[measure] = entry
    result["normalised"] = normalised
    return result


Row = tuple[str, list[Any], Mapping[str, Any]]
LABELS = {"t0": "normalised by t=0", "alexnet": "AlexNet-normalised"}


def headline(summary: Mapping[str, Any]) -> list[Row]:
    """The section-wide rows of a summary for reports: ``(label, values per timestep, interval)``."""
    rows: list[Row] = [("clean error", list(summary.get("clean_error", [])), {}),
                       ("mean error over corruptions and severities", list(summary.get("mean_error", [])), {})]
    normalised = summary.get("normalised", {})
    ratio = normalised.get("t0", {}).get("mean_error_ratio")
    if isinstance(ratio, Mapping):
        rows.append(("mean error / its value at t=0 (Predify paper)", list(ratio["values"]), ratio["interval"]))
    for normalisation, block in normalised.items():
        for measure, name in (("mce", "mCE"), ("relative_mce", "relative mCE")):
            if isinstance(block.get(measure), Mapping):
                rows.append((f"{name} ({LABELS.get(normalisation, normalisation)})", list(block[measure]["values"]),
                             block[measure]["interval"]))
    return rows


def per_corruption(summary: Mapping[str, Any]) -> list[tuple[str, list[Row]]]:
    """Per normalisation and measure (CE, relative CE), one row per corruption: ``(heading, rows)``."""
    tables = []
    for normalisation, block in summary.get("normalised", {}).items():
        for measure, name in (("ce", "CE"), ("relative_ce", "relative CE")):
            entries = block.get(measure)
            if isinstance(entries, Mapping) and entries:
                tables.append((f"{name} per corruption ({LABELS.get(normalisation, normalisation)})",
                               [(c, list(e["values"]), e["interval"]) for c, e in entries.items()]))
    return tables
