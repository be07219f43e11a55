"""Images per second of the torch corruptions against imagecorruptions, side by side in one run: the library one
image at a time in this process and in ``--workers`` worker processes, torch batched on the CPU and, when
present, on CUDA. The 20 bundled ImageNet photographs (224², colour), severity ``--severity``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import torch
from per_timestep import interleaved, load_average

from pcrobust.corrupt import corrupt_images
from pcrobust.corrupt_torch import CORRUPTIONS, corrupt_batch
from pcrobust_datasets.imagenet import load_foolbox_imagenet


def _library_share(args: tuple[torch.Tensor, str, int, list[int]]) -> torch.Tensor:
    torch.set_num_threads(1)
    images, name, severity, seeds = args
    return corrupt_images(images, name, severity, seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the library contender")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (one: see BENCHMARKS.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = load_foolbox_imagenet("test").images
    seeds = list(range(len(images)))
    shares = [(images[i::args.workers], seeds[i::args.workers]) for i in range(args.workers)]
    print(load_average())
    print(f"{len(images)} images at 224², severity {args.severity}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {args.repeats} interleaved repeats (median); images/s")
    columns = ["library", f"library ×{args.workers} workers", "torch cpu"]
    if torch.cuda.is_available():
        columns.append("torch cuda")
    print(f"{'corruption':<16}" + "".join(f"{c:>22}" for c in columns) + f"{'torch cpu / library':>22}")
    on_gpu = images.cuda() if torch.cuda.is_available() else None
    with ProcessPoolExecutor(args.workers) as pool:
        for name in CORRUPTIONS:
            def cuda_batch(name: str = name) -> object:
                assert on_gpu is not None
                out = corrupt_batch(on_gpu, name, args.severity, seeds)
                torch.cuda.synchronize()
                return out

            contenders: dict[str, Callable[[], object]] = {
                "library": lambda name=name: corrupt_images(images, name, args.severity, seeds),
                columns[1]: lambda name=name: list(pool.map(_library_share, [
                    (part, name, args.severity, part_seeds) for part, part_seeds in shares])),
                "torch cpu": lambda name=name: corrupt_batch(images, name, args.severity, seeds),
            }
            if on_gpu is not None:
                corrupt_batch(on_gpu, name, args.severity, seeds)  # warm-up: kernels and allocator
                contenders["torch cuda"] = cuda_batch
            times, _ = interleaved(contenders, args.repeats)
            rates = {key: len(images) / seconds for key, seconds in times.items()}
            print(f"{name:<16}" + "".join(f"{rates[c]:>22.1f}" for c in columns)
                  + f"{'×' + format(rates['torch cpu'] / rates['library'], '.1f'):>22}")


if __name__ == "__main__":
    main()
