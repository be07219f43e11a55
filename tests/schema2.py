"""Hand-built ``pcrobust.results/2`` documents for the tests of the statistics, plots and HTML report."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from pcrobust.stats import annotate_series, statistics_block

SCHEMA2 = "pcrobust.results/2"


def drifting_outcomes(n: int, timesteps: int, start: float, drift: float, seed: int) -> np.ndarray:
    """Bool outcomes ``[n, timesteps + 1]``: rate ``start`` at t = 0 that moves by about ``drift`` per step.

    Each image keeps a latent uniform draw, so an image's outcome changes only when the threshold crosses it,
    as a real model's per-image outcomes mostly persist over timesteps.
    """
    u = np.random.default_rng(seed).random(n)
    rates = np.clip(start + drift * np.arange(timesteps + 1), 0, 1)
    return u[:, None] < rates[None, :]


def series(label: str, key: dict[str, Any], metric: str, higher_is_better: bool, outcomes: np.ndarray,
           statistics: bool = True, level: float = 0.95) -> dict[str, Any]:
    n = int(outcomes.shape[0])
    counts = [int(c) for c in outcomes.sum(axis=0)]
    values = [c / n if n else 0.0 for c in counts]
    entry: dict[str, Any] = {"label": label, "key": key, "metric": metric, "higher_is_better": higher_is_better,
                             "n": n, "counts": counts, "values": values,
                             "change_from_t0": [v - values[0] for v in values]}
    if statistics:
        entry.update(annotate_series(outcomes, higher_is_better, level=level, metric=metric.replace("_", " ")))
    return entry


def build_document(timesteps: int = 4, n_clean: int = 400, n_attack: int = 60, statistics: bool = True,
                   worst_case: bool = True) -> dict[str, Any]:
    """A complete schema-2 document: clean, two noise levels, two L∞ attacks and one L2 attack, one worst case."""
    ts = list(range(timesteps + 1))
    clean = drifting_outcomes(n_clean, timesteps, 0.95, 0.0, seed=1)
    noise = {0.1: drifting_outcomes(n_clean, timesteps, 0.80, 0.02, seed=2),
             0.3: drifting_outcomes(n_clean, timesteps, 0.40, 0.04, seed=3)}
    bim = {0.1: drifting_outcomes(n_attack, timesteps, 0.30, -0.03, seed=4),
           0.2: drifting_outcomes(n_attack, timesteps, 0.70, -0.06, seed=5)}
    pgd = {0.1: drifting_outcomes(n_attack, timesteps, 0.35, -0.02, seed=6)}
    l2 = {1.0: drifting_outcomes(n_attack, timesteps, 0.50, 0.0, seed=7)}
    indices = list(range(n_attack))

    def attack_section(name: str, norm: str, runs: dict[float, np.ndarray]) -> dict[str, Any]:
        norm_label = {"linf": "L∞", "l2": "L2"}[norm]
        return {
            "id": f"attack {name}", "kind": "attack", "plugin": "builtin", "title": f"targeted {name} ({norm_label})",
            "parameters": {"epsilons": list(runs), "steps": 10},
            "protocol": f"targeted {name}, {norm_label}, 10 steps, attacked and scored at each timestep",
            "image_indices": indices,
            "attack": {"name": name, "plugin": "attacks", "norm": norm, "targeted": True,
                       "options": {"steps": 10, "rel_stepsize": 0.2, "random_start": False}},
            "attacked_readout": "t", "scored_readout": "t", "gradient_mode": "exact",
            "target_mode": "shift", "target_shift": 1,
            "series": [series(f"ε={eps:g}", {"epsilon": eps}, "success_rate", False, out, statistics)
                       for eps, out in runs.items()],
        }

    sections = [
        {"id": "clean", "kind": "clean", "plugin": "builtin", "title": "clean accuracy", "parameters": {},
         "protocol": "accuracy on unperturbed test images", "image_indices": list(range(n_clean)),
         "series": [series("clean", {}, "accuracy", True, clean, statistics)]},
        {"id": "noise", "kind": "noise", "plugin": "builtin", "title": "Gaussian noise",
         "parameters": {"sigmas": list(noise)}, "protocol": "clip(x + σ·z, 0, 1), z seeded per image",
         "image_indices": list(range(n_clean)),
         "series": [series(f"σ={s:g}", {"sigma": s}, "accuracy", True, out, statistics) for s, out in noise.items()]},
        attack_section("bim", "linf", bim),
        attack_section("pgd", "linf", pgd),
        attack_section("cw", "l2", l2),
    ]
    document: dict[str, Any] = {
        "schema": SCHEMA2,
        "created": "2026-12-02T15:00:00+00:00",
        "timesteps": ts,
        "plan": {"model": {"plugin": "predify", "name": "mnist-pnet"},
                 "data": {"dataset": "mnist-5k", "split": "test", "n": n_clean},
                 "run": {"seed": 0, "device": "cpu", "timesteps": timesteps},
                 "sections": [{"id": s["id"], "kind": s["kind"]} for s in sections]},
        "plan_digest": "0" * 64,
        "model": {"plugin": "predify", "name": "mnist-pnet", "gradient_mode": "exact",
                  "normalization": {"mean": [0.1307], "std": [0.3081]}},
        "dataset": {"name": "mnist-5k", "split": "test", "size": 1000, "n_evaluated": n_clean},
        "sections": sections,
        "worst_case": [],
        "provenance": {"pcrobust": "0.2.0", "plugins": {"predify": "0.2.0", "attacks": "0.2.0"},
                       "torch": "2.13.0", "device": "cpu", "seed": 0, "gradient_mode": "exact",
                       "weights": {"mnist_pnet.pt": "ab" * 32}},
    }
    if statistics:
        document["statistics"] = statistics_block()
    if worst_case:
        worst = bim[0.1] | pgd[0.1]
        document["worst_case"] = [{
            "id": "worst-case linf ε=0.1", "kind": "worst-case", "title": "worst case over bim, pgd (L∞, ε=0.1)",
            "protocol": "an image counts as broken when any of the attacks succeeds on it",
            "sections": ["attack bim", "attack pgd"], "norm": "linf", "epsilon": 0.1,
            "attack": {"norm": "linf"}, "image_indices": indices,
            "series": [series("ε=0.1", {"epsilon": 0.1}, "success_rate", False, worst, statistics)],
        }]
    return document


def without_statistics(document: dict[str, Any]) -> dict[str, Any]:
    """A copy with every statistics field removed, as a reader must tolerate."""
    bare = copy.deepcopy(document)
    bare.pop("statistics", None)
    for section in [*bare["sections"], *bare.get("worst_case", [])]:
        for entry in section["series"]:
            for field in ("interval", "vs_t0", "verdict"):
                entry.pop(field, None)
    return bare
