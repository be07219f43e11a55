"""Targeted L2 PGD (RPGD) per timestep: pcrobust's batched engine against Foolbox 3 run once per timestep.

Foolbox's L2ProjectedGradientDescentAttack runs once per timestep on the model unrolled to that timestep (and
loops over ε inside); the engine attacks every (ε, timestep, image) copy together. Both use the same model,
images, targets, ε, steps and step size. Without a random start the two compute the same iterates, so the
script checks that the success counts agree and how far apart the margins of the answers are; with a random
start (each draws its own) the success counts agree only within sampling noise. Times are measured side by side
(interleaved repeats, median).

    python benchmarks/rpgd_vs_foolbox.py [--n 20] [--timesteps 2] [--steps 50] [--repeats 3]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from per_timestep import LogitsAt, attack_options, interleaved, load_average, parsed, right_at_every_timestep
from torch import Tensor

from pcrobust.engine import attack_per_timestep, margins
from pcrobust.models import TimestepModel, evaluation_mode
from pcrobust_attacks.rpgd import RPGD, RPGDOptions
from pcrobust_predify import mnist

Outcome = tuple[Tensor, Tensor]
"""Success ``[E, T+1, N]`` (bool) and margin towards the target ``[E, T+1, N]``."""


def foolbox_per_timestep(model: TimestepModel, images: Tensor, targets: Tensor, epsilons: Sequence[float],
                         timesteps: int, options: RPGDOptions) -> Outcome:
    """Success and margin from one Foolbox L2 PGD per timestep."""
    import foolbox as fb

    torch.manual_seed(0)
    success = torch.zeros(len(epsilons), timesteps + 1, len(images), dtype=torch.bool)
    margin = torch.zeros(len(epsilons), timesteps + 1, len(images), dtype=torch.float64)
    for t in range(timesteps + 1):
        logits = LogitsAt(model, t)
        fmodel = fb.PyTorchModel(logits, bounds=(0, 1), device=images.device)
        attack = fb.attacks.L2ProjectedGradientDescentAttack(rel_stepsize=options.rel_stepsize, steps=options.steps,
                                                             random_start=options.random_start)
        _, clipped, hit = attack(fmodel, images, fb.criteria.TargetedMisclassification(targets), epsilons=epsilons)
        success[:, t] = hit.cpu()
        with torch.no_grad():
            for e, x_adv in enumerate(clipped):
                margin[e, t] = margins(logits(x_adv), targets).double().cpu()
    return success, margin


def main() -> None:
    parser = attack_options(__doc__.splitlines()[0], n=20, epsilons="0.5,1,2", epsilons_help="L2 budgets", steps=50,
                            steps_help="PGD iterations")
    parser.add_argument("--rel-stepsize", type=float, default=0.025, help="step length as a fraction of ε")
    parser.add_argument("--device", default="cpu")
    args = parsed(parser)
    device, epsilons = torch.device(args.device), [float(e) for e in args.epsilons.split(",")]
    model = mnist.build(None, {}).to(device)
    with evaluation_mode(model):
        images, targets, ids = right_at_every_timestep(model, args.timesteps, args.n, device)
        print(f"model mnist-pnet (exact gradients), n={len(images)} images, timesteps 0..{args.timesteps}, targeted "
              f"(y+1) mod 10, ε={epsilons}, {args.steps} steps of {args.rel_stepsize}·ε, device {device}, "
              f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats (median)")
        for random_start in (False, True):
            options = RPGDOptions(steps=args.steps, rel_stepsize=args.rel_stepsize, random_start=random_start)

            def engine(options: RPGDOptions = options) -> Outcome:
                out = attack_per_timestep(model, RPGD(options, "l2"), images, targets, epsilons, args.timesteps,
                                          "t", args.batch_size, device, 0, ids, progress=False)
                return out.success, out.margin

            def foolbox(options: RPGDOptions = options) -> Outcome:
                return foolbox_per_timestep(model, images, targets, epsilons, args.timesteps, options)

            contenders: dict[str, Callable[[], Outcome]] = {"foolbox, one attack per timestep": foolbox,
                                                            "pcrobust engine, all (ε, t) batched": engine}
            print(f"random start {random_start}: {load_average()}")
            times, outcomes = interleaved(contenders, args.repeats)
            report(times, outcomes, epsilons, random_start)


def report(times: dict[str, float], outcomes: dict[str, Outcome], epsilons: Sequence[float],
           random_start: bool) -> None:
    """Times, the ratio against Foolbox, success counts per ε and timestep, and their agreement."""
    reference = times["foolbox, one attack per timestep"]
    for name, seconds in times.items():
        print(f"  {name:<40} {seconds:8.2f} s   speed-up vs foolbox ×{reference / seconds:5.2f}")
    for e, eps in enumerate(epsilons):
        print(f"  successes per timestep at ε={eps:g}:")
        for name, (success, _) in outcomes.items():
            print(f"    {name:<40} " + " ".join(str(int(c)) for c in success[e].sum(1).tolist()))
    (foolbox, foolbox_margin), (engine, engine_margin) = outcomes.values()
    agreement = f"  success counts identical: {torch.equal(foolbox.sum(2), engine.sum(2))}, per image: " \
                f"{torch.equal(foolbox, engine)}"
    if not random_start:
        agreement += f", largest margin difference {(foolbox_margin - engine_margin).abs().max():.2e}"
    print(agreement)


if __name__ == "__main__":
    main()
