"""A cheap check of the timestep contract on a few real images, before any work is spent on a model."""

from __future__ import annotations

import torch
from torch import Tensor

from pcrobust.errors import PcrobustError, first_line
from pcrobust.models import TimestepModel

PROBE_IMAGES = 3
BATCH_TOLERANCE = 1e-3  # relative to the largest logit; float32 batch-size effects are ~1e-6 of it


def check_timestep_contract(model: TimestepModel, images: Tensor, num_classes: int, timesteps: int,
                            device: torch.device, who: str) -> None:
    """Raise a one-line :class:`PcrobustError` naming ``who`` when the model's logits on ``images`` are not
    ``[T+1, B, K]`` with K the dataset's classes, not finite, not repeatable, or depend on the batch."""
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
        scale = logits.abs().max().clamp_min(1.0)
        again = model(probe, timesteps)
        if not torch.allclose(again, logits, rtol=0, atol=float(BATCH_TOLERANCE * scale)):
            raise PcrobustError(f"{who} broke the timestep contract: two calls on the same images differ "
                                "(state kept between calls, or randomness at evaluation)")
        alone = model(probe[:1], timesteps)
        if not torch.allclose(alone[:, 0], logits[:, 0], rtol=0, atol=float(BATCH_TOLERANCE * scale)):
            raise PcrobustError(f"{who} broke the timestep contract: an image's logits depend on the other "
                                "images of its batch")
