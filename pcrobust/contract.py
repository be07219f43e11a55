"""A cheap check of the timestep contract on a few real images, before any work is spent on a model.

Two calls on the same images, and an image alone against the same image in a batch, must give the same logits.
In float32 they agree to :data:`BATCH_TOLERANCE` of the largest logit for most models. Dynamics that select a
branch by a sign (CNN-F's AdaReLU and AdaPool) can turn the ~1e-7 rounding differences of batch-size-dependent
convolution algorithms into large ones. When float32 disagrees, a float64 copy of the model decides: rounding
differences shrink there by nine orders of magnitude, a genuine dependence on the batch does not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pcrobust.errors import PcrobustError, first_line
from pcrobust.models import TimestepModel

PROBE_IMAGES = 3
BATCH_TOLERANCE = 1e-3  # relative to the largest logit; float32 batch-size effects are ~1e-6 of it
FLOAT64_TOLERANCE = 1e-6  # relative to the largest logit; float64 rounding is ~1e-16 of it

REPEAT_BROKEN = ("two calls on the same images differ (state kept between calls, or randomness at "
                 "evaluation)")
BATCH_BROKEN = "an image's logits depend on the other images of its batch"


@dataclass(frozen=True)
class Agreement:
    """The largest differences, relative to the largest logit, between two calls and between batchings."""

    repeat: float
    batch: float

    def within(self, tolerance: float) -> bool:
        return self.repeat <= tolerance and self.batch <= tolerance

    def broken(self, tolerance: float) -> str:
        return REPEAT_BROKEN if self.repeat > tolerance else BATCH_BROKEN


@dataclass(frozen=True)
class ContractCheck:
    """How the contract was shown to hold: in float32, or in a float64 copy when float32 rounding disagreed."""

    float32: Agreement
    float64: Agreement | None = None

    @property
    def checked_in(self) -> str:
        return "float32" if self.float64 is None else "float64"

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "probe_images": PROBE_IMAGES, "checked_in": self.checked_in,
            "tolerance": BATCH_TOLERANCE if self.float64 is None else FLOAT64_TOLERANCE,
            "relative_to": "the largest logit of the probe (at least 1)",
            "float32_repeat_difference": self.float32.repeat, "float32_batch_difference": self.float32.batch}
        if self.float64 is not None:
            described |= {"float64_repeat_difference": self.float64.repeat,
                          "float64_batch_difference": self.float64.batch, "warning": self.warning(self.float64)}
        return described

    def warning(self, double: Agreement) -> str:
        """A line for the reader: float32 logits change with the batching by more than the tolerance."""
        return (f"float32 logits change by up to {max(self.float32.repeat, self.float32.batch):.2g} of the largest "
                f"logit with the batching (rounding that the dynamics amplify; a float64 copy agrees to "
                f"{max(double.repeat, double.batch):.1g}): compare runs at equal batch_size and "
                "images_per_unit")


def agreement(model: TimestepModel, probe: Tensor, timesteps: int, logits: Tensor) -> Agreement:
    """Compare ``logits`` (of ``probe``) with a second call and with the first image alone."""
    scale = float(logits.abs().max().clamp_min(1.0))
    again = model(probe, timesteps)
    alone = model(probe[:1], timesteps)
    return Agreement(float((again - logits).abs().max()) / scale,
                     float((alone[:, 0] - logits[:, 0]).abs().max()) / scale)


def float64_agreement(model: TimestepModel, probe: Tensor, timesteps: int) -> Agreement | str:
    """:func:`agreement` of a float64 copy of ``model`` (the model itself is left as it is), or why none could
    be computed."""
    try:
        double = copy.deepcopy(model).double()
        wide = probe.double()
        return agreement(double, wide, timesteps, double(wide, timesteps))
    except Exception as exc:  # an untrusted model that cannot run in float64: the float32 verdict stands
        return first_line(exc)


def check_timestep_contract(model: TimestepModel, images: Tensor, num_classes: int, timesteps: int,
                            device: torch.device, who: str) -> ContractCheck:
    """Raise a one-line :class:`PcrobustError` naming ``who`` when the model's logits on ``images`` are not
    ``[T+1, B, K]`` with K the dataset's classes, not finite, not repeatable, or depend on the batch; return
    how repeatability and batch independence were shown."""
    probe = images[:PROBE_IMAGES].to(device)
    expected = (timesteps + 1, len(probe), num_classes)
    with torch.no_grad():
        try:
            logits = model(probe, timesteps)
        except Exception as exc:  # an untrusted model: name it and what it was given, in one line
            raise PcrobustError(f"{who} failed on {len(probe)} images of shape {list(probe.shape[1:])}: "
                                f"{first_line(exc)}") from None
        if not isinstance(logits, Tensor) or tuple(logits.shape) != expected:
            shape = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise PcrobustError(f"{who} broke the timestep contract: logits {shape}, expected [T+1, B, K] = "
                                f"{list(expected)} (K = the dataset's {num_classes} classes)")
        if declared := getattr(model, "num_classes", None):
            if declared != num_classes:
                raise PcrobustError(f"{who} declares {declared} classes but the dataset has {num_classes}")
        if not torch.isfinite(logits).all():
            raise PcrobustError(f"{who} broke the timestep contract: non-finite logits")
        single = agreement(model, probe, timesteps, logits)
        if single.within(BATCH_TOLERANCE):
            return ContractCheck(single)
        double = float64_agreement(model, probe, timesteps)
    if isinstance(double, str):
        raise PcrobustError(f"{who} broke the timestep contract: {single.broken(BATCH_TOLERANCE)} (a float64 "
                            f"copy, to tell rounding apart, failed: {double})")
    if not double.within(FLOAT64_TOLERANCE):
        raise PcrobustError(f"{who} broke the timestep contract: {double.broken(FLOAT64_TOLERANCE)} "
                            "(in float32 and in a float64 copy)")
    return ContractCheck(single, double)
