"""A PVGG16-sized Predify network with random weights: PVGG16's five pcoders and predictors (its config, at the
ReLU outputs before each max-pool) over a VGG16 in torchvision's layout, built without torchvision."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from pcrobust_predify.config import load_config, predify
from pcrobust_predify.network import PredifyNet
from pcrobust_predify.recipes import RECIPES

VGG16_FEATURES = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision's ``vgg16`` layout (``features[i]`` indices included), without torchvision."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in VGG16_FEATURES:
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(width, int)
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def pvgg16_random(image_size: int, timesteps: int, seed: int) -> PredifyNet:
    """PVGG16 (its config's pcoders and predictors) over a VGG16 with random weights, at ``image_size``²."""
    config = replace(load_config(RECIPES["pvgg16"].config_path), input_size=(3, image_size, image_size),
                     timesteps=timesteps)
    with torch.random.fork_rng():  # seeded initialisation without touching the caller's generator
        torch.manual_seed(seed)
        return predify(VGG16(), config).eval()
