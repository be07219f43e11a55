"""CNN-F on a pre-activation WideResNet, as in the paper's CIFAR-10 experiments (the reference's WRN-40-2):
InsNorm + bias + AdaReLU in place of BatchNorm + ReLU, feedback through transposed convolutions tied to the
forward weights, h the output of a block of the first stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcrobust.models import Normalization, TimestepModel, TimestepOutput
from pcrobust_cnnf.layers import ada_relu, ins_norm
from pcrobust_cnnf.network import GRADIENT_MODES


@dataclass(frozen=True)
class WideResNetShape:
    """Depth 6n + 4 (n blocks per stage), widths 16, 16w, 32w, 64w; h is the output of the first ``encode``
    blocks of stage 1 (0: the normalised image itself)."""

    depth: int = 40
    widen: int = 2
    num_classes: int = 10
    in_channels: int = 3
    encode: int = 5

    def __post_init__(self) -> None:
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n ≥ 1, got {self.depth}")
        if not 0 <= self.encode <= self.blocks_per_stage:
            raise ValueError(f"encode must lie in 0..{self.blocks_per_stage}, got {self.encode}")

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 4) // 6

    @property
    def widths(self) -> tuple[int, int, int, int]:
        return 16, 16 * self.widen, 32 * self.widen, 64 * self.widen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _he(generator: torch.Generator, c_out: int, c_in: int, size: int) -> nn.Parameter:
    """He initialisation over the output fan, as the reference code draws its convolutions."""
    std = (2 / (size * size * c_out)) ** 0.5
    return nn.Parameter(torch.randn(c_out, c_in, size, size, generator=generator) * std)


def _transpose(g: Tensor, weight: Tensor, stride: int, padding: int, like: torch.Size) -> Tensor:
    """Wᵀg for a convolution with ``weight``: the transposed convolution back to the input size ``like``."""
    h, w = g.shape[-2:]
    size = weight.shape[-1]
    extra = (like[-2] - ((h - 1) * stride - 2 * padding + size), like[-1] - ((w - 1) * stride - 2 * padding + size))
    return F.conv_transpose2d(g, weight, stride=stride, padding=padding, output_padding=extra)


@dataclass(frozen=True)
class BlockPass:
    """One block's feedforward pass: its input's shape, the pre-activations and active units of both ReLUs."""

    input_shape: torch.Size
    pre: tuple[Tensor, Tensor]
    active: tuple[Tensor, Tensor]


class BasicBlock(nn.Module):
    """Pre-activation residual block: AdaReLU(InsNorm(x) + b₁) → conv → AdaReLU(InsNorm + b₂) → conv, plus x
    (or, where the width changes, a 1×1 convolution of the first activation)."""

    def __init__(self, c_in: int, c_out: int, stride: int, generator: torch.Generator) -> None:
        super().__init__()
        self.stride = stride
        self.bias1 = nn.Parameter(torch.zeros(c_in))
        self.conv1 = _he(generator, c_out, c_in, 3)
        self.bias2 = nn.Parameter(torch.zeros(c_out))
        self.conv2 = _he(generator, c_out, c_out, 3)
        self.shortcut = _he(generator, c_out, c_in, 1) if c_in != c_out else None

    def ascend(self, x: Tensor, feedback: tuple[Tensor, Tensor] | None, eta: float,
               straight: bool) -> tuple[Tensor, BlockPass]:
        """The block on x; with feedback (g at both ReLUs) Eq. 7 blends each pre-activation, Eq. 3 gates it."""
        f1 = ins_norm(x) + self.bias1.view(1, -1, 1, 1)
        f1 = f1 if feedback is None else f1 + eta * (feedback[0] - f1)
        a1 = ada_relu(f1, None if feedback is None else feedback[0], straight)
        f2 = ins_norm(F.conv2d(a1, self.conv1, stride=self.stride, padding=1)) + self.bias2.view(1, -1, 1, 1)
        f2 = f2 if feedback is None else f2 + eta * (feedback[1] - f2)
        a2 = ada_relu(f2, None if feedback is None else feedback[1], straight)
        residual = x if self.shortcut is None else F.conv2d(a1, self.shortcut, stride=self.stride)
        out = residual + F.conv2d(a2, self.conv2, padding=1)
        active = ((a1 > 0).to(x.dtype), (a2 > 0).to(x.dtype))
        return out, BlockPass(x.shape, (f1, f2), active)

    def descend(self, g: Tensor, forward: BlockPass) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The reference's feedback through the block: g at its input, and g at both ReLUs."""
        g2 = ins_norm(_transpose(g, self.conv2, 1, 1, forward.pre[1].shape))
        g1 = ins_norm(_transpose(forward.active[1] * g2, self.conv1, self.stride, 1, forward.input_shape))
        if self.shortcut is not None:
            g1 = g1 + _transpose(g, self.shortcut, self.stride, 0, forward.input_shape)
        below = forward.active[0] * g1
        return (below if self.shortcut is not None else below + g), (g1, g2)


@dataclass(frozen=True)
class WidePass:
    """One feedforward pass from h: logits, the residual stream at h and after each adaptive block, the blocks'
    passes, and the head's pre-activation and active units."""

    logits: Tensor
    stream: list[Tensor]
    blocks: list[BlockPass]
    head: tuple[Tensor, Tensor]


@dataclass(frozen=True)
class WideFeedback:
    """g at h, at the stream after each adaptive block, at both ReLUs of each block, and at the head's ReLU."""

    stream: list[Tensor]
    blocks: list[tuple[Tensor, Tensor]]
    head: Tensor


