"""Section kind ``clean``: accuracy per timestep on the evaluated images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pcrobust.kinds.common import chunk_units, correct_per_image, stacked
from pcrobust.run.context import RunContext
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit


class Clean(SectionKind):
    name = "clean"
    description = "accuracy per timestep on the evaluated images"
    options = SectionOptions

    def title(self, options: SectionOptions) -> str:
        return "clean accuracy"

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        return chunk_units(context.chunks())

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        logits = context.clean_logits(int(unit.params["chunk"]))
        return {"indices": list(unit.indices),
                "correct": correct_per_image(logits, context.data.labels[list(unit.indices)])}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        indices, correct = stacked(outcomes, "correct")
        return SectionResult({"protocol": "argmax of the logits at timestep t equals the label"},
                             [Series("clean", {}, "accuracy", True, indices, correct)])
