"""``cifar10``: CIFAR-10's classes and preprocessing for a user's own images (``--data DIR``); no images ship."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pcrobust.datasets import LabeledImages
from pcrobust.errors import PcrobustError
from pcrobust_datasets.folders import read_image_folder

NAME = "cifar10"
SPLITS = ("test",)
SIZE = 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(split: str) -> LabeledImages:
    raise PcrobustError(f"{NAME!r} ships no images: pass --data DIR, class folders named {CLASSES[0]} … "
                        f"{CLASSES[-1]} (or 0 … 9), or flat with labels.txt")


def _rgb_32(path: Path) -> np.ndarray:
    """An image as CIFAR-10 holds it: RGB, 32 × 32 (bilinear resize when the file is another size), in [0, 1]."""
    from PIL import Image

    with Image.open(path) as original:
        rgb = original.convert("RGB")
    if rgb.size != (SIZE, SIZE):
        rgb = rgb.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def read_cifar_folder(root: Path) -> LabeledImages:
    """A user's CIFAR-10 images (class folders by name or index, or flat with labels.txt), 32 × 32 RGB."""
    return read_image_folder(root, CLASSES, _rgb_32, NAME)
