"""Corruption throughput: the library called image by image in one process, against the corruption section's pipeline
with worker processes, side by side on the same images, corruptions and seeds.

(a) ``imagecorruptions.corrupt`` on one uint8 image per call, numpy's global generator seeded per image;
(b) the section's pipeline (seeded per image, fixed spatter output) in this process (``workers = 0``);
(c) the same with ``--workers`` processes, the images of each (corruption, severity) sent as one unit;
(d) with ``--timesteps T``, corrupting and scoring on PEfficientNet-Lite0 at t = 0..T, one unit per corruption,
    in this process and with the workers corrupting the next unit while the model scores (as the section runs).
Every worker compiles glass_blur once before the clock starts, as this process does. Prints images per second.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from pcrobust.corrupt import ALL, to_library_array
from pcrobust.corrupt_workers import corrupt_here, default_workers, executor, submit
from pcrobust.kinds.corruption import image_seeds
from pcrobust_datasets.imagenet import load_foolbox_imagenet


def library_one_by_one(images: torch.Tensor, names: list[str], severity: int) -> float:
    from imagecorruptions import corrupt

    arrays = [to_library_array(image) for image in images]
    start = time.perf_counter()
    for name in names:
        for index, array in enumerate(arrays):
            np.random.seed(image_seeds(0, name, severity, [index])[0] & 0xFFFFFFFF)
            corrupt(array, severity=severity, corruption_name=name)
    return len(arrays) * len(names) / (time.perf_counter() - start)


def pipeline(images: torch.Tensor, names: list[str], severity: int, workers: int) -> float:
    indices = list(range(len(images)))
    start = time.perf_counter()
    if workers == 0:
        for name in names:
            corrupt_here(images, name, severity, image_seeds(0, name, severity, indices), "imagenet")
    else:
        jobs = [submit(images, name, severity, image_seeds(0, name, severity, indices), "imagenet", workers)
                for name in names]
        for job in jobs:
            job.result()
    return len(images) * len(names) / (time.perf_counter() - start)


def scored(images: torch.Tensor, names: list[str], severity: int, workers: int, timesteps: int) -> float:
    """Images per second of corrupting and scoring one unit per corruption, the next one started ahead."""
    from pcrobust.models import evaluation_mode
    from pcrobust_predify import lite0

    model = lite0.build(None, {})
    indices = list(range(len(images)))
    seeds = {name: image_seeds(0, name, severity, indices) for name in names}
    with evaluation_mode(model), torch.no_grad():
        start = time.perf_counter()
        ahead = submit(images, names[0], severity, seeds[names[0]], "imagenet", workers) if workers else None
        for position, name in enumerate(names):
            if ahead is None:
                corrupted = corrupt_here(images, name, severity, seeds[name], "imagenet")
            else:
                job = ahead
                later = names[position + 1:position + 2]
                ahead = submit(images, later[0], severity, seeds[later[0]], "imagenet", workers) if later else None
                corrupted = job.result()
            model(corrupted.images, timesteps)
    return len(images) * len(names) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=max(1, default_workers()))
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="copies of the 20 images")
    parser.add_argument("--timesteps", type=int, default=None, help="also corrupt and score on Lite0 at t = 0..T")
    args = parser.parse_args()
    images = load_foolbox_imagenet("test").images.repeat(args.repeat, 1, 1, 1)
    names = list(ALL)
    corrupt_here(images[:1], "glass_blur", 1, [0], "imagenet")  # glass_blur compiles on its first call
    pool = executor(args.workers)
    warm = [pool.submit(corrupt_here, images[:1], "glass_blur", 1, [0], "imagenet") for _ in range(args.workers)]
    for future in warm:
        future.result()
    print(f"{len(images)} images of {tuple(images.shape[1:])}, {len(names)} corruptions at severity {args.severity}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"(a) library, image by image, one process: {library_one_by_one(images, names, args.severity):6.1f} images/s")
    print(f"(b) pipeline, workers = 0:                 {pipeline(images, names, args.severity, 0):6.1f} images/s")
    print(f"(c) pipeline, workers = {args.workers}:                 "
          f"{pipeline(images, names, args.severity, args.workers):6.1f} images/s")
    if args.timesteps is not None:
        for workers in (0, args.workers):
            print(f"(d) corrupt and score at t = 0..{args.timesteps}, workers = {workers}: "
                  f"{scored(images, names, args.severity, workers, args.timesteps):6.1f} images/s")


if __name__ == "__main__":
    main()
