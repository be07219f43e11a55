"""Released checkpoints of the reference CNN-F code (Huang et al. 2020): its state-dict layout mapped onto this
package's networks, with every key and shape checked and the file loaded with ``weights_only=True``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from pcrobust.errors import PcrobustError
from pcrobust.weights import load_tensors
from pcrobust_cnnf.network import Architecture
from pcrobust_cnnf.wide_resnet import WideResNetShape


@dataclass(frozen=True)
class ReferenceKey:
    """One entry of the reference state dict: its shape there, and the state key here (``None`` for the tied
    feedback copies, which must be present with their shape but are not read: here the feedback uses the
    forward weights themselves)."""

    name: str
    shape: tuple[int, ...]
    target: str | None


def fmnist_layout(arch: Architecture) -> list[ReferenceKey]:
    """The reference ``CNNF`` of ``model_mnist.py``: ``conv{i}`` with its transposed twin and ``ins{i}_bias``,
    then ``fc{j}`` with ``linear_t`` and ``fc{j}_bias``, numbered from 1."""
    keys: list[ReferenceKey] = []
    widths = (arch.in_channels, *arch.channels)
    size = arch.kernel_size
    for i, (c_in, c_out) in enumerate(zip(widths, widths[1:], strict=False)):
        weight = (c_out, c_in, size, size)
        keys += [ReferenceKey(f"conv{i + 1}.conv.weight", weight, f"conv_weights.{i}"),
                 ReferenceKey(f"conv{i + 1}.conv_t.weight", weight, None),
                 ReferenceKey(f"ins{i + 1}_bias.bias", (1, c_out, 1, 1), f"conv_biases.{i}")]
    sizes = (arch.channels[-1] * arch.conv_output_size ** 2, *arch.hidden, arch.num_classes)
    for j, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        keys += [ReferenceKey(f"fc{j + 1}.linear.weight", (n_out, n_in), f"linears.{j}.weight"),
                 ReferenceKey(f"fc{j + 1}.linear_t.weight", (n_in, n_out), None),
                 ReferenceKey(f"fc{j + 1}_bias.bias", (1, n_out), f"linears.{j}.bias")]
    return keys


def _conv(name: str, shape: tuple[int, ...], target: str) -> list[ReferenceKey]:
    return [ReferenceKey(f"{name}.conv.weight", shape, target), ReferenceKey(f"{name}.conv_t.weight", shape, None)]


def wide_resnet_layout(shape: WideResNetShape) -> list[ReferenceKey]:
    """The reference ``WideResNet`` of ``model_cifar.py``: ``conv1``, ``block{s}.layer.{i}`` (``ins1_bias``,
    ``conv1``, ``ins2_bias``, ``conv2``, ``conv_shortcut`` where the width changes), ``ins1_bias``, ``fc``,
    ``fc_bias``."""
    widths = shape.widths
    keys = _conv("conv1", (widths[0], shape.in_channels, 3, 3), "stem")
    index = 0
    for stage in range(3):
        for i in range(shape.blocks_per_stage):
            c_in, c_out = (widths[stage] if i == 0 else widths[stage + 1]), widths[stage + 1]
            name, ours = f"block{stage + 1}.layer.{i}", f"blocks.{index}"
            keys += [ReferenceKey(f"{name}.ins1_bias.bias", (1, c_in, 1, 1), f"{ours}.bias1"),
                     *_conv(f"{name}.conv1", (c_out, c_in, 3, 3), f"{ours}.conv1"),
                     ReferenceKey(f"{name}.ins2_bias.bias", (1, c_out, 1, 1), f"{ours}.bias2"),
                     *_conv(f"{name}.conv2", (c_out, c_out, 3, 3), f"{ours}.conv2")]
            if c_in != c_out:
                keys += _conv(f"{name}.conv_shortcut", (c_out, c_in, 1, 1), f"{ours}.shortcut")
            index += 1
    return keys + [ReferenceKey("ins1_bias.bias", (1, widths[3], 1, 1), "head_bias"),
                   ReferenceKey("fc.linear.weight", (shape.num_classes, widths[3]), "fc.weight"),
                   ReferenceKey("fc.linear_t.weight", (widths[3], shape.num_classes), None),
                   ReferenceKey("fc_bias.bias", (1, shape.num_classes), "fc.bias")]


def map_reference_state(state: object, layout: list[ReferenceKey], source: str) -> dict[str, Tensor]:
    """The state dict of this package's network from a reference one; the first missing, unexpected or
    misshapen key is a one-line :class:`PcrobustError`."""
    if isinstance(state, dict) and "format" in state:
        raise PcrobustError(f"{source} is a pcrobust checkpoint, not a reference one: pass it with --weights")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PcrobustError(f"{source} is not a state dict of tensors (the reference code saves model.state_dict())")
    expected = {key.name for key in layout}
    unexpected = [name for name in state if name not in expected]
    if unexpected:
        raise PcrobustError(f"{source} has key {unexpected[0]!r}, which the reference layout does not")
    mapped: dict[str, Tensor] = {}
    for key in layout:
        if key.name not in state:
            raise PcrobustError(f"{source} lacks key {key.name!r} of the reference layout")
        tensor = state[key.name]
        if tuple(tensor.shape) != key.shape:
            raise PcrobustError(f"{source}: key {key.name!r} has shape {list(tensor.shape)}, the architecture "
                                f"needs {list(key.shape)}")
        if key.target is not None:
            mapped[key.target] = tensor
    return mapped


def load_reference(net: nn.Module, path: Path, layout: list[ReferenceKey]) -> None:
    """Load a released reference checkpoint (``torch.save(model.state_dict())``) into ``net``."""
    state = load_tensors(path, "reference checkpoint")
    mapped = map_reference_state(state, layout, f"reference checkpoint {path}")
    own = net.state_dict()
    with torch.no_grad():
        net.load_state_dict({name: mapped[name].reshape(own[name].shape).to(own[name].dtype) for name in own})
