"""Pre-rendered corrupted images from disk, in the two layouts the benchmarks are published in.

- **ImageNet-C folders**: ``DIR/<corruption>/<severity>/<class>/<image>``; each ``<corruption>/<severity>``
  folder is read by the dataset's own folder reader (as ``--data DIR`` is: class folders named as the dataset
  names its classes, e.g. WordNet IDs, and its preprocessing);
- **CIFAR-10-C arrays**: ``DIR/<corruption>.npy``, uint8 ``[5·N, H, W, C]`` (or ``[5·N, H, W]``), severities
  1..5 stacked, and ``DIR/labels.npy`` (``[5·N]`` or ``[N]``).

Image ``i`` of every corruption and severity (the ``i``-th image the reader lists, or row ``i`` of a severity's
block) is the dataset's image ``i``: the same count and the same labels, checked, so a corrupted image is scored
beside its own clean one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pcrobust.corrupt import LUMA
from pcrobust.datasets import LabeledImages
from pcrobust.errors import PcrobustError, first_line

SEVERITIES = 5
LABELS_FILE = "labels.npy"
FOLDERS = "imagenet-c folders"
ARRAYS = "cifar-10-c arrays"
ReadFolder = Callable[[Path], LabeledImages]


def layout_of(root: Path) -> str:
    """Which layout ``root`` holds: arrays when it has ``labels.npy``, else folders."""
    if not root.is_dir():
        raise PcrobustError(f"corrupted data {root} does not exist or is not a folder")
    return ARRAYS if (root / LABELS_FILE).is_file() else FOLDERS


def _label_mismatch(where: str, found: np.ndarray, expected: np.ndarray) -> PcrobustError:
    first = int(np.flatnonzero(found != expected)[0])
    return PcrobustError(f"{where}: labels do not match the dataset's (image {first}: {int(found[first])}, the "
                         f"dataset has {int(expected[first])}); image i must be the dataset's image i")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PcrobustError(f"{path} cannot be read as a .npy array: {first_line(exc)}") from None


@dataclass(frozen=True)
class Rendered:
    """A folder of pre-rendered corruptions for ``data`` (its clean images, in dataset order)."""

    root: Path
    layout: str
    data: LabeledImages
    read_folder: ReadFolder | None

    def check(self, names: Sequence[str], severities: Sequence[int]) -> None:
        """Every named corruption and severity is present; arrays are also checked for shape and labels."""
        for name in names:
            if self.layout == ARRAYS:
                self._array(name)
                continue
            if self.read_folder is None:
                raise PcrobustError(f"dataset {self.data.name!r} has no folder reader, so {self.root} can only "
                                    f"hold .npy arrays (with {LABELS_FILE})")
            for severity in severities:
                folder = self.root / name / str(severity)
                if not folder.is_dir():
                    raise PcrobustError(f"corrupted data {self.root} has no folder {name}/{severity} "
                                        f"(corruption {name!r}, severity {severity} is missing)")

    def _array(self, name: str) -> np.ndarray:
        path = self.root / f"{name}.npy"
        if not path.is_file():
            raise PcrobustError(f"corrupted data {self.root} has no {name}.npy (corruption {name!r} is missing)")
        array = _load_npy(path)
        n, (channels, height, width) = len(self.data), self.data.images.shape[1:]
        shapes: list[tuple[int, ...]] = [(SEVERITIES * n, height, width, c) for c in sorted({channels, 3})]
        if channels == 1:
            shapes.append((SEVERITIES * n, height, width))
        if array.dtype != np.uint8 or tuple(array.shape) not in shapes:
            raise PcrobustError(f"{path}: expected uint8 {list(shapes[0])} ({SEVERITIES} severities × the "
                                f"dataset's {n} images), got {array.dtype} {list(array.shape)}")
        labels = _load_npy(self.root / LABELS_FILE)
        expected = self.data.labels.numpy()
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) not in (n, SEVERITIES * n):
            raise PcrobustError(f"{self.root / LABELS_FILE}: expected integer labels of length {n} or "
                                f"{SEVERITIES * n}, got {labels.dtype} {list(labels.shape)}")
        blocks = np.asarray(labels).reshape(-1, n)
        for block in blocks:
            if not np.array_equal(block, expected):
                raise _label_mismatch(str(self.root / LABELS_FILE), block, expected)
        return array

    def images(self, name: str, severity: int, indices: Sequence[int]) -> tuple[Tensor, str]:
        """The stored images of dataset ``indices`` at (``name``, ``severity``) as ``[n, C, H, W]`` in [0, 1],
        and the sha256 of their pixels."""
        if self.layout == ARRAYS:
            rows = self._array(name)[[(severity - 1) * len(self.data) + int(i) for i in indices]]
            pixels = torch.from_numpy(np.ascontiguousarray(rows)).float() / 255.0
            if pixels.ndim == 3:
                pixels = pixels[..., None]
            pixels = pixels.permute(0, 3, 1, 2)
            if self.data.images.shape[1] == 1 and pixels.shape[1] == 3:
                pixels = torch.einsum("nchw,c->nhw", pixels, torch.tensor(LUMA))[:, None]
        else:
            assert self.read_folder is not None
            pixels = _stored_folder(self.read_folder, self.root / name / str(severity), self.data)[list(indices)]
        pixels = pixels.contiguous()
        return pixels, hashlib.sha256(pixels.numpy().tobytes()).hexdigest()


@lru_cache(maxsize=1)
def _stored_folder(read_folder: ReadFolder, folder: Path, data: LabeledImages) -> Tensor:
    """One ``<corruption>/<severity>`` folder read by the dataset's reader, checked against ``data``."""
    stored = read_folder(folder)
    if len(stored) != len(data):
        raise PcrobustError(f"{folder} holds {len(stored)} images, the dataset {len(data)}; image i must be the "
                            "dataset's image i")
    if stored.images.shape[1:] != data.images.shape[1:]:
        raise PcrobustError(f"{folder}: images decode to {list(stored.images.shape[1:])}, the dataset's are "
                            f"{list(data.images.shape[1:])}")
    if not torch.equal(stored.labels, data.labels):
        raise _label_mismatch(str(folder), stored.labels.numpy(), data.labels.numpy())
    return stored.images


def open_rendered(root: Path, data: LabeledImages, read_folder: ReadFolder | None) -> Rendered:
    """The pre-rendered corruptions in ``root`` for ``data``, read by ``read_folder`` when they are folders."""
    root = Path(root)
    return Rendered(root, layout_of(root), data, read_folder)
