"""One evaluation run: resolve plugin entries, run the engine, and assemble the results document."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcrobust import __version__
from pcrobust.attacks import Attack, AttackSettings
from pcrobust.config import EvaluationConfig
from pcrobust.datasets import LabeledImages, sha256_of
from pcrobust.engine import add_gaussian_noise, attack_per_timestep, predict, resolve_device, standard_normal_per_image
from pcrobust.errors import PcrobustError
from pcrobust.models import TimestepModel, evaluation_mode
from pcrobust.plugins import PluginHost
from pcrobust.registry import ModelEntry
from pcrobust.results import SCHEMA
from pcrobust.targets import choose_targets

SELECTION_RULE = "images in the order of a permutation of the split seeded by `seed`"
NOISE_RULE = ("x + σ·z clipped to [0, 1]; σ in pixel units of images in [0, 1]; z ~ N(0, I) drawn per image "
              "from a generator seeded by (seed, image index in the split), shared across σ")


def _accuracy(correct: torch.Tensor) -> dict[str, Any]:
    """``correct`` is ``[T+1, N]`` booleans."""
    counts = correct.sum(1)
    return {"n": int(correct.shape[1]), "correct": counts.tolist(),
            "accuracy": (counts.double() / correct.shape[1]).tolist()}


@dataclass(frozen=True)
class Setup:
    """Everything a run needs, resolved and validated before any work starts."""

    entry: ModelEntry
    weights: Path | None
    model: TimestepModel
    attack: Attack | None
    data: LabeledImages
    device: torch.device
    timesteps: int


def resolve(host: PluginHost, config: EvaluationConfig) -> Setup:
    """Look up every named entry and check every setting; raises :class:`PcrobustError` on bad input."""
    entry = host.model(config.plugin, config.model)
    dataset_name = config.dataset or entry.dataset
    if not dataset_name:
        raise PcrobustError(f"model {entry.name!r} has no default dataset; name one with --dataset")
    dataset_entry = host.registries.datasets.get(dataset_name)
    if config.split not in dataset_entry.splits:
        raise PcrobustError(f"unknown split {config.split!r} of {dataset_entry.name}; "
                            f"available: {', '.join(dataset_entry.splits)}")
    attack_entry = host.registries.attacks.get(config.attack) if config.attack else None
    try:
        device = resolve_device(config.device)
        settings = AttackSettings(config.steps, config.rel_stepsize, config.random_start)
    except ValueError as exc:
        raise PcrobustError(str(exc)) from None
    weights = Path(config.weights) if config.weights else None
    model = entry.build(weights, config.model_options)
    try:
        if config.gradient_mode is not None:
            model.set_gradient_mode(config.gradient_mode)
    except ValueError as exc:
        raise PcrobustError(str(exc)) from None
    timesteps = model.default_timesteps if config.timesteps is None else config.timesteps
    attack = attack_entry.build(settings) if attack_entry else None
    data = dataset_entry.load(config.split)
    if attack and config.target_mode == "shift" and config.target_shift % data.num_classes == 0:
        raise PcrobustError(f"target shift {config.target_shift} maps every label onto itself with "
                            f"{data.num_classes} classes")
    return Setup(entry, weights, model, attack, data, device, timesteps)


def _attack_results(setup: Setup, attack: Attack, config: EvaluationConfig, images: torch.Tensor,
                    labels: torch.Tensor, clean_logits: torch.Tensor,
                    image_indices: torch.Tensor) -> list[dict[str, Any]]:
    """Targeted attacks on the first ``n_attack`` images that are right at every timestep (none: no entries)."""
    always_right = (clean_logits.argmax(2) == labels).all(0).nonzero().flatten()[: config.n_attack]
    if len(always_right) == 0:
        return []
    targets = choose_targets(config.target_mode, labels[always_right], setup.data.num_classes,
                             shift=config.target_shift, seed=config.seed,
                             feedforward_logits=clean_logits[0, always_right])
    outcome = attack_per_timestep(setup.model, attack, images[always_right], targets, config.epsilons,
                                  setup.timesteps, config.attack_readout, config.batch_size,
                                  setup.device, config.seed, config.progress)
    results = []
    for row, epsilon in enumerate(config.epsilons):
        rates = (outcome.successes[row].double() / outcome.n).tolist()
        results.append({
            "attack": config.attack, **attack.describe(), "epsilon": epsilon,
            "attacked_readout": config.attack_readout, "scored_readout": "t",
            "gradient_mode": setup.model.gradient_mode,
            "target_mode": config.target_mode, "n": outcome.n,
            "successes": outcome.successes[row].tolist(), "success_rate": rates,
            "success_rate_change_from_t0": [r - rates[0] for r in rates],
            "image_indices": image_indices[always_right].tolist(),
        })
    return results


def run_evaluation(host: PluginHost, config: EvaluationConfig) -> dict[str, Any]:
    """Evaluate the configured model; returns a ``pcrobust.results/1`` document."""
    return run(host, resolve(host, config), config)


def run(host: PluginHost, setup: Setup, config: EvaluationConfig) -> dict[str, Any]:
    """Evaluate a resolved setup at every timestep."""
    model, device, timesteps = setup.model, setup.device, setup.timesteps
    torch.manual_seed(config.seed)
    order = torch.randperm(len(setup.data), generator=torch.Generator().manual_seed(config.seed))
    chosen = order[: config.n_clean] if config.n_clean else order
    images, labels = setup.data.images[chosen], setup.data.labels[chosen]
    model.to(device)
    with evaluation_mode(model):
        logits = predict(model, images, timesteps, config.batch_size, device, progress=config.progress)
        unit_noise = standard_normal_per_image(images.shape[1:], chosen.tolist(), config.seed)
        noise = []
        for sigma in config.noise_sigmas:
            noisy = add_gaussian_noise(images, sigma, unit_noise)
            noisy_logits = predict(model, noisy, timesteps, config.batch_size, device, f"noise σ={sigma}",
                                   config.progress)
            noise.append({"sigma": sigma, **_accuracy(noisy_logits.argmax(2) == labels)})
        attacks = (_attack_results(setup, setup.attack, config, images, labels, logits, chosen)
                   if setup.attack else [])

    weight_files = setup.entry.weight_files(setup.weights, config.model_options)
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "timesteps": list(range(timesteps + 1)),
        "model": {"plugin": config.plugin, "name": setup.entry.name, **model.describe()},
        "dataset": {**setup.data.describe(), "n_evaluated": len(chosen), "selection": SELECTION_RULE},
        "clean": _accuracy(logits.argmax(2) == labels),
        "attacks": attacks,
        "noise": noise,
        "noise_protocol": NOISE_RULE,
        "attack_protocol": ("targeted; the first n evaluated images classified correctly at every timestep "
                            "0..T (no attack entries when there are none); one target per image for all "
                            "timesteps; success = argmax of the scored readout equals the target; epsilons "
                            "in pixel units of images in [0, 1]"),
        "provenance": {
            "pcrobust": __version__,
            "plugins": {name: info.version for name, info in host.info.items()},
            "torch": str(torch.__version__),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "seed": config.seed,
            "gradient_mode": model.gradient_mode,
            "config": config.to_dict(),
            "weights": {str(path.name): sha256_of(path) for path in weight_files},
        },
    }
