"""A Predify network: any backbone whose chosen layers are replaced, at each timestep, by pcoder states."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pcrobust.errors import PcrobustError
from pcrobust.models import Normalization, TimestepModel, TimestepOutput
from pcrobust_predify.pcoder import PCoder

_PATH = re.compile(r"^(\w+|\[\d+\])(\.\w+|\[\d+\])*$")
_States = tuple[list[Tensor | None], list[Tensor | None], list[Tensor | None]]  # reps, predictions, ∇ε per layer


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
class _StepState:
    """The dynamics during one timestep's backbone pass: built from the previous timestep's states, so the pass
    is a pure function of its inputs (and can be recomputed for activation checkpointing)."""

    t: int
    timesteps: int
    image: Tensor
    predict_last: bool  # the last timestep's predictions feed only the extras (errors, reconstructions)
    reps: list[Tensor | None]
    predictions: list[Tensor | None]
    gradients: list[Tensor | None]
    visited: int = 0
    errors: list[Tensor] = field(default_factory=list)


class PredifyNet(TimestepModel):
    """Eq. 1–2 of Predify over ``backbone``; t = 0 returns the backbone's own logits exactly."""

    gradient_modes = ("exact", "detached")
    supports_checkpointing = True

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
        return self._run(x, timesteps, reconstructions, errors, None)

    def representations(self, x: Tensor, timesteps: int) -> dict[str, Tensor]:
        """Each pcoder's representation e_n at every timestep, ``{"pcoder n (module)": [T+1, B, ...]}``."""
        kept: list[list[Tensor]] = [[] for _ in self.pcoders]
        self._run(x, timesteps, False, False, kept)
        return {f"pcoder {i + 1} ({path})": torch.stack(reps)
                for i, (path, reps) in enumerate(zip(self.layer_paths, kept, strict=True))}

    def reconstruction_target(self, x: Tensor) -> Tensor:
        """The first pcoder predicts the normalised image."""
        return self.normalization(x)

    def _run(self, x: Tensor, timesteps: int, reconstructions: bool, errors: bool,
             kept: list[list[Tensor]] | None) -> TimestepOutput:
        """The unroll; with ``kept``, each pcoder's representation is appended to its list at every timestep."""
        if timesteps < 0:
            raise ValueError(f"timesteps must be non-negative, got {timesteps}")
        image = self.normalization(x)
        n = len(self.pcoders)
        states: _States = ([None] * n, [None] * n, [None] * n)
        predict_last = errors or reconstructions
        checkpointed = self.checkpoint_timesteps and torch.is_grad_enabled()
        logits: list[Tensor] = []
        recons: list[Tensor] = []
        per_step: list[Tensor] = []
        for t in range(timesteps + 1):
            if checkpointed:
                out, states, step_errors = checkpoint(self._timestep, t, timesteps, predict_last, image, states,
                                                      use_reentrant=False)
            else:
                out, states, step_errors = self._timestep(t, timesteps, predict_last, image, states)
            logits.append(out)
            per_step.extend(step_errors)
            if kept is not None:
                for reps, rep in zip(kept, states[0], strict=True):
                    reps.append(rep)  # type: ignore[arg-type]  # every layer ran (checked in the step)
            if reconstructions:
                recons.append(states[1][0])  # type: ignore[arg-type]  # set by the first hook
        per_layer = torch.stack(per_step).view(timesteps + 1, n, -1) if errors else None  # appended t by t
        return TimestepOutput(torch.stack(logits), per_layer, torch.stack(recons) if reconstructions else None)

    def _timestep(self, t: int, timesteps: int, predict_last: bool, image: Tensor, states: _States
                  ) -> tuple[Tensor, _States, list[Tensor]]:
        """One backbone pass at timestep ``t`` from the previous (reps, predictions, error gradients): its logits,
        the new states and the per-layer errors. The hooks live only during the pass, so a recomputation in the
        backward pass (checkpointing) runs the same dynamics from the same inputs."""
        n = len(self.pcoders)
        reps, predictions, gradients = states
        state = _StepState(t, timesteps, image, predict_last, list(reps), list(predictions), list(gradients))
        handles = [layer.register_forward_hook(self._hook(i, state)) for i, layer in enumerate(self._layers)]
        try:
            out = self.backbone(image)
        finally:
            for handle in handles:
                handle.remove()
        if state.visited != n:
            raise RuntimeError(f"only {state.visited} of {n} pcoder layers ran in the backbone's forward")
        return out, (state.reps, state.predictions, state.gradients), state.errors

    @property
    def pcoder_list(self) -> list[PCoder]:
        """The pcoders, bottom to top, typed."""
        return cast(list[PCoder], list(self.pcoders))

    def _hook(self, index: int, state: _StepState) -> Any:
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
