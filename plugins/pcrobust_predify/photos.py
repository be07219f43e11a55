"""Unlabelled natural photographs bundled with scikit-image and scikit-learn: the feedback-training data of
PEfficientNet-Lite0, disjoint from every evaluation image (none of them is an ImageNet validation image)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pcrobust.errors import PcrobustError

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera", "grass", "gravel",
                  "brick")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")


@dataclass(frozen=True)
class Photo:
    """One photograph as float RGB in [0, 1], ``[3, H, W]``; ``source`` names where it came from."""

    source: str
    pixels: Tensor

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pixels.numpy().tobytes()).hexdigest()


def _rgb(array: np.ndarray) -> Tensor:
    pixels = torch.from_numpy(np.array(array, dtype=np.float32)) / 255.0
    return (pixels.expand(3, *pixels.shape) if pixels.ndim == 2 else pixels.permute(2, 0, 1)).contiguous()


def load_photos() -> list[Photo]:
    """The bundled photographs, in a fixed order; greyscale ones repeated over the three channels."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise PcrobustError("feedback training needs scikit-image and scikit-learn: "
                            "pip install 'pcrobust[imagenet]'") from None
    photos = [Photo(f"skimage.data.{name}", _rgb(getattr(skimage.data, name)())) for name in SKIMAGE_PHOTOS]
    sample = load_sample_images()
    named = dict(zip((f.rsplit("/", 1)[-1] for f in sample.filenames), sample.images, strict=True))
    photos += [Photo(f"sklearn.datasets.load_sample_images:{name}", _rgb(named[name])) for name in SKLEARN_PHOTOS]
    return photos


def random_crops(photos: list[Photo], count: int, size: int, generator: torch.Generator,
                 min_scale: float = 0.3) -> Tensor:
    """``count`` random square crops, each a side of ``min_scale``–1 of its photo's shorter side, resized
    (antialiased bilinear) to ``size`` and flipped left–right with probability ½."""
    crops = []
    for _ in range(count):
        pixels = photos[int(torch.randint(len(photos), (1,), generator=generator))].pixels
        height, width = pixels.shape[-2:]
        scale = min_scale + (1 - min_scale) * float(torch.rand((), generator=generator))
        side = max(1, round(scale * min(height, width)))
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        crop = F.interpolate(pixels[None, :, top:top + side, left:left + side], size=(size, size),
                             mode="bilinear", align_corners=False, antialias=True)[0]
        if float(torch.rand((), generator=generator)) < 0.5:
            crop = crop.flip(-1)
        crops.append(crop.clamp(0, 1))
    return torch.stack(crops)
