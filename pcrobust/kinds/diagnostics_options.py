"""The options of a ``diagnostics`` section (torch-free, so the CLI can show them without loading a model)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from pcrobust.kinds.attack_options import Criterion, Selection
from pcrobust.sections import SectionOptions
from pcrobust.vocabulary import Norm


def _black_box_budget() -> dict[str, Any]:
    return {"steps": 5, "samples": 4, "lr": 0.05}


class DiagnosticsOptions(SectionOptions):
    attack: str = Field("bim", min_length=1, description="the white-box attack (it must take a steps option)")
    options: dict[str, Any] = Field(default_factory=dict, description="the white-box attack's own options")
    norm: Norm | None = Field(None, description="threat model (default: the attack's first norm)")
    epsilons: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        (0.1, 0.3, 1.0), min_length=1, description="ascending budgets, pixel units of images in [0, 1]; success "
                                                   "must rise over them and reach min_success at the last")
    compare_epsilon: float | None = Field(None, gt=0, description="the ε of the comparisons (one of epsilons; "
                                                                  "default: the first)")
    criterion: Criterion = Field("untargeted", description="untargeted, or targeted at (label + 1) mod K")
    steps_factor: int = Field(4, ge=2, description="the longer run takes steps × steps_factor iterations")
    transfer: bool = Field(True, description="compare with the attack crafted on the model's feedforward pass")
    black_box: str = Field("spsa", min_length=1, description="the black-box attack compared, or none")
    black_box_options: dict[str, Any] = Field(default_factory=_black_box_budget,
                                              description="the black-box attack's own options")
    gradient_modes: bool = Field(True, description="compare the model's other gradient modes, where it offers any")
    n: int = Field(50, ge=1, description="images diagnosed")
    selection: Selection = Field("correct-at-every-timestep", description="how the images are chosen")
    tolerance: float = Field(0.05, ge=0, lt=1, description="how far a success rate may fall short of a "
                                                           "comparison before a check fails (rate units)")
    min_success: float = Field(0.95, gt=0, le=1, description="the success expected at the largest ε")
