"""What a section's units see while they run: the model, the data, the plan's settings, shared caches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pcrobust.contract import ContractCheck
from pcrobust.datasets import LabeledImages
from pcrobust.engine import predict, predict_measures
from pcrobust.models import TimestepModel
from pcrobust.specs import RunSpec

if TYPE_CHECKING:
    from pcrobust.registry import Registries


@dataclass
class RunContext:
    """A resolved plan ready to run. ``evaluated`` holds the dataset indices of the evaluated images in
    evaluation order; it is split into fixed chunks of ``images_per_unit``, and clean logits are computed
    per chunk once (so a selection and the clean section see the same numbers)."""

    run: RunSpec
    registries: Registries
    model: TimestepModel
    data: LabeledImages
    device: torch.device
    timesteps: int
    evaluated: Tensor
    progress: bool = True
    contract: ContractCheck | None = None
    """How the model was shown to keep the timestep contract (:func:`~pcrobust.contract.check_timestep_contract`)."""
    _clean: dict[int, Tensor] = field(default_factory=dict, repr=False)
    surrogates: dict[str, tuple[TimestepModel, int, ContractCheck]] = field(default_factory=dict, repr=False)
    """Surrogate models of attack sections (with their timesteps and contract checks), built once per surrogate
    table."""
    _measures: dict[int, dict[str, Tensor]] = field(default_factory=dict, repr=False)

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def batch_size(self) -> int:
        return self.run.batch_size

    def chunks(self) -> list[Tensor]:
        """The evaluated dataset indices in chunks of ``images_per_unit``."""
        return list(self.evaluated.split(self.run.images_per_unit))

    def logits(self, images: Tensor, desc: str) -> Tensor:
        """``[T+1, N, K]`` logits of ``images`` (CPU), batched by the plan's batch size."""
        return predict(self.model, images, self.timesteps, self.batch_size, self.device, desc, False)

    def clean_logits(self, chunk: int) -> Tensor:
        """Clean logits of the evaluated chunk number ``chunk``, computed once."""
        if chunk not in self._clean:
            indices = self.chunks()[chunk]
            self._clean[chunk] = self.logits(self.data.images[indices], f"clean chunk {chunk}")
        return self._clean[chunk]

    def clean_measures(self, chunk: int) -> dict[str, Tensor]:
        """The model's measures ``[T+1, n]`` on the evaluated chunk number ``chunk`` (none for most models)."""
        if chunk not in self._measures:
            indices = self.chunks()[chunk]
            self._measures[chunk] = predict_measures(self.model, self.data.images[indices], self.timesteps,
                                                     self.batch_size, self.device, f"measures chunk {chunk}", False)
        return self._measures[chunk]

    def clean_logits_of(self, indices: Sequence[int]) -> Tensor:
        """Clean logits ``[T+1, n, K]`` of evaluated images given by dataset index (from their chunks)."""
        size = self.run.images_per_unit
        position = {int(index): p for p, index in enumerate(self.evaluated.tolist())}
        columns = []
        for index in indices:
            p = position[int(index)]
            columns.append(self.clean_logits(p // size)[:, p % size])
        return torch.stack(columns, dim=1)
