"""ImageNet-C corruptions of [0, 1] image tensors, through the ``imagecorruptions`` package, seeded per image.

The package draws from numpy's global generator (and, for ``glass_blur`` and ``impulse_noise``, from a ``seed``
it is given). Each call here seeds that generator from the image's own seed and restores the previous state
afterwards, so a corrupted image depends only on its seed and no caller sees the process state change.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from pcrobust.errors import PcrobustError
from pcrobust.seeding import seeded_global_numpy

STANDARD = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
            "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
            "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = STANDARD + EXTRA
SEEDED_BY_ARGUMENT = ("glass_blur", "impulse_noise")  # the package takes their seed as an argument
MIN_SIZE = 32  # the package refuses smaller images
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")
DISTRIBUTION = "imagecorruptions-imaug"
Strength = Literal["imagenet", "cifar"]

HANDLING = {
    "quantisation": "images in [0, 1] are rounded to uint8 H×W×3 at their own size, corrupted, and divided by 255",
    "grayscale": "one-channel images are replicated to 3 channels for the library and converted back to grey "
                 "with the ITU-R BT.601 luma weights 0.299, 0.587, 0.114",
    "small_images": f"images under {MIN_SIZE} px on a side are padded symmetrically (mirrored) to {MIN_SIZE} px, "
                    "corrupted, and cropped back to their own size",
    "spatter": "where the library's liquid layer is empty it divides 0 by 0 and returns NaN (a black image "
               "after its uint8 cast); the image without liquid is used instead, and the images are recorded",
    "seeding": "numpy's global generator is seeded per image from (run seed, dataset index, corruption, "
               "severity) for the call and restored after it; glass_blur and impulse_noise get the same seed as "
               "an argument",
}


def library_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def check_names(names: Sequence[str]) -> None:
    """An unknown corruption name is a one-line error listing the known ones."""
    for name in names:
        if name not in ALL:
            raise PcrobustError(f"unknown corruption {name!r}; available: all, {', '.join(ALL)}")


def to_library_array(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in [0, 1] → uint8 ``[H', W', 3]``, grey replicated, padded to the library's minimum size."""
    array = np.rint(image.detach().cpu().double().clamp(0, 1).numpy() * 255).astype(np.uint8).transpose(1, 2, 0)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    pad_h, pad_w = max(0, MIN_SIZE - array.shape[0]), max(0, MIN_SIZE - array.shape[1])
    if pad_h or pad_w:
        array = np.pad(array, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                       mode="symmetric")
    return array


def from_library_array(array: np.ndarray, like: Tensor) -> Tensor:
    """The inverse of :func:`to_library_array`: crop the padding, back to grey if ``like`` has one channel."""
    channels, height, width = like.shape
    top, left = (array.shape[0] - height) // 2, (array.shape[1] - width) // 2
    pixels = array[top:top + height, left:left + width].astype(np.float64) / 255.0
    if channels == 1:
        pixels = (pixels @ np.asarray(LUMA))[:, :, None]
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).to(like.dtype)


def spatter_without_liquid(array: np.ndarray) -> np.ndarray:
    """What ``spatter`` gives when its liquid layer is empty: the image through the library's float32 round trip.

    The library then divides the (all-zero) layer by its maximum, 0 / 0, so its output is NaN everywhere and
    its uint8 cast turns the image black; the intended output adds no liquid."""
    return (np.clip(array.astype(np.float32) / 255.0, 0, 1) * 255).astype(np.uint8)


def corrupt_array(array: np.ndarray, name: str, severity: int, seed: int,
                  strength: Strength = "imagenet") -> tuple[np.ndarray, bool]:
    """One uint8 H×W×3 image corrupted by ``name`` at ``severity``, from ``seed``, and whether the library
    returned NaN so the fixed output (``spatter`` without liquid) was used. numpy only, so it runs in workers."""
    if strength == "cifar":
        from pcrobust.corrupt_cifar import corrupt_cifar

        return corrupt_cifar(array, name, severity, int(seed)), False
    from imagecorruptions import corruption_dict
    from PIL import Image

    seed32 = int(seed) & 0xFFFFFFFF
    kwargs: dict[str, Any] = {"seed": seed32} if name in SEEDED_BY_ARGUMENT else {}
    with seeded_global_numpy(seed32), np.errstate(invalid="ignore"):  # spatter's 0 / 0 is handled below
        raw = np.asarray(corruption_dict[name](Image.fromarray(array), severity, **kwargs))
    if raw.dtype.kind == "f" and bool(np.isnan(raw).any()):
        if name != "spatter":
            raise PcrobustError(f"{name} severity {severity} returned NaN (seed {seed32})")
        return spatter_without_liquid(array), True
    return raw.astype(np.uint8), False


def corrupt_image(image: Tensor, name: str, severity: int, seed: int, strength: Strength = "imagenet") -> Tensor:
    """One ``[C, H, W]`` image in [0, 1] (C = 1 or 3) corrupted by ``name`` at ``severity``, from ``seed``, with
    the package's ImageNet-C parameters or (``cifar``) the CIFAR-10-C ones."""
    out, _ = corrupt_array(to_library_array(image), name, severity, seed, strength)
    return from_library_array(out, image)


def corrupt_images(images: Tensor, name: str, severity: int, seeds: Sequence[int],
                   strength: Strength = "imagenet") -> Tensor:
    """``[N, C, H, W]`` images corrupted one by one, image ``i`` from ``seeds[i]``."""
    return torch.stack([corrupt_image(image, name, severity, seed, strength)
                        for image, seed in zip(images, seeds, strict=True)])
