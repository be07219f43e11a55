"""The default run through plans, stored units and the report, against the same numbers from the engine alone.

A: ``pcrobust.evaluation.run`` executes the default plan (clean, Gaussian noise, targeted BIM) into a fresh
temporary folder, storing every unit, assembles the results with their statistics, then writes results.json,
results.csv, the plots and report.html as ``pcrobust evaluate`` does.
B: the same numerical work called directly on the engine: the model built from the same entry, ``predict`` on
the evaluated images clean and under each noise σ (the same per-image draws), and ``attack_per_timestep`` on
the same chosen images, targets and ε; no store, no statistics, no report.

After a warm-up on a tiny plan (data cache, lazy imports), the two run in turn (A B A B ...) in one process;
the script prints each median, the ratio A/B, A's split into the run itself and the report, and whether every
count agrees.

    python benchmarks/plan_overhead.py [--n-clean N] [--n-attack 100] [--timesteps T] [--repeats 3]

Without options it measures the default run (``pcrobust evaluate --plugin predify``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from pcrobust.engine import (
    add_gaussian_noise,
    attack_per_timestep,
    predict,
    resolve_device,
    standard_normal_per_image,
)
from pcrobust.evaluation import run
from pcrobust.kinds.attack_options import AttackSectionOptions
from pcrobust.kinds.noise import NoiseOptions
from pcrobust.models import evaluation_mode
from pcrobust.plan import Plan, parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.results import write_json, write_report
from pcrobust.run.store import RunFolder
from pcrobust.shorthand import plan_from_flags
from pcrobust.targets import choose_targets

Counts = dict[str, list[list[int]]]


def through_plan(host: PluginHost, plan: Plan) -> tuple[Counts, float, float]:
    """A: the plan into a temporary folder, then the report; counts per section, run and report seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp) / "out")
        start = time.perf_counter()
        results = run(host, plan, folder, progress=False)
        assert results is not None
        middle = time.perf_counter()
        path = write_json(results, folder.path / "results.json")
        written = [path, *write_report(results, folder.path)]
        folder.set_outputs([p.name for p in written])
        end = time.perf_counter()
    counts = {section["id"]: [series["counts"] for series in section["series"]] for section in results["sections"]}
    return counts, middle - start, end - middle


def on_engine(host: PluginHost, plan: Plan) -> Counts:
    """B: the same forward passes and attacks, called on the engine directly."""
    clean_section, noise_section, attack_section = plan.sections
    noise, attack_options = noise_section.options, attack_section.options
    assert isinstance(noise, NoiseOptions) and isinstance(attack_options, AttackSectionOptions)
    assert attack_options.norm is not None and attack_options.epsilons is not None
    entry = host.model(plan.model.plugin, plan.model.name)
    dataset = host.registries.datasets.get(plan.data.dataset or entry.dataset)
    model = entry.build(None, plan.model_options())
    data = dataset.load(plan.data.split)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(plan.data.seed))
    evaluated = order[: plan.data.n] if plan.data.n else order
    timesteps = model.default_timesteps if plan.run.timesteps is None else plan.run.timesteps
    batch, device, seed = plan.run.batch_size, resolve_device(plan.run.device), plan.run.seed
    images, labels = data.images[evaluated], data.labels[evaluated]
    attack_entry = host.registries.attacks.get(attack_options.attack)
    attack = attack_entry.make(attack_entry.options.model_validate(attack_options.options), attack_options.norm)
    model = model.to(device)
    with evaluation_mode(model):
        right = predict(model, images, timesteps, batch, device, progress=False).argmax(2) == labels
        counts: Counts = {clean_section.id: [right.sum(1).tolist()]}
        unit_noise = standard_normal_per_image(images.shape[1:], evaluated.tolist(), seed)
        counts[noise_section.id] = []
        for sigma in noise.sigmas:
            noisy = predict(model, add_gaussian_noise(images, sigma, unit_noise), timesteps, batch, device,
                            progress=False)
            counts[noise_section.id].append((noisy.argmax(2) == labels).sum(1).tolist())
        chosen = evaluated[right.all(0)][: attack_options.n]
        targets = choose_targets(attack_options.target_mode, data.labels[chosen], data.num_classes,
                                 image_indices=chosen.tolist(), shift=attack_options.target_shift, seed=seed)
        outcome = attack_per_timestep(model, attack, data.images[chosen], targets, attack_options.epsilons,
                                      timesteps, attack_options.readout, batch, device, seed, chosen.tolist(),
                                      progress=False)
        counts[attack_section.id] = outcome.success.sum(2).tolist()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clean", type=int, default=None, help="evaluated images (default: the whole split)")
    parser.add_argument("--n-attack", type=int, default=None, help="attacked images (default: the plan's, 100)")
    parser.add_argument("--timesteps", type=int, default=None, help="timesteps T (default: the model's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: the plan's, auto)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    host = PluginHost.from_environment()
    flags: dict[str, Any] = {"plugin": "predify", "device": args.device, "n_clean": args.n_clean,
                             "n_attack": args.n_attack, "timesteps": args.timesteps}
    plan = parse_plan(plan_from_flags(flags), host.registries)
    tiny = {**flags, "n_clean": 20, "n_attack": 2, "timesteps": 1}
    warm_up = parse_plan(plan_from_flags(tiny), host.registries)  # data cache, lazy imports, first kernels
    through_plan(host, warm_up)
    on_engine(host, warm_up)
    plan_times: list[float] = []
    run_times: list[float] = []
    report_times: list[float] = []
    engine_times: list[float] = []
    plan_counts: Counts = {}
    engine_counts: Counts = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        plan_counts, run_seconds, report_seconds = through_plan(host, plan)
        plan_times.append(time.perf_counter() - start)
        run_times.append(run_seconds)
        report_times.append(report_seconds)
        start = time.perf_counter()
        engine_counts = on_engine(host, plan)
        engine_times.append(time.perf_counter() - start)
    a, b = statistics.median(plan_times), statistics.median(engine_times)
    ratios = sorted(p / e for p, e in zip(plan_times, engine_times, strict=True))
    given = {key: value for key, value in flags.items() if value is not None}
    print(f"plan {given}, sections {[section.id for section in plan.sections]}, "
          f"device {resolve_device(plan.run.device)}, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats (median)")
    print(f"  A plan, stored units, assembly and report   {a:8.2f} s   (run {statistics.median(run_times):.2f} s, "
          f"report {statistics.median(report_times):.2f} s)")
    print(f"  B engine alone                              {b:8.2f} s")
    print(f"  ratio A/B  ×{a / b:.3f}   (pair by pair: min ×{ratios[0]:.3f}, max ×{ratios[-1]:.3f})")
    for section, rows in engine_counts.items():
        print(f"  {section}: counts per timestep (engine) {rows}")
    print(f"  counts identical (plan vs engine): {plan_counts == engine_counts}")


if __name__ == "__main__":
    main()
