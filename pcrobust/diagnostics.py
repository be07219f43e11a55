"""Checks of gradient masking: whether an attack's numbers can be believed, judged from success rates alone.

Each check compares per-timestep success rates of attacks on the same images (Carlini et al. 2019; Athalye et al.
2018): success rises with ε and reaches about 100% at a large ε, more steps are not weaker, the white-box attack
is not weaker than transfer or black-box attacks or than another gradient mode, and input gradients are finite
and non-zero. Rates may fall short of a comparison by ``tolerance`` (rate units) before a check fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Check:
    """One check: its ``name``, whether it ``passed``, a one-line ``reason`` and the ``numbers`` it judged."""

    name: str
    passed: bool
    reason: str
    numbers: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "reason": self.reason, "numbers": dict(self.numbers)}


def rates(events: np.ndarray) -> list[float]:
    """Per timestep, the fraction of images (rows of ``[N, T+1]``) with the event."""
    return np.asarray(events, dtype=float).mean(0).tolist()


def _worst(gaps: np.ndarray) -> tuple[float, int]:
    """The largest gap and its timestep."""
    t = int(np.argmax(gaps))
    return float(gaps[t]), t


def rises_with_epsilon(epsilons: Sequence[float], success: Sequence[Sequence[float]], tolerance: float) -> Check:
    """Success per timestep (``success[e][t]``, ε ascending) never falls by more than ``tolerance`` as ε grows."""
    table = np.asarray(success, dtype=float)
    numbers = {"epsilons": list(epsilons), "success": table.tolist(), "tolerance": tolerance}
    if len(epsilons) < 2:
        return Check("success-rises-with-epsilon", True, "one ε only: nothing to compare", numbers)
    drops = table[:-1] - table[1:]  # [E-1, T+1]: how much success falls from one ε to the next
    e, t = (int(i) for i in np.unravel_index(int(np.argmax(drops)), drops.shape))
    drop = float(drops[e, t])
    if drop > tolerance:
        return Check("success-rises-with-epsilon", False,
                     f"success falls by {drop:.3f} from ε={epsilons[e]:g} to ε={epsilons[e + 1]:g} at t={t} "
                     f"(tolerance {tolerance:g})", numbers)
    return Check("success-rises-with-epsilon", True,
                 f"success does not fall as ε grows at any timestep (largest drop {max(drop, 0.0):.3f}, "
                 f"tolerance {tolerance:g})", numbers)


def reaches_full_success(epsilon: float, success: Sequence[float], minimum: float) -> Check:
    """Success at the largest ε is at least ``minimum`` at every timestep."""
    values = np.asarray(success, dtype=float)
    low, t = float(values.min()), int(values.argmin())
    numbers = {"epsilon": epsilon, "success": values.tolist(), "minimum": minimum}
    if low < minimum:
        return Check("full-success-at-large-epsilon", False,
                     f"success at ε={epsilon:g} is only {low:.3f} at t={t} (expected at least {minimum:g})", numbers)
    return Check("full-success-at-large-epsilon", True,
                 f"success at ε={epsilon:g} is at least {low:.3f} at every timestep (expected {minimum:g})", numbers)


def not_weaker(name: str, strong: tuple[str, Sequence[float]], weak: tuple[str, Sequence[float]], epsilon: float,
               tolerance: float) -> Check:
    """``strong`` (a label and its success per timestep) is not beaten by ``weak`` by more than ``tolerance``."""
    (strong_name, strong_values), (weak_name, weak_values) = strong, weak
    gaps = np.asarray(weak_values, dtype=float) - np.asarray(strong_values, dtype=float)
    gap, t = _worst(gaps)
    numbers = {"epsilon": epsilon, strong_name: list(strong_values), weak_name: list(weak_values),
               "tolerance": tolerance}
    if gap > tolerance:
        return Check(name, False, f"{weak_name} beats {strong_name} by {gap:.3f} at ε={epsilon:g}, t={t} "
                                  f"(tolerance {tolerance:g})", numbers)
    return Check(name, True, f"{strong_name} is not weaker than {weak_name} at ε={epsilon:g} at any timestep "
                             f"(largest shortfall {max(gap, 0.0):.3f}, tolerance {tolerance:g})", numbers)


def gradients_flow(norms: Sequence[Sequence[float | None]]) -> Check:
    """Every image's input-gradient norm (``norms[i][t]``, ``None`` where not finite) is finite and non-zero."""
    table = np.asarray([[np.nan if v is None else v for v in row] for row in norms], dtype=float)
    finite = np.isfinite(table)
    zero = finite & (table == 0)
    with np.errstate(all="ignore"):
        masked = np.where(finite, table, np.nan)
        mean = [None if not finite[:, t].any() else float(np.nanmean(masked[:, t])) for t in range(table.shape[1])]
        low = [None if not finite[:, t].any() else float(np.nanmin(masked[:, t])) for t in range(table.shape[1])]
    numbers = {"mean": mean, "min": low, "zero": zero.sum(0).astype(int).tolist(),
               "not_finite": (~finite).sum(0).astype(int).tolist(), "n": int(table.shape[0])}
    bad = ~finite | zero
    if bad.any():
        t = int(np.argmax(bad.sum(0)))
        return Check("gradients-finite-and-non-zero", False,
                     f"{int(bad[:, t].sum())} of {table.shape[0]} images have a zero or non-finite input gradient "
                     f"at t={t} ({int(zero.sum())} zero, {int((~finite).sum())} non-finite over all timesteps)",
                     numbers)
    smallest = min(v for v in low if v is not None)
    return Check("gradients-finite-and-non-zero", True,
                 f"every input gradient is finite and non-zero (smallest norm {smallest:.3g})", numbers)
