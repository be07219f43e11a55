"""The options of an ``attack`` section (torch-free, so the CLI can show them without loading a model)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from pcrobust.schema import Schema
from pcrobust.sections import SectionOptions
from pcrobust.specs import MAX_TIMESTEPS, ModelOptions
from pcrobust.vocabulary import Norm, Readout, TargetMode

Criterion = Literal["targeted", "untargeted"]
Selection = Literal["correct-at-every-timestep", "correct-at-t0", "all"]
SELECTION_RULES: dict[str, str] = {
    "correct-at-every-timestep": "the first n evaluated images classified correctly at every timestep 0..T",
    "correct-at-t0": "the first n evaluated images classified correctly by the feedforward pass (t = 0)",
    "all": "the first n evaluated images",
}


class SurrogateOptions(Schema):
    """A registered model the adversarials are crafted on; the section's model scores them at every timestep."""

    plugin: str = Field(min_length=1, description="plugin of the surrogate model")
    name: str | None = Field(None, min_length=1, description="the surrogate model (default: the plugin's default)")
    options: ModelOptions = Field(default_factory=dict, description="the surrogate's options")
    readout: Literal["last", "first", "avg"] = Field("last", description="attacked readout of the surrogate")
    timesteps: int | None = Field(None, ge=0, le=MAX_TIMESTEPS,
                                  description="surrogate timesteps (default: the surrogate's default)")


class AttackSectionOptions(SectionOptions):
    attack: str = Field("bim", min_length=1, description="attack name")
    norm: Norm | None = Field(None, description="threat model (default: the attack's first norm)")
    epsilons: tuple[Annotated[float, Field(gt=0)], ...] | None = Field(
        None, min_length=1, description="budgets in pixel units of images in [0, 1] (default: the attack's grid)")
    criterion: Criterion = Field("targeted", description="targeted (success rate) or untargeted (robust accuracy)")
    target_mode: TargetMode = Field("shift", description="shift, random or least-likely (targeted only)")
    target_shift: int = Field(1, description="k in target = (y + k) mod K")
    readout: Readout = Field("t", description="attacked readout: t (each timestep), avg, last, or first "
                                                        "(the feedforward pass, scored at every t)")
    gradient_mode: str | None = Field(None, description="gradient mode of the model (default: the plan's)")
    n: int = Field(100, ge=1, description="images to attack")
    selection: Selection = Field("correct-at-every-timestep", description="how the attacked images are chosen")
    options: dict[str, Any] = Field(default_factory=dict, description="the attack's own options")
    surrogate: SurrogateOptions | None = Field(None, description="craft on this model instead, score the target at "
                                                                 "every t (a transfer attack)")
