"""The CI gate: compare a results file with a baseline, metric by metric and timestep by timestep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcrobust.errors import PcrobustError


@dataclass(frozen=True)
class Metric:
    """One number of a results file and the direction in which it is better."""

    name: str
    value: float
    higher_is_better: bool


@dataclass(frozen=True)
class Regression:
    name: str
    baseline: float
    value: float

    def __str__(self) -> str:
        return f"{self.name}: {self.value:.4f} (baseline {self.baseline:.4f}, change {self.value - self.baseline:+.4f})"


def metrics(results: dict[str, Any]) -> dict[str, Metric]:
    """Every comparable metric, keyed by a name that identifies it across runs."""
    found: dict[str, Metric] = {}

    def add(prefix: str, values: list[float], higher_is_better: bool) -> None:
        for t, value in zip(results["timesteps"], values, strict=True):
            name = f"{prefix} t={t}"
            found[name] = Metric(name, float(value), higher_is_better)

    add("clean accuracy", results["clean"]["accuracy"], True)
    for a in results["attacks"]:
        key = (f"{a['attack']} {a.get('norm', '')} ε={a['epsilon']:g} attacked={a['attacked_readout']} "
               f"scored={a['scored_readout']} success rate")
        add(key, a["success_rate"], False)
    for n in results["noise"]:
        add(f"noise σ={n['sigma']:g} accuracy", n["accuracy"], True)
    return found


def regressions(results: dict[str, Any], baseline: dict[str, Any], tolerance: float) -> list[Regression]:
    """Metrics present in both files that got worse than the baseline by more than ``tolerance``."""
    if tolerance < 0:
        raise PcrobustError("tolerance must be non-negative")
    now, before = metrics(results), metrics(baseline)
    shared = sorted(set(now) & set(before))
    if not shared:
        raise PcrobustError("the results and the baseline share no metric")
    found = []
    for name in shared:
        change = now[name].value - before[name].value
        worse = -change if now[name].higher_is_better else change
        if worse > tolerance + 1e-12:
            found.append(Regression(name, before[name].value, now[name].value))
    return found
