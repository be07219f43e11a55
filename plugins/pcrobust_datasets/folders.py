"""A user's own images from a folder (``--data DIR``), in one of two layouts, with one line for each problem.

- **class folders**: ``DIR/<class>/<image>``, the class named as the dataset names it (a WordNet ID for
  ImageNet, a digit for MNIST) or by its index;
- **flat**: ``DIR/<image>`` and ``DIR/labels.txt``, one ``<file name> <class>`` per line (name or index).

Images are decoded and preprocessed by the dataset (size, channels); a file that is not a readable image,
is truncated, or is listed but missing stops the load with its name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pcrobust.datasets import LabeledImages, sha256_of
from pcrobust.errors import PcrobustError, first_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LABELS_FILE = "labels.txt"

Decode = Callable[[Path], np.ndarray]
"""A file's pixels as ``[H, W, C]`` float32 in [0, 1], preprocessed for the dataset's models."""


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _class_index(name: str, classes: Sequence[str], where: str) -> int:
    if name in classes:
        return classes.index(name)
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    examples = ", ".join(classes[:3])
    raise PcrobustError(f"{where}: unknown class {name!r}; classes are named {examples}, ... or by their index "
                        f"0..{len(classes) - 1}")


def _class_folders(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    found: list[tuple[Path, int]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = _class_index(folder.name, classes, f"class folder {folder}")
        found.extend((image, label) for image in sorted(folder.iterdir()) if _is_image(image))
    return found


def _flat(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    listing = root / LABELS_FILE
    found = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        where = f"{listing} line {number}"
        if len(parts) != 2:
            raise PcrobustError(f"{where}: expected '<file name> <class>', got {line.strip()!r}")
        image = root / parts[0]
        if not image.is_file():
            raise PcrobustError(f"{where}: {image} does not exist")
        found.append((image, _class_index(parts[1], classes, where)))
    return found


def _decoded(path: Path, decode: Decode) -> np.ndarray:
    try:
        return decode(path)
    except Exception as exc:  # PIL raises several types for unreadable and truncated files
        raise PcrobustError(f"image {path} cannot be read (not an image, or truncated): {first_line(exc)}") from None


def read_image_folder(root: Path, classes: Sequence[str], decode: Decode, name: str) -> LabeledImages:
    """The labelled images in ``root`` (class folders, or flat with ``labels.txt``), decoded by ``decode``."""
    root = Path(root)
    if not root.exists():
        raise PcrobustError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise PcrobustError(f"data folder {root} is not a folder")
    entries = _flat(root, classes) if (root / LABELS_FILE).is_file() else _class_folders(root, classes)
    if not entries:
        loose = any(_is_image(p) for p in root.iterdir())
        raise PcrobustError(f"data folder {root} holds no images"
                            + (f" in class folders (loose images need a {LABELS_FILE})" if loose else ""))
    pixels = [_decoded(path, decode) for path, _ in entries]
    shapes = {p.shape for p in pixels}
    if len(shapes) > 1:
        raise PcrobustError(f"images in {root} decode to different shapes {sorted(shapes)[:2]}")
    digest = hashlib.sha256(b"".join(bytes.fromhex(sha256_of(path)) for path, _ in entries)).hexdigest()
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in entries])
    return LabeledImages(name, "folder", images, labels, len(classes), f"folder {root}", digest)
