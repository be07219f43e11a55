"""Predify checkpoints: backbone and feedback weights, loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcrobust.errors import PcrobustError, first_line
from pcrobust.weights import load_format, save_tensors
from pcrobust_predify.network import PredifyNet

FORMAT = "pcrobust-predify/1"


def save_checkpoint(net: PredifyNet, path: Path, metadata: dict[str, Any]) -> Path:
    return save_tensors({"format": FORMAT, "backbone": net.backbone.state_dict(),
                         "feedback": net.pcoders.state_dict(), "metadata": metadata}, path)


def load_checkpoint(net: PredifyNet, path: Path) -> dict[str, Any]:
    """Load weights into ``net``; returns the checkpoint's metadata. Hyperparameters are not stored."""
    blob = load_format(path, FORMAT)
    try:
        net.backbone.load_state_dict(blob["backbone"])
        net.pcoders.load_state_dict(blob["feedback"])
    except RuntimeError as exc:
        raise PcrobustError(f"checkpoint {path} does not fit this network: {first_line(exc)}") from None
    return dict(blob.get("metadata", {}))


FEEDBACK_FORMAT = "pcrobust-predify-feedback/1"


def save_feedback(net: PredifyNet, path: Path, metadata: dict[str, Any]) -> Path:
    """Only the predictors' weights: for a backbone whose weights ship elsewhere."""
    return save_tensors({"format": FEEDBACK_FORMAT, "feedback": net.pcoders.state_dict(), "metadata": metadata},
                        path)


def load_feedback(net: PredifyNet, path: Path) -> dict[str, Any]:
    """Load a :func:`save_feedback` file into ``net``'s predictors; returns its metadata."""
    blob = load_format(path, FEEDBACK_FORMAT, "feedback checkpoint")
    try:
        net.pcoders.load_state_dict(blob["feedback"])
    except RuntimeError as exc:
        raise PcrobustError(f"feedback checkpoint {path} does not fit this network: {first_line(exc)}") from None
    return dict(blob.get("metadata", {}))
