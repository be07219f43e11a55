"""The timestep model contract: images in [0, 1] in, logits for every timestep out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pcrobust.vocabulary import Readout


@dataclass
class TimestepOutput:
    """One unroll: ``logits`` is ``[T+1, B, K]``; extras are ``None`` when a model has none.

    ``reconstruction_errors``: ``[T+1, L, B]`` per-sample reconstruction MSE per layer.
    ``reconstructions``: ``[T+1, B, C, H, W]`` the model's prediction of the image, in the space
    :meth:`TimestepModel.reconstruction_target` gives.
    ``measures``: named per-sample scalars per timestep, each ``[T+1, B]`` and finite (an energy, say); the clean
    section reports the mean of each per timestep.
    """

    logits: Tensor
    reconstruction_errors: Tensor | None = None
    reconstructions: Tensor | None = None
    measures: dict[str, Tensor] | None = None


class Normalization(nn.Module):
    """Per-channel ``(x - mean) / std`` applied inside a model, recorded in results.

    The constants are kept as the Python floats given. Whenever the module's tensors are converted
    (``.double()``, ``.to(...)``, ``.cuda()``, ``.half()``, ...), the buffers are refilled from those
    exact values in the new dtype, so a float64 model normalises with float64 constants rather than
    float32-rounded ones, and a float32 model stays float32.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean_values = tuple(float(v) for v in mean)
        self.std_values = tuple(float(v) for v in std)
        self.register_buffer("mean", torch.tensor(self.mean_values).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.std_values).view(1, -1, 1, 1), persistent=False)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Normalization:
        super()._apply(fn, recurse)
        with torch.no_grad():
            for name, values in (("mean", self.mean_values), ("std", self.std_values)):
                buffer = getattr(self, name)
                if buffer.is_floating_point() or buffer.is_complex():
                    # Round once, from the exact values, on the CPU; then fill a fresh tensor like the
                    # converted one (its device, dtype and memory format), never writing into a tensor
                    # the conversion may have returned unchanged.
                    exact = torch.tensor(values, dtype=torch.float64).to(buffer.dtype).reshape(buffer.shape)
                    fresh = torch.empty_like(buffer)
                    fresh.copy_(exact)
                    self._buffers[name] = fresh
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def describe(self) -> dict[str, Any]:
        return {"mean": list(self.mean_values), "std": list(self.std_values), "input_range": [0, 1]}


class TimestepModel(nn.Module, ABC):
    """A recurrent classifier evaluated at every timestep of its dynamics.

    Contract: ``forward(x, T)`` takes images in [0, 1] (normalisation is inside the model) and
    returns ``[T+1, B, K]`` logits; t = 0 is the feedforward pass. A call keeps no state, and the
    output for one image does not depend on the other images of the batch.
    """

    num_classes: int
    default_timesteps: int
    gradient_modes: tuple[str, ...] = ("exact",)
    gradient_mode: str = "exact"
    measure_names: tuple[str, ...] = ()
    """The ``TimestepOutput.measures`` that ``unroll(..., errors=True)`` returns; the clean section reports them."""
    supports_checkpointing: bool = False
    checkpoint_timesteps: bool = False

    @abstractmethod
    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        """Run ``timesteps`` recurrent updates after the feedforward pass.

        ``errors=False`` says only logits (and requested reconstructions) are wanted, so a model may skip
        work that serves nothing else."""

    def forward(self, x: Tensor, timesteps: int | None = None) -> Tensor:
        steps = self.default_timesteps if timesteps is None else timesteps
        return self.unroll(x, steps, errors=False).logits

    def representations(self, x: Tensor, timesteps: int) -> dict[str, Tensor] | None:
        """Optional: each named layer's representation at every timestep, ``{name: [T+1, B, ...]}``, bottom layer
        first, names stable across calls; ``None`` (the default) when the model offers none."""
        return None

    def reconstruction_target(self, x: Tensor) -> Tensor:
        """The image as ``reconstructions`` predict it: ``x`` itself, unless the model reconstructs its normalised
        input (then the normalised image)."""
        return x

    def set_gradient_mode(self, mode: str) -> None:
        """Choose how gradients flow through non-standard steps (recorded in results)."""
        if mode not in self.gradient_modes:
            raise ValueError(f"gradient mode {mode!r} not offered; choose from {', '.join(self.gradient_modes)}")
        self.gradient_mode = mode

    def set_checkpointing(self, enabled: bool) -> None:
        """Recompute each timestep's activations in the backward pass instead of keeping them (exact gradients,
        memory of one timestep); only a model that ``supports_checkpointing`` can turn it on."""
        if enabled and not self.supports_checkpointing:
            raise ValueError(f"{type(self).__name__} does not support activation checkpointing per timestep")
        self.checkpoint_timesteps = enabled

    def describe(self) -> dict[str, Any]:
        """Facts about the model that results must record (hyperparameters, normalisation, ...)."""
        return {}


def select_readout(logits: Tensor, readout: Readout, timestep: Tensor | None = None) -> Tensor:
    """Reduce ``[T+1, B, K]`` logits to ``[B, K]``: per-sample timestep, mean over time, last, or the
    feedforward pass (``first``, t = 0)."""
    if readout == "avg":
        return logits.mean(0)
    if readout == "last":
        return logits[-1]
    if readout == "first":
        return logits[0]
    if timestep is None:
        raise ValueError("readout 't' needs a timestep per sample")
    index = timestep.view(1, -1, 1).expand(1, logits.shape[1], logits.shape[2])
    return logits.gather(0, index).squeeze(0)


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration; the previous state is restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
