"""Activation checkpointing per timestep against keeping every activation: peak memory and time of one exact
gradient through the unroll of PEfficientNet-Lite0 at 224², each in a fresh process, side by side.

The loss reads every timestep (the sum over t of each image's logit of class 0 at t), so the backward pass goes
through the whole unroll. Memory is the growth of the process's peak resident set over what it held once the
model was built and had run one pass without gradients; on CUDA, the peak of allocated GPU memory."""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any

import torch
from per_timestep import load_average

from pcrobust.models import evaluation_mode
from pcrobust_predify import lite0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measure(checkpointed: bool, batch: int, timesteps: int, threads: int, device_name: str,
            results: Any) -> None:
    """One gradient in this (fresh) process: seconds, memory growth in MiB and the gradient itself."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    model = lite0.build(None, {}).to(device)
    x = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    with evaluation_mode(model):
        with torch.no_grad():
            model(x[:1], 1)
        model.set_checkpointing(checkpointed)
        before = peak_rss_mib()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.max_memory_allocated() / 2**20
        start = time.perf_counter()
        z = x.clone().requires_grad_(True)
        model(z, timesteps)[:, :, 0].sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
            after = torch.cuda.max_memory_allocated() / 2**20
        else:
            after = peak_rss_mib()
        seconds = time.perf_counter() - start
    assert z.grad is not None
    results.put((checkpointed, seconds, after - before, z.grad.cpu().numpy()))  # plain bytes, not shared memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (one: see BENCHMARKS.md)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(load_average())
    print(f"PEfficientNet-Lite0, batch {args.batch}, 224², T={args.timesteps}, {args.device}, "
          f"torch {torch.__version__}")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    found: dict[bool, tuple[float, float, torch.Tensor]] = {}
    for checkpointed in (False, True):
        process = context.Process(target=measure, args=(checkpointed, args.batch, args.timesteps, args.threads,
                                                        args.device, results))
        process.start()
        flag, seconds, memory, gradient = results.get()
        process.join()
        found[flag] = (seconds, memory, torch.from_numpy(gradient))
    for flag, name in ((False, "kept activations"), (True, "checkpointed per timestep")):
        seconds, memory, _ = found[flag]
        print(f"{name}: {seconds:.1f} s, peak memory +{memory:.0f} MiB")
    (kept_s, kept_m, kept_g), (ckpt_s, ckpt_m, ckpt_g) = found[False], found[True]
    print(f"checkpointed / kept: time ×{ckpt_s / kept_s:.2f}, memory ×{ckpt_m / kept_m:.2f}")
    scale = kept_g.abs().max().item()
    print(f"largest gradient difference {(ckpt_g - kept_g).abs().max().item():.2e} (largest gradient {scale:.2e})")


if __name__ == "__main__":
    main()
