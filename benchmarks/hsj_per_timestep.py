"""Targeted HopSkipJump (L2) per timestep: pcrobust's batched engine against Foolbox 3 run once per timestep.

Both start every image from the same point, the nearest test digit of the target class that the model puts in
the target class at that timestep (``nearest_starts`` on the test digits), and use the same budget: iterations,
boundary samples (initial and most), γ. Foolbox runs once per timestep on the model unrolled to that timestep,
one image at a time: its batched HopSkipJumpAttack normalises the gradient estimate over the whole batch
(Foolbox 3.3.4), so one image's step depends on the others. The batched run is timed too, as the fastest
Foolbox can go, but its answers are coupled by that bug. The engine attacks every (timestep, image) copy
together, once for the whole ε grid, and clips each answer to every ε. The script prints time, queries per
second (model rows asked), median L2 distance and success rate per ε and timestep, measured side by side
(interleaved repeats, median).

    python benchmarks/hsj_per_timestep.py [--n 6] [--timesteps 2] [--steps 8] [--initial-evals 50] [--repeats 3]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from per_timestep import LogitsAt, attack_options, interleaved, load_average, parsed, right_at_every_timestep
from torch import Tensor

from pcrobust.attacks import project
from pcrobust.engine import StartPoints, attack_per_timestep, predict
from pcrobust.models import TimestepModel, evaluation_mode
from pcrobust.starts import nearest_starts
from pcrobust_attacks.hsj import HopSkipJump, HSJOptions, distances
from pcrobust_datasets.mnist import load_mnist_5k
from pcrobust_predify import mnist


@dataclass(frozen=True)
class Answers:
    """Per timestep: the L2 distance of each image's answer ``[T+1, N]``, its success at each ε ``[E, T+1, N]``,
    and the model rows the attack asked."""

    distance: Tensor
    success: Tensor
    queries: float


def score(model: TimestepModel, images: Tensor, targets: Tensor, answers: Sequence[Tensor],
          epsilons: Sequence[float], queries: float) -> Answers:
    """Distances of ``answers[t]`` and their success at timestep ``t`` once clipped to each ε."""
    success = torch.zeros(len(epsilons), len(answers), len(images), dtype=torch.bool)
    with torch.no_grad():
        for t, x_adv in enumerate(answers):
            for e, eps in enumerate(epsilons):
                clipped = project(images, x_adv, torch.full((len(images),), eps), "l2")
                success[e, t] = model(clipped, t)[t].argmax(1) == targets
    return Answers(torch.stack([distances(x_adv - images, "l2") for x_adv in answers]), success, queries)


def foolbox_per_timestep(model: TimestepModel, images: Tensor, targets: Tensor, starts: Sequence[Tensor],
                         epsilons: Sequence[float], options: HSJOptions, one_at_a_time: bool) -> Answers:
    """Foolbox's HopSkipJumpAttack once per timestep from ``starts[t]``, image by image or on the whole batch."""
    import foolbox as fb

    torch.manual_seed(0)
    answers, queries = [], 0
    for t, start in enumerate(starts):
        logits = LogitsAt(model, t)
        fmodel = fb.PyTorchModel(logits, bounds=(0, 1), device=images.device)
        attack = fb.attacks.HopSkipJumpAttack(steps=options.steps, initial_gradient_eval_steps=options.initial_evals,
                                              max_gradient_eval_steps=options.max_evals, gamma=options.gamma,
                                              constraint="l2")
        groups = [slice(i, i + 1) for i in range(len(images))] if one_at_a_time else [slice(None)]
        answers.append(torch.cat([attack.run(fmodel, images[g], fb.criteria.TargetedMisclassification(targets[g]),
                                             starting_points=start[g]) for g in groups]))
        queries += logits.rows
    return score(model, images, targets, answers, epsilons, queries)


def main() -> None:
    parser = attack_options(__doc__.splitlines()[0], n=6, epsilons="1,2,3",
                            epsilons_help="L2 budgets the answers are clipped to", steps=8,
                            steps_help="HopSkipJump iterations")
    parser.add_argument("--initial-evals", type=int, default=50, help="boundary samples of the first estimate")
    parser.add_argument("--max-evals", type=int, default=10000, help="most boundary samples of one estimate")
    parser.add_argument("--gamma", type=float, default=1.0, help="binary-search threshold factor")
    parser.add_argument("--max-queries", type=int, default=2000,
                        help="pcrobust's query budget per copy (Foolbox has none; keep it above what the steps use)")
    parser.add_argument("--no-batched", action="store_true", help="skip the batched (coupled) Foolbox run")
    args = parsed(parser)
    print(load_average())
    device, epsilons = torch.device("cpu"), [float(e) for e in args.epsilons.split(",")]
    options = HSJOptions(steps=args.steps, initial_evals=args.initial_evals, max_evals=args.max_evals,
                         gamma=args.gamma, max_queries=args.max_queries)
    model = mnist.build(None, {}).to(device)
    with evaluation_mode(model):
        images, targets, ids = right_at_every_timestep(model, args.timesteps, args.n, device)
        pool = load_mnist_5k("test")
        pool_logits = predict(model, pool.images, args.timesteps, 500, device, progress=False)
        points = nearest_starts(images, ids, (targets - 1) % 10, targets, True, pool.images, range(len(pool)),
                                pool.labels, pool_logits, "t", args.timesteps, "l2")
        if not bool((points.choice >= 0).all()):
            raise SystemExit("some image has no starting point among the test digits")
        starts = [pool.images[choice].to(device) for choice in points.choice]

        def engine() -> Answers:
            out = attack_per_timestep(model, HopSkipJump(options, "l2"), images, targets, epsilons, args.timesteps,
                                      "t", args.batch_size, device, 0, ids,
                                      starts=StartPoints(pool.images.to(device), points.choice), progress=False)
            return Answers(out.records["distance"][0].float(), out.success, float(out.queries[0].sum()))

        contenders: dict[str, Callable[[], Answers]] = {
            "foolbox, per timestep, image by image": lambda: foolbox_per_timestep(
                model, images, targets, starts, epsilons, options, one_at_a_time=True)}
        if not args.no_batched:
            contenders["foolbox, per timestep, batched (coupled)"] = lambda: foolbox_per_timestep(
                model, images, targets, starts, epsilons, options, one_at_a_time=False)
        contenders["pcrobust engine, all t batched"] = engine
        times, answers = interleaved(contenders, args.repeats)
    print(f"model mnist-pnet, n={len(images)} images, timesteps 0..{args.timesteps}, targeted (y+1) mod 10, L2, "
          f"HopSkipJump {args.steps} steps, {args.initial_evals}·√t samples (at most {args.max_evals}), "
          f"γ={args.gamma}, pcrobust max_queries {args.max_queries}, CPU, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats (median)")
    reference = times["foolbox, per timestep, image by image"]
    for name, seconds in times.items():
        result = answers[name]
        print(f"  {name:<42} {seconds:8.2f} s   foolbox image by image / this ×{reference / seconds:5.2f}   "
              f"{result.queries:8.0f} queries   {result.queries / seconds:7.0f} queries/s")
    print("  median L2 distance per timestep:")
    for name, result in answers.items():
        print(f"    {name:<42} " + " ".join(f"{d:.3f}" for d in result.distance.median(1).values.tolist()))
    for e, eps in enumerate(epsilons):
        print(f"  success rate per timestep at ε={eps:g}:")
        for name, result in answers.items():
            print(f"    {name:<42} " + " ".join(f"{r:.2f}" for r in result.success[e].float().mean(1).tolist()))


if __name__ == "__main__":
    main()
