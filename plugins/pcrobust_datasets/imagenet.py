"""``foolbox-imagenet``: the 20 labelled ImageNet validation images that ship with ``foolbox``, at 224 × 224."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pcrobust.datasets import LabeledImages, sha256_of
from pcrobust.errors import PcrobustError
from pcrobust_datasets.folders import Preprocessing, read_image_folder

if TYPE_CHECKING:
    from PIL import Image

NAME = "foolbox-imagenet"
WNIDS_FILE = "imagenet_wnids.txt"
SPLITS = ("test",)
SIZE = 224


def foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        raise PcrobustError(f"the {NAME!r} images ship with the 'foolbox' package (pip install foolbox)")
    return Path(spec.origin).parent / "data"


def _fit_center_crop(image: Image.Image, resample: Image.Resampling) -> Image.Image:
    """Shorter side to 224, then the central 224 × 224 crop."""
    scale = SIZE / min(image.size)
    width, height = max(SIZE, round(image.size[0] * scale)), max(SIZE, round(image.size[1] * scale))
    left, top = (width - SIZE) // 2, (height - SIZE) // 2
    return image.resize((width, height), resample).crop((left, top, left + SIZE, top + SIZE))


PREPROCESSING = Preprocessing("RGB", _fit_center_crop)  # RGB, bilinear, shorter side to 224, centre crop


def load_foolbox_imagenet(split: str) -> LabeledImages:
    """The images (label = last number of the file name), shorter side resized to 224 and centre-cropped."""
    if split not in SPLITS:
        raise PcrobustError(f"unknown split {split!r} of {NAME}; available: {', '.join(SPLITS)}")
    paths = sorted(foolbox_data_dir().glob("imagenet_*_*.jpg"))
    if not paths:
        raise PcrobustError("foolbox is installed but holds no imagenet_*.jpg samples")
    pixels = np.stack([PREPROCESSING.image(p) for p in paths])
    labels = torch.tensor([int(p.stem.rsplit("_", 1)[1]) for p in paths])
    digest = hashlib.sha256(b"".join(bytes.fromhex(sha256_of(p)) for p in paths)).hexdigest()
    return LabeledImages(NAME, split, torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                         labels, 1000, "foolbox data/imagenet_*.jpg (real ImageNet validation images)", digest)


@lru_cache(maxsize=1)
def wordnet_ids() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 classes' WordNet IDs in index order (sorted, as the class indices are)."""
    return tuple(files("pcrobust_datasets").joinpath(WNIDS_FILE).read_text().split())


def read_imagenet_folder(root: Path, masks: Path | None = None) -> LabeledImages:
    """A user's ImageNet images (class folders named by WordNet ID or index, or flat with labels.txt),
    preprocessed as the bundled ones: shorter side to 224, centre crop, RGB; with ``masks``, a folder of their
    segmentation masks."""
    return read_image_folder(root, wordnet_ids(), PREPROCESSING, NAME, masks)
