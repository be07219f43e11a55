"""Targeted BIM per timestep: pcrobust's batched engine against Foolbox 3 run once per timestep.

The reference scripts build the model unrolled to T and run Foolbox's LinfBasicIterativeAttack once per T
(and Foolbox loops over ε inside). pcrobust attacks every (ε, timestep) copy of every image together.
Both use the same model, images, targets, ε, steps and step size; the script checks that the success counts
agree and prints the time ratio, measured side by side (interleaved repeats, median).

    python benchmarks/bim_vs_foolbox.py [--n 50] [--timesteps 8] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from per_timestep import LogitsAt, load_average, one_attack_per_timestep, right_at_every_timestep

from pcrobust.attacks import GradientAttackOptions
from pcrobust.engine import attack_per_timestep
from pcrobust.models import evaluation_mode
from pcrobust_attacks.bim import BIM
from pcrobust_predify import mnist


def foolbox_per_timestep(model, images, targets, epsilons, timesteps, settings) -> list[list[int]]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--epsilons", default="0.2,0.3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (more only lose time to contention on a loaded machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(load_average())
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    device = torch.device(args.device)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    settings = GradientAttackOptions(steps=10, rel_stepsize=0.2)
    model = mnist.build(None, {}).to(device)
    with evaluation_mode(model):
        images, targets, ids = right_at_every_timestep(model, args.timesteps, args.n, device)

        def engine() -> list[list[int]]:
            out = attack_per_timestep(model, BIM(settings, "linf"), images, targets, epsilons, args.timesteps, "t",
                                      args.batch_size, device, 0, ids, progress=False)
            return out.success.sum(2).tolist()

        contenders = {"foolbox, one attack per timestep": lambda: foolbox_per_timestep(
                          model, images, targets, epsilons, args.timesteps, settings),
                      "pcrobust kernel, one attack per (ε, t)": lambda: one_attack_per_timestep(
                          model, BIM(settings, "linf"), images, targets, ids, epsilons, args.timesteps),
                      "pcrobust engine, all (ε, t) batched": engine}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        counts: dict[str, list[list[int]]] = {}
        for _ in range(args.repeats):
            for name, run in contenders.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                counts[name] = run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    print(f"model mnist-pnet (exact gradients), n={len(images)} images, timesteps 0..{args.timesteps}, "
          f"ε={epsilons}, 10 steps of 0.2·ε, device {device}, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats (median)")
    reference = statistics.median(times["foolbox, one attack per timestep"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<40} {median:8.2f} s   speed-up vs foolbox ×{reference / median:5.2f}")
    for e, eps in enumerate(epsilons):
        rows = {name: [c / len(images) for c in result[e]] for name, result in counts.items()}
        print(f"  success rate per timestep at ε={eps}:")
        for name, rates in rows.items():
            print(f"    {name:<40} " + " ".join(f"{r:.2f}" for r in rates))
    agree = len({str(result) for result in counts.values()}) == 1
    print(f"  success counts identical across methods: {agree}")


if __name__ == "__main__":
    main()
