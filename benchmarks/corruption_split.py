"""Where the time of a corruption section goes on the embedded default: corrupting vs scoring every timestep.

Corrupts ``--images`` test digits with every corruption at every severity (one image at a time, as the section
does) and scores one batch of them at every timestep of ``mnist-pnet``; prints images per second of each.
"""

from __future__ import annotations

import argparse
import time

import torch

from pcrobust.corrupt import ALL, corrupt_images
from pcrobust.models import evaluation_mode
from pcrobust_datasets.mnist import load_mnist_5k
from pcrobust_predify import mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=50)
    args = parser.parse_args()
    images = load_mnist_5k("test").images[: args.images]
    corrupt_images(images[:1], "glass_blur", 1, [0])  # the package compiles glass_blur on its first call
    start = time.perf_counter()
    for name in ALL:
        for severity in range(1, 6):
            corrupt_images(images, name, severity, list(range(len(images))))
    corrupting = time.perf_counter() - start
    model = mnist.build(None, {})
    with evaluation_mode(model), torch.no_grad():
        start = time.perf_counter()
        model(images, model.default_timesteps)
        scoring = time.perf_counter() - start
    done = len(images) * len(ALL) * 5
    print(f"corrupting: {done / corrupting:.0f} images/s ({len(ALL)} corruptions x 5 severities, one image per call)")
    print(f"scoring at t = 0..{model.default_timesteps}: {len(images) / scoring:.0f} images/s")
    print(f"share of a section's time spent corrupting: {corrupting / (corrupting + scoring * len(ALL) * 5):.0%}")


if __name__ == "__main__":
    main()
