"""Corruptions at CIFAR-10-C strength: the parameter table of Hendrycks' ``make_cifar_c.py`` for small images.

``imagecorruptions`` fixes the ImageNet-C parameters inside each function, far too strong at 32 px, so these
recipes take their parameters from the CIFAR-10-C table and build on the package's helpers (disk kernel, plasma
fractal, clipped zoom, motion blur, glass-blur shuffle) where a recipe needs one. Draws come from a generator
seeded per image; the plasma fractal, which draws from numpy's global generator, runs under a seeded and restored
state. ``frost``, ``snow``, ``spatter`` and ``elastic_transform`` are not offered at this strength.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian
from skimage.util import random_noise

from pcrobust.seeding import seeded_global_numpy

Array = NDArray[np.float64]

CIFAR_TABLE: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}
NOT_OFFERED = ("frost", "snow", "spatter", "elastic_transform")


def _gaussian_noise(x: Array, c: float, seed: int) -> Array:
    return x + np.random.default_rng(seed).normal(scale=c, size=x.shape)


def _shot_noise(x: Array, c: float, seed: int) -> Array:
    return np.random.default_rng(seed).poisson(x * c) / float(c)


def _impulse_noise(x: Array, c: float, seed: int) -> Array:
    return np.asarray(random_noise(x, mode="s&p", rng=seed, amount=c))


def _speckle_noise(x: Array, c: float, seed: int) -> Array:
    return x + x * np.random.default_rng(seed).normal(scale=c, size=x.shape)


def _gaussian_blur(x: Array, c: float, seed: int) -> Array:
    return np.asarray(gaussian(x, sigma=c, channel_axis=-1))


def _glass_blur(x: Array, c: tuple[float, int, int], seed: int) -> Array:
    from imagecorruptions.corruptions import _shuffle_pixels_njit_glass_blur

    blurred = np.uint8(np.asarray(gaussian(x, sigma=c[0], channel_axis=-1)) * 255)
    shuffled = _shuffle_pixels_njit_glass_blur(x.shape[0], x.shape[1], blurred, c, seed & 0xFFFFFFFF)
    return np.asarray(gaussian(shuffled / 255.0, sigma=c[0], channel_axis=-1))


def _defocus_blur(x: Array, c: tuple[float, float], seed: int) -> Array:
    from imagecorruptions.corruptions import disk

    kernel = disk(radius=c[0], alias_blur=c[1])
    return np.stack([cv2.filter2D(x[:, :, d].astype(np.float32), -1, kernel) for d in range(3)], axis=-1)


def _motion_blur(x: Array, c: tuple[float, float], seed: int) -> Array:
    from imagecorruptions.corruptions import _motion_blur as motion

    angle = np.random.default_rng(seed).uniform(-45, 45)
    return np.asarray(motion(x * 255, radius=c[0], sigma=c[1], angle=angle)) / 255.0


def _zoom_blur(x: Array, c: tuple[float, float, float], seed: int) -> Array:
    from imagecorruptions.corruptions import clipped_zoom

    zooms = np.arange(*c)
    height, width = x.shape[:2]
    total = x.copy()
    for zoom in zooms:
        total += clipped_zoom(x, zoom)[:height, :width]
    return total / (len(zooms) + 1)


def _fog(x: Array, c: tuple[float, float], seed: int) -> Array:
    from imagecorruptions.corruptions import next_power_of_2, plasma_fractal

    height, width = x.shape[:2]
    with seeded_global_numpy(seed & 0xFFFFFFFF):
        plasma = plasma_fractal(mapsize=next_power_of_2(max(height, width)), wibbledecay=c[1])
    top = x.max()
    fogged = x + c[0] * np.asarray(plasma)[:height, :width][..., None]
    return fogged * top / (top + c[0])


def _brightness(x: Array, c: float, seed: int) -> Array:
    hsv = rgb2hsv(x)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
    return np.asarray(hsv2rgb(hsv))


def _contrast(x: Array, c: float, seed: int) -> Array:
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means


def _saturate(x: Array, c: tuple[float, float], seed: int) -> Array:
    hsv = rgb2hsv(x)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * c[0] + c[1], 0, 1)
    return np.asarray(hsv2rgb(hsv))


def _uint8_image(x: Array) -> Image.Image:
    return Image.fromarray(np.uint8(np.rint(np.clip(x, 0, 1) * 255)))


def _jpeg_compression(x: Array, c: int, seed: int) -> Array:
    buffer = BytesIO()
    _uint8_image(x).save(buffer, "JPEG", quality=c)
    return np.asarray(Image.open(buffer), dtype=np.float64) / 255.0


def _pixelate(x: Array, c: float, seed: int) -> Array:
    height, width = x.shape[:2]
    small = _uint8_image(x).resize((max(1, int(width * c)), max(1, int(height * c))), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.BOX), dtype=np.float64) / 255.0


RECIPES: dict[str, Callable[[Array, Any, int], Array]] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur, "glass_blur": _glass_blur,
    "defocus_blur": _defocus_blur, "motion_blur": _motion_blur, "zoom_blur": _zoom_blur, "fog": _fog,
    "brightness": _brightness, "contrast": _contrast, "saturate": _saturate, "jpeg_compression": _jpeg_compression,
    "pixelate": _pixelate,
}


def corrupt_cifar(image: NDArray[np.uint8], name: str, severity: int, seed: int) -> NDArray[np.uint8]:
    """A uint8 ``[H, W, 3]`` image corrupted by ``name`` at ``severity`` with the CIFAR-10-C parameters."""
    x = image.astype(np.float64) / 255.0
    out = RECIPES[name](x, CIFAR_TABLE[name][severity - 1], seed)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)
