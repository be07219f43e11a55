"""A Predify network: any backbone whose chosen layers are replaced, at each timestep, by pcoder states."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from pcrobust.errors import PcrobustError
from pcrobust.models import Normalization, TimestepModel, TimestepOutput
from pcrobust_predify.pcoder import PCoder

_PATH = re.compile(r"^(\w+|\[\d+\])(\.\w+|\[\d+\])*$")


def resolve_module(root: nn.Module, path: str) -> nn.Module:
    """The submodule at ``path`` (``features[3]``, ``features.3``, ``blocks[0].act``) by attribute lookup."""
    if not _PATH.match(path):
        raise PcrobustError(f"invalid module path {path!r}: use names, '.name' and '[index]' only")
    dotted = re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")
    try:
        return root.get_submodule(dotted)
    except AttributeError:
        raise PcrobustError(f"module path {path!r} does not exist in the backbone") from None


@dataclass
class _UnrollState:
    """The dynamics of one call; it lives only as long as that call."""

    timesteps: int
    image: Tensor
    predict_last: bool  # the last timestep's predictions feed only the extras (errors, reconstructions)
    t: int = 0
    visited: int = 0
    reps: list[Tensor | None] = field(default_factory=list)
    predictions: list[Tensor | None] = field(default_factory=list)
    gradients: list[Tensor | None] = field(default_factory=list)
    errors: list[Tensor] = field(default_factory=list)


class PredifyNet(TimestepModel):
    """Eq. 1–2 of Predify over ``backbone``; t = 0 returns the backbone's own logits exactly."""

    gradient_modes = ("exact", "detached")

    def __init__(self, backbone: nn.Module, layer_paths: Sequence[str], pcoders: Sequence[PCoder],
                 normalization: Normalization, num_classes: int, default_timesteps: int,
                 gradient_mode: str = "exact") -> None:
        super().__init__()
        if len(layer_paths) != len(pcoders) or not pcoders:
            raise ValueError("need one pcoder per layer path, and at least one")
        for module in backbone.modules():  # in-place activations would alias the states the hooks return
            if hasattr(module, "inplace"):
                module.inplace = False  # type: ignore[assignment]  # a plain bool attribute of activations
        self.backbone = backbone.eval()
        self.layer_paths = tuple(layer_paths)
        self.pcoders = nn.ModuleList(pcoders)
        self.normalization = normalization
        self.num_classes = num_classes
        self.default_timesteps = default_timesteps
        self.set_gradient_mode(gradient_mode)
        self._layers = [resolve_module(backbone, path) for path in layer_paths]

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        if timesteps < 0:
            raise ValueError(f"timesteps must be non-negative, got {timesteps}")
        image = self.normalization(x)
        n = len(self.pcoders)
        state = _UnrollState(timesteps, image, errors or reconstructions, reps=[None] * n, predictions=[None] * n,
                             gradients=[None] * n)
        handles = [layer.register_forward_hook(self._hook(i, state)) for i, layer in enumerate(self._layers)]
        logits: list[Tensor] = []
        recons: list[Tensor] = []
        try:
            for t in range(timesteps + 1):
                state.t, state.visited = t, 0
                logits.append(self.backbone(image))
                if state.visited != n:
                    raise RuntimeError(f"only {state.visited} of {n} pcoder layers ran in the backbone's forward")
                if reconstructions:
                    recons.append(state.predictions[0])  # type: ignore[arg-type]  # set by the first hook
        finally:
            for handle in handles:
                handle.remove()
        per_layer = torch.stack(state.errors).view(timesteps + 1, n, -1) if errors else None  # appended t by t
        return TimestepOutput(torch.stack(logits), per_layer, torch.stack(recons) if reconstructions else None)

    @property
    def pcoder_list(self) -> list[PCoder]:
        """The pcoders, bottom to top, typed."""
        return cast(list[PCoder], list(self.pcoders))

    def _hook(self, index: int, state: _UnrollState) -> Any:
        pcoder = self.pcoder_list[index]
        top = index == len(self.pcoders) - 1

        def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            if state.visited != index:
                raise RuntimeError(f"layer {self.layer_paths[index]!r} ran out of order or twice in one pass")
            state.visited += 1
            if state.t == 0:
                rep = output
            else:
                feedback = None if top else state.predictions[index + 1]
                rep = pcoder.update(output, feedback, state.reps[index], state.gradients[index])  # type: ignore[arg-type]
            state.reps[index] = rep
            last = state.t == state.timesteps
            if last and not state.predict_last:
                return rep
            target = state.image if index == 0 else state.reps[index - 1]
            result = pcoder.predict(rep, target, need_gradient=not last,  # type: ignore[arg-type]
                                    exact=self.gradient_mode == "exact")
            state.predictions[index] = result.prediction
            state.gradients[index] = result.error_gradient
            state.errors.append(result.error)
            return rep

        return hook

    def describe(self) -> dict[str, Any]:
        return {
            "family": "predify",
            "gradient_mode": self.gradient_mode,
            "error_scaling": "per-sample mean over C·H·W (equals the reference package at batch size 1)",
            "normalization": self.normalization.describe(),
            "pcoders": [
                {"module": path, "beta": pc.hyperparameters.beta, "lambda": pc.effective_lambda,
                 "alpha": pc.hyperparameters.alpha}
                for path, pc in zip(self.layer_paths, self.pcoder_list, strict=True)
            ],
        }
