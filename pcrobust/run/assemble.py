"""The results document, assembled from a folder's stored units alone (so resume, shards and merge agree)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pcrobust.errors import PcrobustError
from pcrobust.measures import annotate_measures, bootstrap_block
from pcrobust.plan import Plan
from pcrobust.results import SCHEMA
from pcrobust.run.store import RunFolder
from pcrobust.sections import Section, SectionResult, Series, Unit
from pcrobust.stats import annotate_series, statistics_block


def series_entry(series: Series, plan: Plan) -> dict[str, Any]:
    """Counts, rates, intervals and the paired comparison with t = 0, per timestep, of one series."""
    events = np.asarray(series.events, dtype=bool)
    n = events.shape[0]
    counts = events.sum(0).astype(int).tolist()
    values = [c / n for c in counts]
    return {"label": series.label, "key": dict(series.key), "metric": series.metric,
            "higher_is_better": series.higher_is_better, "n": n, "counts": counts, "values": values,
            "change_from_t0": [v - values[0] for v in values],
            **annotate_series(events, series.higher_is_better, plan.run.level, plan.run.interval, series.metric,
                               plan.run.seed)}


def section_entry(section: Section, result: SectionResult, plan: Plan) -> dict[str, Any]:
    first = result.series[0] if result.series else result.measures[0] if result.measures else None
    indices = list(first.indices) if first is not None else []
    entry = {"id": section.id, "kind": section.kind.name, "plugin": section.kind.plugin,
             "title": section.kind.title(section.options),
             "parameters": section.options.model_dump(mode="json", exclude_none=True),
             **result.fields, "n": len(indices), "image_indices": indices,
             "series": [series_entry(series, plan) for series in result.series]}
    if result.measures:
        entry["bootstrap"] = bootstrap_block(plan.run.level, plan.run.seed)
        entry["measures"] = annotate_measures(result.measures, plan.run.level, plan.run.seed)
    return entry


def _threat_name(threat: Mapping[str, Any]) -> str:
    return f"{threat['criterion']} {threat['norm']} ε={threat['epsilon']:g}"


def worst_case(results: Sequence[tuple[Section, SectionResult]], plan: Plan) -> list[dict[str, Any]]:
    """Per threat (norm, ε, criterion) shared by two or more attack sections: an image counts as broken at a
    timestep when any of those sections broke it, on the images every one of them attacked."""
    groups: dict[tuple[Any, ...], list[tuple[Section, Series]]] = {}
    for section, result in results:
        for series in result.series:
            if series.threat is not None and series.broken is not None:
                key = tuple(sorted(series.threat.items()))
                groups.setdefault(key, []).append((section, series))
    entries = []
    for key, members in groups.items():
        if len({section.id for section, _ in members}) < 2:
            continue
        threat = dict(key)
        shared = sorted(set.intersection(*(set(series.indices) for _, series in members)))
        rows = []
        for _, series in members:
            position = {index: r for r, index in enumerate(series.indices)}
            assert series.broken is not None
            rows.append(np.asarray(series.broken, dtype=bool)[[position[index] for index in shared]])
        broken = np.logical_or.reduce(rows)
        targeted = threat["criterion"] == "targeted"
        combined = Series(f"worst case ε={threat['epsilon']:g}", {"epsilon": threat["epsilon"]},
                          "success_rate" if targeted else "robust_accuracy", not targeted, shared,
                          broken if targeted else np.logical_not(broken))
        entries.append({"id": f"worst case {_threat_name(threat)}", "kind": "worst-case", "plugin": "",
                        "title": f"worst case over attacks ({_threat_name(threat)})", "threat": threat,
                        "sections": [section.id for section, _ in members],
                        "protocol": "an image counts as broken at timestep t when any listed section broke it "
                                    "there; only images attacked by every listed section count",
                        "n": len(shared), "image_indices": shared, "series": [series_entry(combined, plan)]})
    return entries


def stored_outcomes(folder: RunFolder, section: Section, units: Sequence[Unit],
                    digest: str) -> list[tuple[Unit, Mapping[str, Any]]]:
    """Each unit with its stored outcome, in unit order; a missing one is an error."""
    outcomes: list[tuple[Unit, Mapping[str, Any]]] = []
    for unit in units:
        outcome = folder.load_unit(section.id, unit.key, digest)
        if outcome is None:
            raise PcrobustError(f"{folder.path}: unit {unit.key!r} of {section.where()} is missing")
        outcomes.append((unit, outcome))
    return outcomes


def assemble(plan: Plan, folder: RunFolder, record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``pcrobust.results/2`` document of a finished run, from its record and stored units."""
    digest = plan.digest()
    facts = record["facts"]
    timesteps = len(facts["timesteps"]) - 1
    results = []
    for section in plan.sections:
        units = [Unit(item["key"], tuple(item["indices"]), item["params"]) for item in record["units"][section.id]]
        outcomes = stored_outcomes(folder, section, units, digest)
        results.append((section, section.kind.assemble(section, outcomes, timesteps)))
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "timesteps": facts["timesteps"],
        "plan": plan.to_dict(),
        "plan_digest": digest,
        "model": facts["model"],
        "dataset": facts["dataset"],
        "statistics": statistics_block(plan.run.level, plan.run.interval, plan.run.seed),
        "sections": [section_entry(section, result, plan) for section, result in results],
        "worst_case": worst_case(results, plan),
        "provenance": facts["provenance"],
    }
