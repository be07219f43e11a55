"""One evaluation run: resolve plugin entries, run the engine, and assemble the results document."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from pcrobust import __version__
from pcrobust.attacks import AttackSettings
from pcrobust.config import EvaluationConfig
from pcrobust.datasets import sha256_of
from pcrobust.engine import add_gaussian_noise, attack_per_timestep, predict, resolve_device, standard_normal_per_image
from pcrobust.errors import PcrobustError
from pcrobust.models import evaluation_mode
from pcrobust.plugins import PluginHost
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


def run_evaluation(host: PluginHost, config: EvaluationConfig, progress: bool = True) -> dict[str, Any]:
    """Evaluate the configured model; returns a ``pcrobust.results/1`` document."""
    entry = host.model(config.plugin, config.model)
    weights = Path(config.weights) if config.weights else None
    model = entry.build(weights, config.model_options)
    try:
        if config.gradient_mode is not None:
            model.set_gradient_mode(config.gradient_mode)
        device = resolve_device(config.device)
        settings = AttackSettings(config.steps, config.rel_stepsize, config.random_start)
    except ValueError as exc:
        raise PcrobustError(str(exc)) from None
    attack = host.registries.attacks.get(config.attack).build(settings) if config.attack else None
    dataset_entry = host.registries.datasets.get(config.dataset or entry.dataset)
    if config.split not in dataset_entry.splits:
        raise PcrobustError(f"unknown split {config.split!r} of {dataset_entry.name}; "
                            f"available: {', '.join(dataset_entry.splits)}")
    data = dataset_entry.load(config.split)
    timesteps = model.default_timesteps if config.timesteps is None else config.timesteps
    torch.manual_seed(config.seed)

    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    chosen = order[: config.n_clean] if config.n_clean else order
    images, labels = data.images[chosen], data.labels[chosen]
    model.to(device)
    with evaluation_mode(model):
        logits = predict(model, images, timesteps, config.batch_size, device, progress=progress)
        clean_correct = logits.argmax(2) == labels
        unit_noise = standard_normal_per_image(images.shape[1:], chosen.tolist(), config.seed)
        noise = []
        for sigma in config.noise_sigmas:
            noisy = add_gaussian_noise(images, sigma, unit_noise)
            noisy_logits = predict(model, noisy, timesteps, config.batch_size, device, f"noise σ={sigma}", progress)
            noise.append({"sigma": sigma, **_accuracy(noisy_logits.argmax(2) == labels)})
        attacks = []
        if attack is not None:
            always_right = clean_correct.all(0).nonzero().flatten()[: config.n_attack]
            if len(always_right) == 0:
                raise PcrobustError("no image is classified correctly at every timestep; nothing to attack")
            targets = choose_targets(config.target_mode, labels[always_right], data.num_classes,  # type: ignore[arg-type]
                                     shift=config.target_shift, seed=config.seed,
                                     feedforward_logits=logits[0, always_right])
            outcome = attack_per_timestep(model, attack, images[always_right], targets, config.epsilons, timesteps,
                                          config.attack_readout, config.batch_size, device,  # type: ignore[arg-type]
                                          config.seed, progress)
            for row, epsilon in enumerate(config.epsilons):
                rates = (outcome.successes[row].double() / outcome.n).tolist()
                attacks.append({
                    "attack": config.attack, **attack.describe(), "epsilon": epsilon,
                    "attacked_readout": config.attack_readout, "scored_readout": "t",
                    "target_mode": config.target_mode, "n": outcome.n,
                    "successes": outcome.successes[row].tolist(), "success_rate": rates,
                    "success_rate_change_from_t0": [r - rates[0] for r in rates],
                    "image_indices": chosen[always_right].tolist(),
                })

    weight_files = entry.weight_files(weights)
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timesteps": list(range(timesteps + 1)),
        "model": {"plugin": config.plugin, "name": entry.name, **model.describe()},
        "dataset": {**data.describe(), "n_evaluated": len(chosen), "selection": SELECTION_RULE},
        "clean": _accuracy(clean_correct),
        "attacks": attacks,
        "noise": noise,
        "noise_protocol": NOISE_RULE,
        "attack_protocol": ("targeted; the first n evaluated images classified correctly at every timestep "
                            "0..T; one target per image for all timesteps; success = argmax of the scored "
                            "readout equals the target; epsilons in pixel units of images in [0, 1]"),
        "provenance": {
            "pcrobust": __version__,
            "plugins": {name: info.version for name, info in host.info.items()},
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "device": str(device),
            "seed": config.seed,
            "gradient_mode": model.gradient_mode,
            "config": config.to_dict(),
            "weights": {str(path.name): sha256_of(path) for path in weight_files},
        },
    }
