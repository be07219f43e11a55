"""Section kind ``clean``: accuracy per timestep on the evaluated images, and the mean per timestep of every
measure the model reports (``TimestepModel.measure_names``, e.g. an energy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pcrobust.kinds.common import chunk_units, correct_per_image, stacked
from pcrobust.run.context import RunContext
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit


def measure_means(outcomes: Sequence[tuple[Unit, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per measure, its mean over the images at each timestep, with the number of images."""
    names = [name for name in outcomes[0][1].get("measures", {})] if outcomes else []
    means = {}
    for name in names:
        rows = np.asarray([row for _, outcome in outcomes for row in outcome["measures"][name]], dtype=np.float64)
        means[name] = {"mean": [float(v) for v in rows.mean(axis=0)], "n": len(rows)}
    return means


class Clean(SectionKind):
    name = "clean"
    description = "accuracy per timestep on the evaluated images (and the mean of the model's measures)"
    options = SectionOptions

    def title(self, options: SectionOptions) -> str:
        return "clean accuracy"

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        return chunk_units(context.chunks())

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        chunk = int(unit.params["chunk"])
        logits = context.clean_logits(chunk)
        outcome: dict[str, Any] = {"indices": list(unit.indices),
                                   "correct": correct_per_image(logits, context.data.labels[list(unit.indices)])}
        measures = context.clean_measures(chunk)
        if measures:
            outcome["measures"] = {name: values.T.tolist() for name, values in measures.items()}
        return outcome

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        indices, correct = stacked(outcomes, "correct")
        fields: dict[str, Any] = {"protocol": "argmax of the logits at timestep t equals the label"}
        means = measure_means(outcomes)
        if means:
            fields["model_measures"] = means
        return SectionResult(fields, [Series("clean", {}, "accuracy", True, indices, correct)])
