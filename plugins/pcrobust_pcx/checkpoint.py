"""Checkpoints of the PC-trained family: architecture, weights, optimiser state and what made them, loaded with
``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcrobust.errors import PcrobustError, first_line
from pcrobust.weights import load_format, save_tensors
from pcrobust_pcx.network import Architecture, Inference, PCClassifier

FORMAT = "pcrobust-pcx/1"


def save_checkpoint(net: PCClassifier, path: Path, metadata: dict[str, Any], optimizer: dict[str, Any] | None
                    ) -> Path:
    """Architecture, weights and metadata, and the optimiser state of an unfinished training when given."""
    blob = {"format": FORMAT, "architecture": net.architecture.to_dict(), "state": net.state_dict(),
            "metadata": metadata}
    return save_tensors({**blob, "optimizer": optimizer} if optimizer is not None else blob, path)


def read_checkpoint(path: Path, net: PCClassifier) -> dict[str, Any]:
    """Load ``path``'s weights into ``net`` (whose architecture must match); returns the whole file."""
    blob = load_format(path, FORMAT)
    if blob.get("architecture") != net.architecture.to_dict():
        raise PcrobustError(f"checkpoint {path} was trained for another architecture: {blob.get('architecture')}")
    try:
        net.load_state_dict(blob["state"])
    except (RuntimeError, KeyError) as exc:
        raise PcrobustError(f"checkpoint {path} does not fit this network: {first_line(exc)}") from None
    return blob


def load_classifier(path: Path, inference: Inference, timesteps: int) -> PCClassifier:
    """The network ``path`` describes, with its weights, in eval mode."""
    blob = load_format(path, FORMAT)
    try:
        architecture = Architecture.from_dict(blob["architecture"])
    except (KeyError, TypeError, ValueError, IndexError):
        raise PcrobustError(f"checkpoint {path} holds no readable architecture") from None
    net = PCClassifier(architecture, inference, timesteps)
    read_checkpoint(path, net)
    return net.eval()
