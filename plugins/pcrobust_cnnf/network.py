"""CNN-F (Huang et al. 2020): a CNN whose AdaReLU/AdaPool latents are inferred by recurrent generative feedback."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pcrobust.models import Normalization, TimestepModel, TimestepOutput
from pcrobust_cnnf.layers import PoolChoice, ada_pool, ada_relu, ins_norm, unpool

GRADIENT_MODES = {
    "exact": "autograd through every unrolled iteration; the branch selections (signs of the feedback, pooled "
             "positions, active units) are piecewise constant and contribute no gradient",
    "bpda": "as exact, except that from t = 1 on each AdaReLU passes the gradient of its selected branch "
            "straight through (±1 by the feedback's sign, gated units included); AdaPool routes it to the "
            "selected max or min position",
}


@dataclass(frozen=True)
class Architecture:
    """Conv stages (3×3, InsNorm, bias, ReLU, optional 2×2 pool), hidden linear stages (InsNorm over the
    features unless ``linear_norm`` is off, bias, ReLU), a linear read-out.

    ``encode`` (k ≥ 1) conv stages encode the image; h is the k-th stage's pre-activation, and every
    nonlinearity from stage k on is adaptive. ``linear_norm=False`` is the reference code's layout: no InsNorm
    on the linear stages, forward or feedback."""

    in_channels: int = 1
    image_size: int = 28
    channels: tuple[int, ...] = (16, 32)
    pools: tuple[bool, ...] = (True, True)
    hidden: tuple[int, ...] = (128,)
    num_classes: int = 10
    encode: int = 1
    kernel_size: int = 3
    linear_norm: bool = True

    def __post_init__(self) -> None:
        if len(self.pools) != len(self.channels) or not self.channels:
            raise ValueError("need at least one conv stage and one pool flag per conv stage")
        if not 1 <= self.encode <= len(self.channels):
            raise ValueError(f"encode must lie in 1..{len(self.channels)}, got {self.encode}")
        if self.kernel_size % 2 == 0:
            raise ValueError("the kernel size must be odd (same-size convolutions)")

    @property
    def conv_output_size(self) -> int:
        return self.image_size // 2 ** sum(self.pools)

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        """The inverse of :meth:`to_dict`; keys added since a file was written take their defaults."""
        values: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                                  for key, value in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class Latents:
    """ẑ of one adaptive stage from one feedforward pass: active units (Eq. 4) and pooled positions (Eq. 5)."""

    active: Tensor
    pool: PoolChoice | None
    output_shape: torch.Size


@dataclass(frozen=True)
class Feedback:
    """g_t per adaptive stage: at its pre-activation (``pre``) and, for pooled stages, at the pool's output."""

    pre: dict[int, Tensor]
    pooled: dict[int, Tensor]


@dataclass(frozen=True)
class Pass:
    """One feedforward pass from h: logits, each adaptive stage's pre-activation f(ℓ) and latents."""

    logits: Tensor
    features: dict[int, Tensor]
    latents: dict[int, Latents]


@dataclass(frozen=True)
class Trace:
    """Algorithm 1 unrolled: the passes t = 0..T and the feedback generated after each requested pass."""

    passes: list[Pass]
    feedback: list[Feedback]

    @property
    def logits(self) -> Tensor:
        return torch.stack([p.logits for p in self.passes])


