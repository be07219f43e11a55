"""Targeted SPSA per timestep: the batched engine against the same attack run once per timestep.

Neither Foolbox nor ART implements SPSA, so the reference is the reference scripts' method with pcrobust's own
SPSA kernel: one attack per (ε, timestep) on the model unrolled to that timestep. The engine attacks every
(ε, timestep, image) copy together. Both use the same model, images, targets, ε, seeds and budget; the script
checks that the success counts agree and prints the time ratio (interleaved repeats, median) and queries per
second.

    python benchmarks/spsa_per_timestep.py [--n 10] [--timesteps 4] [--steps 10] [--samples 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from per_timestep import load_average, one_attack_per_timestep, right_at_every_timestep

from pcrobust.engine import attack_per_timestep
from pcrobust.models import evaluation_mode
from pcrobust_attacks.spsa import SPSA, SPSAOptions
from pcrobust_predify import mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--epsilons", default="0.1,0.2")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (more only lose time to contention on a loaded machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(load_average())
    epsilons = [float(e) for e in args.epsilons.split(",")]
    attack = SPSA(SPSAOptions(steps=args.steps, samples=args.samples), "linf")
    model = mnist.build(None, {})
    with evaluation_mode(model):
        images, targets, ids = right_at_every_timestep(model, args.timesteps, args.n, torch.device("cpu"))
        queries: list[float] = []

        def engine() -> list[list[int]]:
            out = attack_per_timestep(model, attack, images, targets, epsilons, args.timesteps, "t", 500,
                                      torch.device("cpu"), 0, ids, progress=False)
            queries.append(float(out.queries.sum()))
            return out.success.sum(2).tolist()

        contenders = {"SPSA once per (ε, t)": lambda: one_attack_per_timestep(model, attack, images, targets, ids,
                                                                                epsilons, args.timesteps),
                      "pcrobust engine, all (ε, t) batched": engine}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        counts: dict[str, list[list[int]]] = {}
        for _ in range(args.repeats):
            for name, run in contenders.items():
                start = time.perf_counter()
                counts[name] = run()
                times[name].append(time.perf_counter() - start)
    print(f"model mnist-pnet, n={len(images)} images, timesteps 0..{args.timesteps}, ε={epsilons}, SPSA "
          f"{args.steps} steps × {args.samples} pairs, CPU, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats (median)")
    reference = statistics.median(times["SPSA once per (ε, t)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<40} {median:8.2f} s   ×{reference / median:5.2f}   "
              f"{queries[-1] / median:9.0f} queries/s")
    print(f"  success counts [ε][t] identical: {len({str(c) for c in counts.values()}) == 1} {counts[name]}")


if __name__ == "__main__":
    main()
