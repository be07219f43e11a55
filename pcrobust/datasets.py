"""The dataset contract: labelled image sets in [0, 1] that dataset entries load (optionally with segmentation
masks), and file checksums."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


@dataclass(frozen=True)
class LabeledImages:
    """Images ``[N, C, H, W]`` in [0, 1] (float32), integer labels, and where they came from.

    ``masks``, when a dataset has them, are boolean ``[N, H, W]`` segmentation masks: True on the pixels of the
    labelled object (sections that compare maps with the object, such as ``gradcam``, use them)."""

    name: str
    split: str
    images: Tensor
    labels: Tensor
    num_classes: int
    source: str
    sha256: str
    masks: Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError("images and labels differ in length")
        if self.masks is not None:
            expected = (self.images.shape[0], *self.images.shape[2:])
            if self.masks.dtype != torch.bool or tuple(self.masks.shape) != expected:
                raise ValueError(f"masks must be boolean {list(expected)} (one [H, W] mask per image), got "
                                 f"{self.masks.dtype} {list(self.masks.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "split": self.split, "size": len(self), "source": self.source,
                "sha256": self.sha256, "image_shape": list(self.images.shape[1:]), "masks": self.masks is not None}


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
