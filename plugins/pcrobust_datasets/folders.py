"""A user's own images from a folder (``--data DIR``), in one of two layouts, with one line for each problem.

- **class folders**: ``DIR/<class>/<image>``, the class named as the dataset names it (a WordNet ID for
  ImageNet, a digit for MNIST) or by its index;
- **flat**: ``DIR/<image>`` and ``DIR/labels.txt``, one ``<file name> <class>`` per line (name or index).

Images are decoded and preprocessed by the dataset (size, channels); a file that is not a readable image,
is truncated, or is listed but missing stops the load with its name.

Segmentation masks (``--masks DIR``) mirror the images: one mask image per image at the same relative path and
stem (any image suffix), the size of its image, nonzero (in any channel) on the object. Each is resized and
cropped as its image is, with nearest-neighbour resampling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pcrobust.datasets import LabeledImages, sha256_of
from pcrobust.errors import PcrobustError, first_line

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LABELS_FILE = "labels.txt"

Fit = Callable[["Image.Image", "Image.Resampling"], "Image.Image"]
"""The dataset's geometry: an image resized (and cropped) to the models' input size with the given filter."""
MASK_MODES = ("1", "L", "I", "I;16", "F")  # single-channel modes read as they are; others as RGB


@dataclass(frozen=True)
class Preprocessing:
    """How a dataset turns files into model inputs: the pixel ``mode`` (``"L"``, ``"RGB"``) and its ``fit``."""

    mode: str
    fit: Fit

    def image(self, path: Path) -> np.ndarray:
        """The file's pixels as ``[H, W, C]`` float32 in [0, 1] (bilinear resampling)."""
        from PIL import Image

        with Image.open(path) as original:
            converted = original.convert(self.mode)
        pixels = np.asarray(self.fit(converted, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        return pixels if pixels.ndim == 3 else pixels[:, :, None]

    def mask(self, path: Path, size: tuple[int, int]) -> np.ndarray:
        """The mask file as boolean ``[H, W]`` (nonzero: object), fitted as an image of ``size`` (nearest)."""
        from PIL import Image

        with Image.open(path) as original:
            if original.size != size:
                raise PcrobustError(f"mask {path} is {original.size[0]}×{original.size[1]} but its image is "
                                    f"{size[0]}×{size[1]}")
            pixels = np.asarray(original if original.mode in MASK_MODES else original.convert("RGB"))
        nonzero = pixels != 0 if pixels.ndim == 2 else (pixels != 0).any(2)
        fitted = self.fit(Image.fromarray(nonzero.astype(np.uint8) * 255, "L"), Image.Resampling.NEAREST)
        return np.asarray(fitted) > 0


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


def _decoded(path: Path, preprocessing: Preprocessing) -> np.ndarray:
    try:
        return preprocessing.image(path)
    except Exception as exc:  # PIL raises several types for unreadable and truncated files
        raise PcrobustError(f"image {path} cannot be read (not an image, or truncated): {first_line(exc)}") from None


def mask_file(image: Path, root: Path, masks: Path) -> Path:
    """The mask of ``image`` (a file under ``root``): same relative path and stem under ``masks``, any suffix."""
    relative = image.relative_to(root)
    folder = masks / relative.parent
    exact = folder / relative.name
    if _is_image(exact):
        return exact
    found = sorted(p for p in folder.glob(f"{relative.stem}.*") if _is_image(p)) if folder.is_dir() else []
    if len(found) != 1:
        problem = "is missing" if not found else f"is ambiguous ({found[0].name}, {found[1].name})"
        raise PcrobustError(f"the mask of image {image} {problem}: expected {folder / relative.stem}.<image suffix>")
    return found[0]


def _mask(image: Path, mask: Path, preprocessing: Preprocessing) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(image) as opened:
            size = opened.size
        return preprocessing.mask(mask, size)
    except PcrobustError:
        raise
    except Exception as exc:  # PIL raises several types for unreadable and truncated files
        raise PcrobustError(f"mask {mask} cannot be read (not an image, or truncated): {first_line(exc)}") from None


def read_image_folder(root: Path, classes: Sequence[str], preprocessing: Preprocessing, name: str,
                      masks: Path | None = None) -> LabeledImages:
    """The labelled images in ``root`` (class folders, or flat with ``labels.txt``), preprocessed by
    ``preprocessing``; with ``masks``, each image's segmentation mask from that folder."""
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
    paths = [path for path, _ in entries]
    if masks is not None and not Path(masks).is_dir():
        raise PcrobustError(f"masks folder {masks} does not exist or is not a folder")
    mask_files = [mask_file(path, root, Path(masks)) for path in paths] if masks is not None else []
    pixels = [_decoded(path, preprocessing) for path in paths]
    shapes = {p.shape for p in pixels}
    if len(shapes) > 1:
        raise PcrobustError(f"images in {root} decode to different shapes {sorted(shapes)[:2]}")
    found_masks = None
    if masks is not None:
        found_masks = torch.from_numpy(np.stack([_mask(image, mask, preprocessing)
                                                 for image, mask in zip(paths, mask_files, strict=True)]))
    digest = hashlib.sha256(b"".join(bytes.fromhex(sha256_of(path)) for path in [*paths, *mask_files])).hexdigest()
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in entries])
    source = f"folder {root}" + (f", masks {masks}" if masks is not None else "")
    return LabeledImages(name, "folder", images, labels, len(classes), source, digest, found_masks)
