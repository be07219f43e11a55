"""The settings of one ``pcrobust evaluate`` run, validated once and recorded in results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pcrobust.errors import PcrobustError
from pcrobust.models import READOUTS, Readout
from pcrobust.targets import TARGET_MODES, TargetMode


@dataclass(frozen=True)
class EvaluationConfig:
    plugin: str
    model: str | None = None
    weights: str | None = None
    model_options: dict[str, str] = field(default_factory=dict)
    dataset: str | None = None
    split: str = "test"
    n_clean: int | None = None
    timesteps: int | None = None
    attack: str | None = "bim"
    epsilons: tuple[float, ...] = (0.1, 0.2, 0.3)
    steps: int = 10
    rel_stepsize: float = 0.2
    random_start: bool = False
    n_attack: int = 100
    target_mode: TargetMode = "shift"
    target_shift: int = 1
    attack_readout: Readout = "t"
    gradient_mode: str | None = None
    noise_sigmas: tuple[float, ...] = (0.1, 0.2, 0.3)
    device: str = "auto"
    batch_size: int = 500
    seed: int = 0
    progress: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.n_clean is not None and self.n_clean < 1:
            problems.append("n-clean must be at least 1")
        if self.timesteps is not None and self.timesteps < 0:
            problems.append("timesteps must be non-negative")
        if self.n_attack < 1:
            problems.append("n-attack must be at least 1")
        if self.attack and not self.epsilons:
            problems.append("an attack needs at least one epsilon")
        if self.seed < 0:
            problems.append("seed must be non-negative")
        if any(not 0 < e <= 1 for e in self.epsilons):
            problems.append("epsilons must lie in (0, 1] (pixel units of images in [0, 1])")
        if any(s < 0 for s in self.noise_sigmas):
            problems.append("noise sigmas must be non-negative")
        if self.batch_size < 1:
            problems.append("batch-size must be at least 1")
        if self.target_mode not in TARGET_MODES:
            problems.append(f"target-mode must be one of {', '.join(TARGET_MODES)}")
        if self.attack_readout not in READOUTS:
            problems.append(f"attack-readout must be one of {', '.join(READOUTS)}")
        if problems:
            raise PcrobustError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["progress"]
        data["epsilons"], data["noise_sigmas"] = list(self.epsilons), list(self.noise_sigmas)
        return data
