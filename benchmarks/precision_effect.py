"""bf16 autocast against float32 on the embedded default: clean accuracy and targeted BIM success per timestep
on the same images and targets, and the time of each, measured side by side (interleaved repeats)."""

from __future__ import annotations

import argparse

import torch

from benchmarks.per_timestep import interleaved, load_average, right_at_every_timestep
from pcrobust.engine import attack_per_timestep, precision_scope, predict
from pcrobust.models import evaluation_mode
from pcrobust_attacks.bim import BIM, BIMOptions
from pcrobust_datasets.mnist import load_mnist_5k
from pcrobust_predify import mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clean", type=int, default=1000)
    parser.add_argument("--n-attack", type=int, default=100)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--epsilons", default="0.1,0.2,0.3")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (one: see BENCHMARKS.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    epsilons = [float(e) for e in args.epsilons.split(",")]
    model = mnist.build(None, {})
    data = load_mnist_5k("test")
    images, labels = data.images[: args.n_clean], data.labels[: args.n_clean]
    print(load_average())
    with evaluation_mode(model):
        attacked, targets, ids = right_at_every_timestep(model, args.timesteps, args.n_attack, cpu)
        attack = BIM(BIMOptions(), "linf")

        def evaluate(precision: str) -> tuple[torch.Tensor, torch.Tensor]:
            with precision_scope(precision, cpu):
                clean = predict(model, images, args.timesteps, 500, cpu, progress=False)
                outcome = attack_per_timestep(model, attack, attacked, targets, epsilons, args.timesteps, "t", 500,
                                              cpu, 0, ids, progress=False)
            return (clean.argmax(2) == labels).float().mean(1), outcome.success.float().mean(2)

        times, results = interleaved({name: lambda name=name: evaluate(name) for name in ("float32", "bf16")},
                                     args.repeats)
    for name in ("float32", "bf16"):
        accuracy, success = results[name]
        print(f"{name}: {times[name]:.2f} s; clean accuracy per t {[round(v, 3) for v in accuracy.tolist()]}")
        for epsilon, row in zip(epsilons, success.tolist(), strict=True):
            print(f"  BIM ε={epsilon:g} success per t {[round(v, 3) for v in row]}")
    print(f"float32 / bf16 time: ×{times['float32'] / times['bf16']:.2f}")
    difference = (results["bf16"][1] - results["float32"][1]).abs().max().item()
    print(f"largest BIM success difference: {difference:.3f}; clean accuracy difference: "
          f"{(results['bf16'][0] - results['float32'][0]).abs().max().item():.3f}")


if __name__ == "__main__":
    main()