class WideResNetCNNF(TimestepModel):
    """CNN-F on a WideResNet: t = 0 is the plain pre-activation WRN with ReLU; each iteration feeds the logits
    back through the adaptive blocks to h and updates h and every ReLU above it online with step η."""

    gradient_modes = tuple(GRADIENT_MODES)

    def __init__(self, shape: WideResNetShape, *, eta: float = 0.1, default_timesteps: int = 2,
                 gradient_mode: str = "exact", seed: int = 0) -> None:
        super().__init__()
        if not 0 < eta <= 1:
            raise ValueError(f"eta must lie in (0, 1], got {eta}")
        self.shape, self.eta, self.seed = shape, eta, seed
        self.num_classes = shape.num_classes
        self.default_timesteps = default_timesteps
        self.set_gradient_mode(gradient_mode)
        self.normalization = Normalization([0.5] * shape.in_channels, [0.5] * shape.in_channels)
        generator = torch.Generator().manual_seed(seed)
        widths = shape.widths
        self.stem = _he(generator, widths[0], shape.in_channels, 3)
        blocks = []
        for stage in range(3):
            for i in range(shape.blocks_per_stage):
                c_in = widths[stage] if i == 0 else widths[stage + 1]
                blocks.append(BasicBlock(c_in, widths[stage + 1], 2 if stage and i == 0 else 1, generator))
        self.blocks = nn.ModuleList(blocks)
        self.head_bias = nn.Parameter(torch.zeros(widths[3]))
        self.fc = nn.Linear(widths[3], shape.num_classes)
        with torch.no_grad():
            bound = widths[3] ** -0.5
            self.fc.weight.copy_(torch.rand(self.fc.weight.shape, generator=generator) * 2 * bound - bound)
            self.fc.bias.zero_()

    def _block(self, index: int) -> BasicBlock:
        block = self.blocks[index]
        assert isinstance(block, BasicBlock)
        return block

    def encode(self, x: Tensor) -> Tensor:
        """h_0: the normalised image, or the stem and the first ``encode`` blocks with plain ReLU."""
        out = self.normalization(x)
        if self.shape.encode == 0:
            return out
        out = F.conv2d(out, self.stem, padding=1)
        for index in range(self.shape.encode):
            out, _ = self._block(index).ascend(out, None, self.eta, False)
        return out

    def ascend(self, h: Tensor, feedback: WideFeedback | None) -> WidePass:
        straight = self.gradient_mode == "bpda"
        out = F.conv2d(h, self.stem, padding=1) if self.shape.encode == 0 else h
        stream, passes = [h], []
        for index in range(self.shape.encode, len(self.blocks)):
            g = None if feedback is None else feedback.blocks[index - self.shape.encode]
            out, block_pass = self._block(index).ascend(out, g, self.eta, straight)
            stream.append(out)
            passes.append(block_pass)
        f = ins_norm(out) + self.head_bias.view(1, -1, 1, 1)
        f = f if feedback is None else f + self.eta * (feedback.head - f)
        top = ada_relu(f, None if feedback is None else feedback.head, straight)
        logits = self.fc(top.mean((2, 3)))
        return WidePass(logits, stream, passes, (f, (top > 0).to(top.dtype)))

    def descend(self, forward: WidePass) -> WideFeedback:
        """Eq. 2 from the logits: Wᵀ of the read-out, the global pool's upsampling, InsNorm, the head's gate,
        then each adaptive block's transposed pathway down to h (through the stem's when h is the image)."""
        pre, active = forward.head
        head = ins_norm((forward.logits @ self.fc.weight)[:, :, None, None].expand_as(pre))
        g = active * head
        stream, blocks = [g], []
        for offset in range(len(forward.blocks) - 1, -1, -1):
            g, at_relus = self._block(self.shape.encode + offset).descend(g, forward.blocks[offset])
            stream.append(g)
            blocks.append(at_relus)
        if self.shape.encode == 0:
            stream[-1] = _transpose(g, self.stem, 1, 1, forward.stream[0].shape)
        return WideFeedback(stream[::-1], blocks[::-1], head)

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        if timesteps < 0:
            raise ValueError(f"timesteps must be non-negative, got {timesteps}")
        h = self.encode(x)
        passes = [self.ascend(h, None)]
        feedback: list[WideFeedback] = []
        for t in range(timesteps + int(errors)):
            feedback.append(self.descend(passes[-1]))
            if t == timesteps:
                break
            h = h + self.eta * (feedback[-1].stream[0] - h)  # Eq. 6
            passes.append(self.ascend(h, feedback[-1]))
        logits = torch.stack([p.logits for p in passes])
        per_layer = None
        if errors:
            clean = passes[0].stream
            per_layer = torch.stack([torch.stack([(g - f).pow(2).flatten(1).mean(1) for g, f in zip(fb.stream, clean,
                                                                                                  strict=True)])
                                     for fb in feedback])
        return TimestepOutput(logits, per_layer, None)

    def describe(self) -> dict[str, Any]:
        return {
            "family": "cnnf",
            "eta": self.eta,
            "readouts": ["last", "avg"],
            "gradient_mode": self.gradient_mode,
            "gradient_treatment": GRADIENT_MODES[self.gradient_mode],
            "architecture": {"kind": "wide-resnet", **self.shape.to_dict()},
            "initialisation_seed": self.seed,
            "feedback": "logits through the transposed read-out, the pool's upsampling and each adaptive block's "
                        "transposed convolutions (tied weights), InsNorm as in the reference, no bias",
            "reconstruction_errors": "per-sample MSE between the feedback and the t = 0 residual stream at h and "
                                     "after each adaptive block",
            "normalization": self.normalization.describe(),
        }
