"""Grad-CAM per timestep: the map of timestep t's class score at the call of a layer that belongs to timestep t.

A recurrent layer runs several times in one forward pass of a timestep model, once per timestep when the family
runs its network once per timestep (Predify runs the whole backbone at t = 0, 1, ..., T). Libraries such as captum
keep only the layer's last call; :class:`CallRecorder` keeps every call, so call k (0-based) is the activation
A_k of timestep k, and the map of timestep t is ``ReLU(Σ_c α_c A_t[c])`` with
``α_c = mean over positions of ∂y_t / ∂A_t[c]`` (Selvaraju et al. 2017), y_t the class score (logit) read out at t.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from pcrobust.errors import PcrobustError
from pcrobust.models import TimestepModel

Target = Literal["label", "prediction"]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` in ``model.named_modules()`` (e.g. ``backbone.features.7``)."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        convolutions = [key for key, module in modules.items() if isinstance(module, nn.Conv2d)]
        hint = f"; its convolutions: {', '.join(convolutions[:12])}" if convolutions else ""
        raise PcrobustError(f"layer {name!r} is not a module of the model (names as in named_modules(){hint})")
    return modules[name]


class CallRecorder:
    """Keeps the activation of every call of ``layer``, in call order, while active.

    A call's activation is what the layer hands on: its output after every forward hook already on the layer at
    that call (a Predify pcoder layer's hook replaces the layer's output by the pcoder state e_n(t)). To run after
    those hooks, a pre-hook appends a one-shot forward hook at each call, behind the hooks registered so far."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.calls: list[Tensor] = []

    def _before(self, module: nn.Module, inputs: Any) -> None:
        handle: RemovableHandle | None = None

        def keep(m: nn.Module, i: Any, output: Any) -> None:
            assert handle is not None
            self._keep(output, handle)

        handle = module.register_forward_hook(keep)

    def _keep(self, output: Any, handle: RemovableHandle) -> None:
        handle.remove()
        if not isinstance(output, Tensor):
            raise PcrobustError(f"the layer returned a {type(output).__name__}, not a tensor")
        self.calls.append(output)

    @contextmanager
    def recording(self) -> Iterator[list[Tensor]]:
        self.calls = []
        handle = self.layer.register_forward_pre_hook(self._before)
        try:
            yield self.calls
        finally:
            handle.remove()


@dataclass(frozen=True)
class TimestepMaps:
    """Grad-CAM of one batch: ``maps`` ``[T+1, B, h, w]`` at the layer's resolution, the explained ``classes``
    ``[T+1, B]`` and the ``logits`` ``[T+1, B, K]``."""

    maps: Tensor
    classes: Tensor
    logits: Tensor


def gradcam_per_timestep(model: TimestepModel, layer: nn.Module, images: Tensor, labels: Tensor, timesteps: int,
                         target: Target = "label", layer_name: str = "the layer") -> TimestepMaps:
    """Grad-CAM maps of ``layer`` at every timestep 0..T for ``images`` (in [0, 1]).

    The layer must run exactly T + 1 times in one forward pass; call t belongs to timestep t. ``target`` picks
    the explained class: the ``label``, or the ``prediction`` (argmax) of the readout at the same timestep."""
    x = images.detach().clone().requires_grad_(True)  # puts every activation in the graph, parameters frozen or not
    recorder = CallRecorder(layer)
    with torch.enable_grad(), recorder.recording() as calls:
        logits = model(x, timesteps)
    if len(calls) != timesteps + 1:
        raise PcrobustError(f"layer {layer_name!r} ran {len(calls)} times in a forward pass of {timesteps} "
                            f"timesteps; Grad-CAM per timestep needs a layer that runs once per timestep "
                            f"({timesteps + 1} times)")
    if calls[0].dim() != 4:
        raise PcrobustError(f"layer {layer_name!r} gives activations of shape {list(calls[0].shape)}; Grad-CAM "
                            "needs feature maps [B, C, H, W]")
    maps, classes = [], []
    for t in range(timesteps + 1):
        chosen = labels.to(logits.device) if target == "label" else logits[t].argmax(1)
        score = logits[t].gather(1, chosen.view(-1, 1)).sum()  # images are independent: one backward for all
        (gradient,) = torch.autograd.grad(score, calls[t], retain_graph=t < timesteps, allow_unused=True)
        if gradient is None:
            raise PcrobustError(f"the logits at timestep {t} do not depend on call {t} of layer {layer_name!r}")
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        maps.append(F.relu((weights * calls[t]).sum(1)).detach())
        classes.append(chosen.detach())
    return TimestepMaps(torch.stack(maps), torch.stack(classes), logits.detach())


def upsampled(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Maps ``[..., h, w]`` resized to the image's ``size`` by bilinear interpolation (align_corners=False)."""
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).double()
    return F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(*maps.shape[:-2], *size)


def binarised(maps: Tensor, threshold: float) -> Tensor:
    """Pixels whose value is at least ``threshold`` × the map's maximum; an all-zero map marks nothing."""
    peak = maps.flatten(-2).amax(-1)[..., None, None]
    return (maps >= threshold * peak) & (peak > 0)


def iou(region: Tensor, masks: Tensor) -> Tensor:
    """|R ∩ M| / |R ∪ M| per map over the last two dimensions; 1 where both are empty."""
    inter = (region & masks).flatten(-2).sum(-1).double()
    union = (region | masks).flatten(-2).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def similarity_to_first(maps: Tensor) -> Tensor:
    """Cosine similarity of each timestep's map with the map at t = 0, ``[T+1, B, h, w]`` → ``[T+1, B]``;
    1 where both maps are zero, 0 where only one is."""
    flat = maps.flatten(2).double()
    norms = flat.norm(dim=2)
    dot = (flat * flat[:1]).sum(2)
    both_zero = (norms == 0) & (norms[:1] == 0)
    cosine = dot / (norms * norms[:1]).clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(both_zero, torch.ones_like(cosine), cosine)
