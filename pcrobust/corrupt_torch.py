"""ImageNet-C corruptions in torch, batched on the images' own device and dtype, at the library's parameters.

The corruptions that port cleanly from ``imagecorruptions-imaug``: the noise family, the Gaussian and defocus
blurs, brightness, contrast, saturate and pixelate. Images go through the library's own handling
(:data:`pcrobust.corrupt.HANDLING`): rounded to 8 bits, grey replicated to 3 channels, small images mirrored
to 32 px, the result truncated to 8 bits (as the library's ``np.uint8``) and converted back. The deterministic
corruptions follow the library's arithmetic (scikit-image's HSV round trip in closed form, OpenCV's disk and
SciPy's Gaussian kernels, Pillow's box and nearest resampling); the noise ones draw from a torch generator
seeded per image, so they match the library in distribution, not draw for draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pcrobust.corrupt import LUMA, MIN_SIZE
from pcrobust.errors import PcrobustError

# severity 1..5 → parameter, as in imagecorruptions' corruptions.py
GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_NOISE = (60, 25, 12, 5, 3)
IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)
GAUSSIAN_BLUR = (1, 2, 3, 4, 6)
DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)

TOLERANCE = {
    "deterministic": "brightness, contrast, saturate, gaussian_blur, defocus_blur and pixelate within 1/255 of the "
                     "library at every pixel (the 8-bit truncation of values that differ in their last bits)",
    "noise": "gaussian, shot, impulse and speckle noise drawn from a torch generator per image: the same "
             "distribution as the library's, not the same draws",
}


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def _per_image(x: Tensor, seeds: Sequence[int], draw: Callable[[Tensor, torch.Generator], Tensor]) -> Tensor:
    return torch.stack([draw(image, _generator(seed, x.device)) for image, seed in zip(x, seeds, strict=True)])


def gaussian_noise(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    c = GAUSSIAN_NOISE[severity - 1]
    return _per_image(x, seeds, lambda image, g: image + c * torch.randn(
        image.shape, generator=g, device=x.device, dtype=x.dtype))


def shot_noise(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    c = SHOT_NOISE[severity - 1]
    return _per_image(x, seeds, lambda image, g: torch.poisson(image * c, generator=g) / c)


def impulse_noise(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    """scikit-image's salt and pepper: each value replaced with probability c, by 1 or 0 with equal odds."""
    c = IMPULSE_NOISE[severity - 1]

    def draw(image: Tensor, g: torch.Generator) -> Tensor:
        flipped, salted = torch.rand((2, *image.shape), generator=g, device=x.device, dtype=x.dtype) < torch.tensor(
            [c, 0.5], device=x.device, dtype=x.dtype).view(2, 1, 1, 1)
        return torch.where(flipped, salted.to(x.dtype), image)

    return _per_image(x, seeds, draw)


