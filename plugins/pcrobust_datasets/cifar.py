"""``cifar10``: CIFAR-10's classes and preprocessing for a user's own images (``--data DIR``); no images ship."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pcrobust.datasets import LabeledImages
from pcrobust.errors import PcrobustError
from pcrobust_datasets.folders import Preprocessing, read_image_folder

if TYPE_CHECKING:
    from PIL import Image

NAME = "cifar10"
SPLITS = ("test",)
SIZE = 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(split: str) -> LabeledImages:
    raise PcrobustError(f"{NAME!r} ships no images: pass --data DIR, class folders named {CLASSES[0]} … "
                        f"{CLASSES[-1]} (or 0 … 9), or flat with labels.txt")


def _fit_32(image: Image.Image, resample: Image.Resampling) -> Image.Image:
    """An image at CIFAR-10's 32 × 32 (resized when the file is another size)."""
    return image if image.size == (SIZE, SIZE) else image.resize((SIZE, SIZE), resample)


FOLDER_PREPROCESSING = Preprocessing("RGB", _fit_32)  # RGB, 32 × 32, in [0, 1]


def read_cifar_folder(root: Path, masks: Path | None = None) -> LabeledImages:
    """A user's CIFAR-10 images (class folders by name or index, or flat with labels.txt), 32 × 32 RGB; with
    ``masks``, a folder of their segmentation masks."""
    return read_image_folder(root, CLASSES, FOLDER_PREPROCESSING, NAME, masks)
