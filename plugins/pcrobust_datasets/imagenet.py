"""``foolbox-imagenet``: the 20 labelled ImageNet validation images that ship with ``foolbox``, at 224 × 224."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from pcrobust.datasets import LabeledImages, sha256_of
from pcrobust.errors import PcrobustError
from pcrobust_datasets.folders import read_image_folder

NAME = "foolbox-imagenet"
WNIDS_FILE = "imagenet_wnids.txt"
SPLITS = ("test",)
SIZE = 224


def foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        raise PcrobustError(f"the {NAME!r} images ship with the 'foolbox' package (pip install foolbox)")
    return Path(spec.origin).parent / "data"


def _resize_center_crop(path: Path, size: int) -> np.ndarray:
    """Shorter side to ``size`` (bilinear), then the central ``size × size`` crop, as RGB in [0, 1]."""
    from PIL import Image

    with Image.open(path) as original:
        rgb = original.convert("RGB")
    scale = size / min(rgb.size)
    width, height = max(size, round(rgb.size[0] * scale)), max(size, round(rgb.size[1] * scale))
    resized = rgb.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0


def load_foolbox_imagenet(split: str) -> LabeledImages:
    """The images (label = last number of the file name), shorter side resized to 224 and centre-cropped."""
    if split not in SPLITS:
        raise PcrobustError(f"unknown split {split!r} of {NAME}; available: {', '.join(SPLITS)}")
    paths = sorted(foolbox_data_dir().glob("imagenet_*_*.jpg"))
    if not paths:
        raise PcrobustError("foolbox is installed but holds no imagenet_*.jpg samples")
    pixels = np.stack([_resize_center_crop(p, SIZE) for p in paths])
    labels = torch.tensor([int(p.stem.rsplit("_", 1)[1]) for p in paths])
    digest = hashlib.sha256(b"".join(bytes.fromhex(sha256_of(p)) for p in paths)).hexdigest()
    return LabeledImages(NAME, split, torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                         labels, 1000, "foolbox data/imagenet_*.jpg (real ImageNet validation images)", digest)


@lru_cache(maxsize=1)
def wordnet_ids() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 classes' WordNet IDs in index order (sorted, as the class indices are)."""
    return tuple(files("pcrobust_datasets").joinpath(WNIDS_FILE).read_text().split())


def read_imagenet_folder(root: Path) -> LabeledImages:
    """A user's ImageNet images (class folders named by WordNet ID or index, or flat with labels.txt),
    preprocessed as the bundled ones: shorter side to 224, centre crop, RGB."""
    return read_image_folder(root, wordnet_ids(), lambda path: _resize_center_crop(path, SIZE), NAME)