class CNNF(TimestepModel):
    """CNN-F: t = 0 is the plain CNN (ReLU, max-pool); each iteration feeds the logits back (Eq. 2) and
    updates h and every adaptive layer online with step η (Eq. 6–7)."""

    gradient_modes = tuple(GRADIENT_MODES)
    supports_checkpointing = True

    def __init__(self, architecture: Architecture, *, eta: float = 0.1, default_timesteps: int = 2,
                 gradient_mode: str = "exact") -> None:
        super().__init__()
        if not 0 < eta <= 1:
            raise ValueError(f"eta must lie in (0, 1], got {eta}")
        self.architecture = arch = architecture
        self.eta = eta
        self.num_classes = arch.num_classes
        self.default_timesteps = default_timesteps
        self.set_gradient_mode(gradient_mode)
        self.normalization = Normalization([0.5] * arch.in_channels, [0.5] * arch.in_channels)
        widths = (arch.in_channels, *arch.channels)
        self.conv_weights = nn.ParameterList(
            nn.Parameter(nn.init.kaiming_normal_(torch.empty(c_out, c_in, arch.kernel_size, arch.kernel_size)))
            for c_in, c_out in zip(widths, widths[1:], strict=False))
        self.conv_biases = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in arch.channels)
        sizes = (arch.channels[-1] * arch.conv_output_size ** 2, *arch.hidden, arch.num_classes)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))

    # Stages are numbered 0..S: conv stages first, then hidden linear stages; S is the read-out.
    @property
    def first(self) -> int:
        """The stage whose pre-activation is h (k − 1, counting from 0)."""
        return self.architecture.encode - 1

    @property
    def readout_stage(self) -> int:
        return len(self.architecture.channels) + len(self.architecture.hidden)

    def _is_conv(self, stage: int) -> bool:
        return stage < len(self.architecture.channels)

    def _pre_activation(self, stage: int, x: Tensor) -> Tensor:
        if self._is_conv(stage):
            out = F.conv2d(x, self.conv_weights[stage], padding=self.architecture.kernel_size // 2)
            return ins_norm(out) + self.conv_biases[stage].view(1, -1, 1, 1)
        layer = self._linear(stage)
        if stage == self.readout_stage:
            return layer(x.flatten(1))
        return self._linear_norm(F.linear(x.flatten(1), layer.weight)) + layer.bias

    def _linear_norm(self, x: Tensor) -> Tensor:
        """InsNorm on a linear stage's (vector) map, unless the architecture leaves it out."""
        return ins_norm(x) if self.architecture.linear_norm else x

    def _transposed(self, stage: int, g: Tensor) -> Tensor:
        """Eq. 2's W^T of ``stage``: the transposed convolution / linear map with the same (tied) weights."""
        if self._is_conv(stage):
            return F.conv_transpose2d(g, self.conv_weights[stage], padding=self.architecture.kernel_size // 2)
        return g @ self._linear(stage).weight

    def _linear(self, stage: int) -> nn.Linear:
        layer = self.linears[stage - len(self.architecture.channels)]
        assert isinstance(layer, nn.Linear)
        return layer

    def _pooled(self, stage: int) -> bool:
        return self._is_conv(stage) and self.architecture.pools[stage]

    def encode(self, x: Tensor) -> Tensor:
        """h_0: the normalised image through the encoding stages (plain ReLU and max-pool)."""
        out = self.normalization(x)
        for stage in range(self.first):
            out = F.relu(self._pre_activation(stage, out))
            if self._pooled(stage):
                out, _ = ada_pool(out, None)
        return self._pre_activation(self.first, out)

    def ascend(self, h: Tensor, feedback: Feedback | None) -> Pass:
        """The feedforward pathway from h; with feedback, Eq. 7 and Eq. 3 at every adaptive stage."""
        straight = self.gradient_mode == "bpda"
        features: dict[int, Tensor] = {}
        latents: dict[int, Latents] = {}
        out = h
        for stage in range(self.first, self.readout_stage):
            f = h if stage == self.first else self._pre_activation(stage, out)
            g = None if feedback is None else feedback.pre[stage]
            if g is not None and stage != self.first:  # at stage k the online update is Eq. 6, made on h
                f = f + self.eta * (g - f)
            features[stage] = f
            out = ada_relu(f, g, straight)
            active = (out > 0).to(out.dtype)
            choice = None
            if self._pooled(stage):
                out, choice = ada_pool(out, None if feedback is None else feedback.pooled[stage])
            latents[stage] = Latents(active, choice, out.shape)
        logits = self._pre_activation(self.readout_stage, out)
        return Pass(logits, features, latents)

    def descend(self, forward: Pass) -> Feedback:
        """The feedback pathway (Eq. 2) from the logits down to h, gated by the pass's latents."""
        pre: dict[int, Tensor] = {}
        pooled: dict[int, Tensor] = {}
        g = forward.logits
        for stage in range(self.readout_stage, self.first, -1):
            gated = g if stage == self.readout_stage else forward.latents[stage].active * g
            down = self._transposed(stage, gated)
            below = stage - 1
            down = down.view(forward.latents[below].output_shape)
            down = ins_norm(down) if down.dim() == 4 else self._linear_norm(down)
            if self._pooled(below):
                pooled[below] = down
                choice = forward.latents[below].pool
                assert choice is not None
                down = unpool(down, choice)
            pre[below] = down
            g = down
        return Feedback(pre, pooled)

    def trace(self, x: Tensor, iterations: int, *, final_feedback: bool = False) -> Trace:
        """Algorithm 1 with the online update: ``iterations`` feedback rounds after the feedforward pass."""
        if iterations < 0:
            raise ValueError(f"timesteps must be non-negative, got {iterations}")
        h = self.encode(x)
        passes = [self.ascend(h, None)]
        feedback: list[Feedback] = []
        checkpointed = self.checkpoint_timesteps and torch.is_grad_enabled()
        for _ in range(iterations):
            if checkpointed:
                h, step, sent = checkpoint(self._iteration, h, passes[-1], use_reentrant=False)
            else:
                h, step, sent = self._iteration(h, passes[-1])
            feedback.append(sent)
            passes.append(step)
        if final_feedback:
            feedback.append(self.descend(passes[-1]))
        return Trace(passes, feedback)

    def _iteration(self, h: Tensor, previous: Pass) -> tuple[Tensor, Pass, Feedback]:
        """One feedback round: the feedback of ``previous``, the updated h (Eq. 6) and the pass from it."""
        sent = self.descend(previous)
        h = h + self.eta * (sent.pre[self.first] - h)  # Eq. 6
        return h, self.ascend(h, sent), sent

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        trace = self.trace(x, timesteps, final_feedback=errors)
        per_layer = None
        if errors:
            clean = trace.passes[0].features
            per_layer = torch.stack([
                torch.stack([(fb.pre[s] - clean[s]).pow(2).flatten(1).mean(1) for s in sorted(clean)])
                for fb in trace.feedback])
        return TimestepOutput(trace.logits, per_layer, None)

    def describe(self) -> dict[str, Any]:
        return {
            "family": "cnnf",
            "eta": self.eta,
            "readouts": ["last", "avg"],
            "gradient_mode": self.gradient_mode,
            "gradient_treatment": GRADIENT_MODES[self.gradient_mode],
            "architecture": self.architecture.to_dict(),
            "feedback": "logits through the transposed layers (tied weights), InsNorm on every map, no bias",
            "reconstruction_errors": "per-sample MSE between the feedback g_t and the t = 0 features, per stage",
            "normalization": self.normalization.describe(),
        }
