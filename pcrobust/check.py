"""The CI gate: compare a results file with a baseline, section by section, series by series, timestep by timestep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcrobust.errors import PcrobustError
from pcrobust.results import all_sections


@dataclass(frozen=True)
class Metric:
    """One number of a results file, the direction in which it is better and, when known, its interval."""

    name: str
    section: str
    value: float
    higher_is_better: bool
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class Regression:
    metric: Metric
    baseline: float

    def __str__(self) -> str:
        change = self.metric.value - self.baseline
        return f"{self.metric.name}: {self.metric.value:.4f} (baseline {self.baseline:.4f}, change {change:+.4f})"


def _threat(section: dict[str, Any]) -> str:
    attack = section.get("attack")
    if not isinstance(attack, dict):
        return ""
    readouts = f" attacked={section.get('attacked_readout')} scored={section.get('scored_readout')}"
    return f" ({attack.get('norm')}{readouts})"


def metrics(results: dict[str, Any]) -> dict[str, Metric]:
    """Every comparable number, keyed by a name that identifies it across runs and names its section."""
    found: dict[str, Metric] = {}
    for section in all_sections(results):
        for series in section["series"]:
            interval = series.get("interval")
            for position, t in enumerate(results["timesteps"]):
                name = f"{section['id']}{_threat(section)}: {series['label']} {series['metric']} t={t}"
                bounds = (float(interval["low"][position]), float(interval["high"][position])) if interval else None
                found[name] = Metric(name, section["id"], float(series["values"][position]),
                                     bool(series["higher_is_better"]), bounds)
    return found


def regressions(results: dict[str, Any], baseline: dict[str, Any], tolerance: float,
                outside_interval: bool = False) -> list[Regression]:
    """Metrics present in both documents that got worse than the baseline by more than ``tolerance``; with
    ``outside_interval``, only those whose baseline value also lies outside the result's confidence interval."""
    if tolerance < 0:
        raise PcrobustError("tolerance must be non-negative")
    now, before = metrics(results), metrics(baseline)
    shared = sorted(set(now) & set(before))
    if not shared:
        raise PcrobustError("the results and the baseline share no metric")
    found = []
    for name in shared:
        metric, old = now[name], before[name].value
        change = metric.value - old
        worse = -change if metric.higher_is_better else change
        if worse <= tolerance + 1e-12:
            continue
        if outside_interval:
            if metric.interval is None:
                raise PcrobustError(f"{name}: the results carry no interval to gate on")
            if metric.interval[0] <= old <= metric.interval[1]:
                continue
        found.append(Regression(metric, old))
    return found
