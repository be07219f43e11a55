"""The batched engine against the reference method and against its own compute floor, on a PVGG16-sized Predify
network (torchvision's VGG16 layout, random weights, the five pcoders of PVGG16), side by side in one run.

- reference: Foolbox's ``LinfBasicIterativeAttack`` once per timestep on the model unrolled to that timestep;
- engine: ``attack_per_timestep``, every (ε, timestep, image) copy attacked in one batched run;
- floor: the sum over copies of one forward and backward pass to their own timestep, times the steps: the
  arithmetic any per-timestep attack must do (the engine also scores each result at every timestep).

Prints the engine's speed-up over the reference, its time over the floor, images·timesteps·steps per second
and, on CUDA, the FLOP/s it achieves (FLOPs of the floor counted by ``torch.utils.flop_counter``) as a fraction
of ``--peak-tflops``, and the peak memory the device held. The defaults are PVGG16's scale (224², T = 10); on the
CPU the budget is one image and one step, since one exact forward and backward pass to t = 10 alone takes over a
minute on two cores.

    python benchmarks/engine_vs_floor.py [--size 224] [--timesteps 10] [--n 1] [--steps 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
from per_timestep import LogitsAt, interleaved, load_average
from pvgg16 import pvgg16_random
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from pcrobust.attacks import GradientAttackOptions
from pcrobust.engine import attack_per_timestep, margins, precision_scope
from pcrobust.models import evaluation_mode
from pcrobust_attacks.bim import BIM
from pcrobust_predify.network import PredifyNet


def foolbox_per_timestep(model: PredifyNet, images: Tensor, targets: Tensor, epsilons: list[float], timesteps: int,
                         settings: GradientAttackOptions) -> list[list[int]]:
    """Successes [ε][t] from one Foolbox attack per timestep (the reference scripts' method)."""
    import foolbox as fb

    counts = [[0] * (timesteps + 1) for _ in epsilons]
    for t in range(timesteps + 1):
        fmodel = fb.PyTorchModel(LogitsAt(model, t), bounds=(0, 1), device=images.device)
        attack = fb.attacks.LinfBasicIterativeAttack(rel_stepsize=settings.rel_stepsize, steps=settings.steps)
        _, _, success = attack(fmodel, images, fb.criteria.TargetedMisclassification(targets), epsilons=epsilons)
        for e in range(len(epsilons)):
            counts[e][t] = int(success[e].sum())
    return counts


def floor_pass(model: PredifyNet, x: Tensor, targets: Tensor, timesteps: int) -> None:
    """One forward and backward pass of every copy to its own timestep (the copies of all ε at once per t)."""
    for t in range(timesteps + 1):
        z = x.clone().requires_grad_(True)
        margins(model(z, t)[t].float(), targets).sum().backward()


def synchronised(run: Callable[[], object], device: torch.device, name: str,
                 peak_bytes: dict[str, int]) -> Callable[[], object]:
    """``run`` followed by a wait for the device, so a timing covers the work it queued, and a line saying how long
    it took (a run at full size is long); on CUDA the most memory it held is kept in ``peak_bytes[name]``."""
    def call() -> object:
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = run()
        if cuda:
            torch.cuda.synchronize(device)
            peak_bytes[name] = max(peak_bytes.get(name, 0), torch.cuda.max_memory_allocated(device))
        print(f"  ... {name} took {time.perf_counter() - start:.1f} s", flush=True)
        return result

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="images [default: 1 on the CPU, 32 on CUDA]")
    parser.add_argument("--size", "--image-size", type=int, default=224,
                        help="side of the square images (a multiple of 32)")
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="BIM steps [default: 1 on the CPU, 10 on CUDA]")
    parser.add_argument("--epsilons", default="0.03")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="float32", choices=("float32", "bf16"))
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16 peak in TFLOP/s (CUDA): prints the fraction achieved")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats (median)")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the Foolbox reference")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (one: see BENCHMARKS.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    n = args.n or (32 if cuda else 1)
    steps = args.steps or (10 if cuda else 1)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    settings = GradientAttackOptions(steps=steps, rel_stepsize=0.2)
    print(load_average())
    print(f"PVGG16-sized Predify (random weights), {n} images at {args.size}², timesteps 0..{args.timesteps}, "
          f"ε={epsilons}, {steps} BIM steps, {args.precision}, device {device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {args.repeats} interleaved repeats (median)")
    model = pvgg16_random(args.size, args.timesteps, 0).to(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, args.size, args.size, generator=generator).to(device)
    targets = torch.randint(0, 1000, (n,), generator=generator).to(device)
    ids = list(range(n))
    copies_x = images.repeat(len(epsilons), 1, 1, 1)
    copies_y = targets.repeat(len(epsilons))
    with evaluation_mode(model), precision_scope(args.precision, device):
        def engine() -> list[list[int]]:
            out = attack_per_timestep(model, BIM(settings, "linf"), images, targets, epsilons, args.timesteps, "t",
                                      args.batch_size, device, 0, ids, progress=False)
            return out.success.sum(2).tolist()

        contenders: dict[str, Callable[[], object]] = {
            "engine": engine, "floor": lambda: floor_pass(model, copies_x, copies_y, args.timesteps)}
        if not args.skip_reference:
            contenders["reference"] = lambda: foolbox_per_timestep(model, images, targets, epsilons, args.timesteps,
                                                                   settings)
        peak_bytes: dict[str, int] = {}
        times, results = interleaved({name: synchronised(run, device, name, peak_bytes)
                                      for name, run in contenders.items()}, args.repeats)
        engine_s, engine_counts, floor_s = times["engine"], results["engine"], times["floor"] * steps
        reference_s, reference_counts = times.get("reference"), results.get("reference")
        flops = None
        if cuda:
            with FlopCounterMode(display=False) as counter:
                floor_pass(model, copies_x, copies_y, args.timesteps)
            flops = counter.get_total_flops() * steps
    work = len(epsilons) * n * (args.timesteps + 1) * steps
    print(f"  engine, all (ε, t) copies batched   {engine_s:9.1f} s")
    print(f"  floor, Σ copies fwd+bwd × steps     {floor_s:9.1f} s")
    if reference_s is not None:
        print(f"  foolbox, one attack per timestep    {reference_s:9.1f} s")
    print("ratios:")
    if reference_s is not None:
        print(f"  engine speed-up over foolbox        ×{reference_s / engine_s:.2f}")
        print(f"  success counts identical            {engine_counts == reference_counts}")
    print(f"  engine time / floor                 ×{engine_s / floor_s:.2f}")
    print(f"  images·timesteps·steps per second   {work / engine_s:.3g} (ε copies counted as images)")
    if flops is not None:
        achieved = flops / engine_s
        line = f"  achieved {achieved / 1e12:.2f} TFLOP/s"
        if args.peak_tflops:
            line += f" = {achieved / (args.peak_tflops * 1e12):.1%} of the {args.peak_tflops:g} TFLOP/s peak"
        print(line)
        print("  peak CUDA memory                    " +
              ", ".join(f"{name} {peak / 2**30:.1f} GiB" for name, peak in peak_bytes.items()))
    else:
        print("  FLOP/s against the peak and peak memory: CUDA only")


if __name__ == "__main__":
    main()
