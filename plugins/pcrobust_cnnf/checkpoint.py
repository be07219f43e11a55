"""CNN-F checkpoints: the architecture and the weights, loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcrobust.errors import PcrobustError, first_line
from pcrobust.weights import load_format, save_tensors
from pcrobust_cnnf.network import CNNF, Architecture

FORMAT = "pcrobust-cnnf/1"


def save_checkpoint(net: CNNF, path: Path, metadata: dict[str, Any]) -> Path:
    return save_tensors({"format": FORMAT, "architecture": net.architecture.to_dict(), "state": net.state_dict(),
                         "metadata": metadata}, path)


def load_checkpoint(net: CNNF, path: Path) -> dict[str, Any]:
    """Load weights into ``net`` (whose architecture must match the file's); returns the metadata."""
    blob = load_format(path, FORMAT)
    try:
        architecture = Architecture.from_dict(dict(blob.get("architecture", {})))
    except (TypeError, ValueError) as exc:
        raise PcrobustError(f"checkpoint {path} names an unusable architecture: {first_line(exc)}") from None
    if architecture != net.architecture:
        raise PcrobustError(f"checkpoint {path} was trained for another architecture: {blob.get('architecture')}")
    try:
        net.load_state_dict(blob["state"])
    except RuntimeError as exc:
        raise PcrobustError(f"checkpoint {path} does not fit this network: {first_line(exc)}") from None
    return dict(blob.get("metadata", {}))