def speckle_noise(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    c = SPECKLE_NOISE[severity - 1]
    return _per_image(x, seeds, lambda image, g: image + image * c * torch.randn(
        image.shape, generator=g, device=x.device, dtype=x.dtype))


def _separable(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """``x`` ``[N, C, H, W]`` filtered by the 1-D ``kernel`` along H and W (correlation), padded by ``mode``."""
    radius = len(kernel) // 2
    channels = x.shape[1]
    weights = kernel.to(x.dtype).view(1, 1, -1).expand(channels, 1, -1)
    rows = F.conv2d(F.pad(x, (0, 0, radius, radius), mode=mode), weights.unsqueeze(3), groups=channels)
    return F.conv2d(F.pad(rows, (radius, radius, 0, 0), mode=mode), weights.unsqueeze(2), groups=channels)


def _gaussian_kernel(sigma: float, radius: int, device: torch.device) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def gaussian_blur(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    """scikit-image's ``gaussian``: SciPy's kernel truncated at 4σ, edges repeated ('nearest')."""
    sigma = GAUSSIAN_BLUR[severity - 1]
    return _separable(x, _gaussian_kernel(sigma, int(4.0 * sigma + 0.5), x.device), "replicate")


def disk_kernel(radius: int, alias_blur: float, device: torch.device) -> Tensor:
    """The library's ``disk``: a normalised aliased disk on a grid of at least 17², smoothed by OpenCV's
    ``GaussianBlur`` (3×3, or 5×5 beyond radius 8; borders reflected without the edge)."""
    half, size = (8, 3) if radius <= 8 else (radius, 5)
    grid = torch.arange(-half, half + 1, dtype=torch.float64, device=device)
    disk = ((grid.view(-1, 1) ** 2 + grid.view(1, -1) ** 2) <= radius ** 2).to(torch.float32)
    disk = disk / disk.sum()
    smoothing = _gaussian_kernel(alias_blur, size // 2, device).to(torch.float32)
    return _separable(disk.view(1, 1, *disk.shape), smoothing, "reflect")[0, 0]


def defocus_blur(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    """OpenCV's ``filter2D`` of every channel with the disk kernel, borders reflected without the edge."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    kernel = disk_kernel(radius, alias_blur, x.device).to(x.dtype)
    half, channels = kernel.shape[0] // 2, x.shape[1]
    weights = kernel.view(1, 1, *kernel.shape).expand(channels, 1, -1, -1)
    return F.conv2d(F.pad(x, (half, half, half, half), mode="reflect"), weights, groups=channels)


def contrast(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    c = CONTRAST[severity - 1]
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * c + means


def brightness(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    """HSV value + c, clipped: hue and saturation kept, so every channel scales with the value (grey → v')."""
    value = x.amax(dim=1, keepdim=True)
    raised = (value + BRIGHTNESS[severity - 1]).clamp(0, 1)
    return torch.where(value > 0, x * raised / value.clamp_min(torch.finfo(x.dtype).tiny), raised)


def saturate(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    """HSV saturation × c₀ + c₁, clipped: each channel moves along v − (v − x)·s'/s; a grey pixel (hue 0 in
    scikit-image) becomes (v, v(1 − s'), v(1 − s'))."""
    scale, shift = SATURATE[severity - 1]
    value = x.amax(dim=1, keepdim=True)
    spread = value - x.amin(dim=1, keepdim=True)
    coloured = spread > 0
    saturation = torch.where(coloured, spread / value.clamp_min(torch.finfo(x.dtype).tiny), 0)
    new = (saturation * scale + shift).clamp(0, 1)
    moved = value - (value - x) * new * value / spread.clamp_min(torch.finfo(x.dtype).tiny)
    red = torch.zeros_like(x)
    red[:, 0] = 1
    grey = value * (1 - new * (1 - red))
    return torch.where(coloured, moved, grey)


def box_weights(size: int, out: int, device: torch.device) -> Tensor:
    """Pillow's BOX resampling from ``size`` to ``out`` samples as an ``[out, size]`` matrix: each output
    averages the inputs whose centres lie in its box."""
    scale = size / out
    support = 0.5 * max(scale, 1.0)
    weights = torch.zeros(out, size, dtype=torch.float64)
    for index in range(out):
        centre = (index + 0.5) * scale
        low, high = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size)
        for source in range(low, high):
            offset = (source - centre + 0.5) / max(scale, 1.0)
            weights[index, source] = 1.0 if -0.5 < offset <= 0.5 else 0.0
        weights[index] /= weights[index].sum()
    return weights.to(device)


def nearest_indices(size: int, out: int, device: torch.device) -> Tensor:
    """Pillow's NEAREST resampling from ``size`` to ``out``: the input under each output pixel's centre, found
    as Pillow finds it (the centre advanced by repeated addition in double precision, then truncated), so a
    centre that falls on a boundary goes where Pillow sends it."""
    scale, position, indices = size / out, 0.5 * size / out, []
    for _ in range(out):
        indices.append(min(int(position), size - 1))
        position += scale
    return torch.tensor(indices, dtype=torch.int64, device=device)


def pixelate(x: Tensor, severity: int, seeds: Sequence[int]) -> Tensor:
    """Pillow: BOX down to ⌊c·size⌋ (width, then height, each pass rounded to 8 bits), NEAREST back up."""
    c = PIXELATE[severity - 1]
    height, width = x.shape[-2:]
    small_w, small_h = int(width * c), int(height * c)
    levels = x * 255
    across = torch.floor(levels @ box_weights(width, small_w, x.device).to(x.dtype).T + 0.5)
    down = torch.floor(box_weights(height, small_h, x.device).to(x.dtype) @ across + 0.5) / 255
    return down[:, :, nearest_indices(small_h, height, x.device)][:, :, :, nearest_indices(small_w, width, x.device)]


CORRUPTIONS: dict[str, Callable[[Tensor, int, Sequence[int]], Tensor]] = {
    fn.__name__: fn for fn in (gaussian_noise, shot_noise, impulse_noise, speckle_noise, gaussian_blur,
                               defocus_blur, brightness, contrast, saturate, pixelate)
}


def check_offered(names: Sequence[str]) -> None:
    """A corruption without a torch implementation is a one-line error listing those that have one."""
    missing = [name for name in names if name not in CORRUPTIONS]
    if missing:
        raise PcrobustError(f"backend 'torch' does not offer {', '.join(missing)}; it offers "
                            f"{', '.join(CORRUPTIONS)}")


def _symmetric_pad(x: Tensor, size: int) -> Tensor:
    """Mirror ``x`` (edge included, numpy's 'symmetric') to at least ``size`` on each side, centred."""
    for dim in (2, 3):
        n = x.shape[dim]
        pad = max(0, size - n)
        if pad:
            positions = torch.arange(-(pad // 2), n + pad - pad // 2, device=x.device)
            index = torch.where(positions < 0, -positions - 1, torch.where(positions >= n, 2 * n - positions - 1,
                                                                           positions))
            x = x.index_select(dim, index)
    return x


def corrupt_batch(images: Tensor, name: str, severity: int, seeds: Sequence[int]) -> Tensor:
    """``[N, C, H, W]`` images in [0, 1] (C = 1 or 3) corrupted by ``name`` at ``severity``, image ``i`` from
    ``seeds[i]``, on the images' device and in their dtype."""
    check_offered([name])
    if len(seeds) != len(images):
        raise ValueError(f"need one seed per image, got {len(seeds)} for {len(images)}")
    channels, height, width = images.shape[1:]
    levels = torch.round(images.clamp(0, 1) * 255) / 255
    rgb = _symmetric_pad(levels.expand(-1, 3, -1, -1) if channels == 1 else levels, MIN_SIZE)
    out = torch.floor(CORRUPTIONS[name](rgb, severity, seeds).clamp(0, 1) * 255) / 255
    top, left = (out.shape[2] - height) // 2, (out.shape[3] - width) // 2
    out = out[:, :, top:top + height, left:left + width]
    if channels == 1:
        out = (out * torch.tensor(LUMA, device=out.device, dtype=out.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return out.contiguous()
