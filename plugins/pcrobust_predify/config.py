"""Predify any ``nn.Module`` from a TOML description; module paths and predictors are never ``eval``'d.

```toml
input_size = [1, 28, 28]          # C, H, W of the backbone's input
num_classes = 10
timesteps = 8                     # default number of recurrent updates
normalization = { mean = [0.1307], std = [0.3081] }
[hyperparameters]                 # defaults for every pcoder (the paper's β=0.8, λ=0.1, α=0.01)
beta = 0.8
lambda = 0.1
alpha = 0.01
[[pcoders]]                       # bottom to top
module = "features[1]"            # attribute path inside the backbone
# predictor = [{ layer = "ConvTranspose2d", in_channels = 16, out_channels = 1, kernel_size = 3, padding = 1 }]
# hyperparameters = { beta = 0.5 }   # per-pcoder override
```
Without ``predictor`` a pcoder gets the paper's default: bilinear upsampling (when the spatial
size differs) followed by a 3×3 transposed convolution to the target's channels.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcrobust.errors import PcrobustError
from pcrobust.models import Normalization
from pcrobust_predify.network import PredifyNet, resolve_module
from pcrobust_predify.pcoder import Hyperparameters, PCoder

PREDICTOR_LAYERS: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (nn.ConvTranspose2d, nn.Conv2d, nn.Upsample, nn.ReLU, nn.LeakyReLU, nn.Sigmoid,
                                  nn.Tanh, nn.BatchNorm2d, nn.Identity)
}
_HP_KEYS = {"beta": "beta", "lambda": "lam", "alpha": "alpha"}


@dataclass(frozen=True)
class LayerConfig:
    module: str
    predictor: tuple[Mapping[str, Any], ...] | None
    hyperparameters: Hyperparameters


@dataclass(frozen=True)
class PredifyConfig:
    input_size: tuple[int, ...]
    num_classes: int
    timesteps: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layers: tuple[LayerConfig, ...]


def _hyperparameters(raw: Any, base: Hyperparameters, where: str) -> Hyperparameters:
    if not isinstance(raw, Mapping):
        raise PcrobustError(f"{where}: hyperparameters must be a table")
    unknown = set(raw) - set(_HP_KEYS)
    if unknown:
        raise PcrobustError(f"{where}: unknown hyperparameter {sorted(unknown)[0]!r}; use beta, lambda, alpha")
    try:
        return replace(base, **{_HP_KEYS[k]: float(v) for k, v in raw.items()})
    except (TypeError, ValueError) as exc:
        raise PcrobustError(f"{where}: {exc}") from None


def parse_config(raw: Mapping[str, Any], source: str = "config") -> PredifyConfig:
    """Validate a parsed TOML table into a :class:`PredifyConfig`."""
    required = ("input_size", "num_classes", "pcoders")
    for key in required:
        if key not in raw:
            raise PcrobustError(f"{source}: missing required key {key!r}")
    defaults = _hyperparameters(raw.get("hyperparameters", {}), Hyperparameters(), f"{source} [hyperparameters]")
    pcoders = raw["pcoders"]
    if not isinstance(pcoders, list) or not pcoders:
        raise PcrobustError(f"{source}: 'pcoders' must be a non-empty array of tables")
    layers = []
    for i, entry in enumerate(pcoders):
        where = f"{source} pcoders[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("module"), str):
            raise PcrobustError(f"{where}: needs a 'module' string")
        predictor = entry.get("predictor")
        if predictor is not None and not (isinstance(predictor, list)
                                          and all(isinstance(p, Mapping) for p in predictor)):
            raise PcrobustError(f"{where}: 'predictor' must be an array of tables")
        hps = _hyperparameters(entry.get("hyperparameters", {}), defaults, where)
        layers.append(LayerConfig(entry["module"], tuple(predictor) if predictor else None, hps))
    norm = raw.get("normalization", {})
    channels = int(raw["input_size"][0])
    return PredifyConfig(
        input_size=tuple(int(v) for v in raw["input_size"]),
        num_classes=int(raw["num_classes"]),
        timesteps=int(raw.get("timesteps", 8)),
        mean=tuple(float(v) for v in norm.get("mean", [0.0] * channels)),
        std=tuple(float(v) for v in norm.get("std", [1.0] * channels)),
        layers=tuple(layers),
    )


def load_config(path: Path) -> PredifyConfig:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PcrobustError(f"cannot read Predify config {path}: {exc}") from None
    return parse_config(raw, str(path))


def pcoder_option(key: str) -> tuple[str, int] | None:
    """``"beta.2"`` → ``("beta", 2)``: a hyperparameter of one pcoder (numbered from 1, bottom to top)."""
    name, sep, number = key.partition(".")
    if sep and name in _HP_KEYS and number.isdigit() and int(number) >= 1:
        return name, int(number)
    return None


def _is_hyperparameter(key: str) -> bool:
    return key in _HP_KEYS or pcoder_option(key) is not None


def split_options(options: Mapping[str, str], allowed: tuple[str, ...]) -> tuple[dict[str, float], dict[str, str]]:
    """Separate β/λ/α overrides (``beta``, ``lambda``, ``alpha`` for every pcoder, ``beta.N`` ... for pcoder N
    alone, as numbers) from a model's other ``allowed`` options; any other key is an error naming what is
    accepted."""
    known = (*_HP_KEYS, *allowed)
    unknown = {key for key in options if key not in known and not _is_hyperparameter(key)}
    if unknown:
        raise PcrobustError(f"unknown option {sorted(unknown)[0]!r}; available: {', '.join(known)}, and "
                            "beta.N, lambda.N, alpha.N for pcoder N alone")
    try:
        hyperparameters = {k: float(v) for k, v in options.items() if _is_hyperparameter(k)}
    except ValueError as exc:
        raise PcrobustError(f"hyperparameter values must be numbers: {exc}") from None
    return hyperparameters, {k: v for k, v in options.items() if not _is_hyperparameter(k)}


def layer_overrides(hyperparameters: Mapping[str, float], layers: int) -> list[dict[str, float]]:
    """Per pcoder, its β/λ/α overrides: those of every pcoder, then its own (``beta.N``) on top."""
    overrides: list[dict[str, float]] = [{k: v for k, v in hyperparameters.items() if k in _HP_KEYS}
                                         for _ in range(layers)]
    for key, value in hyperparameters.items():
        own = pcoder_option(key)
        if own is None:
            continue
        name, number = own
        if number > layers:
            raise PcrobustError(f"option {key}: the network has {layers} pcoders (numbered 1 to {layers})")
        overrides[number - 1][name] = value
    return overrides


def build_predictor(spec: tuple[Mapping[str, Any], ...], where: str) -> nn.Module:
    """A ``Sequential`` of allow-listed ``torch.nn`` layers given by name and keyword arguments."""
    layers = []
    for item in spec:
        kwargs = dict(item)
        name = kwargs.pop("layer", None)
        if name not in PREDICTOR_LAYERS:
            raise PcrobustError(f"{where}: predictor layer {name!r} not allowed; use one of "
                                f"{', '.join(sorted(PREDICTOR_LAYERS))}")
        try:
            layers.append(PREDICTOR_LAYERS[name](**kwargs))
        except TypeError as exc:
            raise PcrobustError(f"{where}: {name}: {exc}") from None
    return nn.Sequential(*layers)


def default_predictor(source: torch.Size, target: torch.Size) -> nn.Module:
    """The paper's feedback: upsample to the target size if needed, then a 3×3 transposed convolution."""
    layers: list[nn.Module] = []
    if tuple(source[-2:]) != tuple(target[-2:]):
        layers.append(nn.Upsample(size=tuple(target[-2:]), mode="bilinear", align_corners=False))
    layers.append(nn.ConvTranspose2d(source[0], target[0], kernel_size=3, stride=1, padding=1))
    return nn.Sequential(*layers)


def layer_output_shapes(backbone: nn.Module, paths: list[str], input_size: tuple[int, ...]) -> list[torch.Size]:
    """Per-sample output shapes of the named layers for one dummy input."""
    shapes: list[torch.Size] = []
    handles = [resolve_module(backbone, p).register_forward_hook(lambda m, i, o: shapes.append(o.shape[1:]))
               for p in paths]
    try:
        with torch.no_grad():
            backbone.eval()(torch.zeros(1, *input_size))
    finally:
        for handle in handles:
            handle.remove()
    if len(shapes) != len(paths):
        raise PcrobustError(f"{len(shapes)} of {len(paths)} pcoder layers ran in one forward pass")
    return shapes


def predify(backbone: nn.Module, config: PredifyConfig | Path, *,
            hyperparameters: Mapping[str, float] | None = None, gradient_mode: str = "exact") -> PredifyNet:
    """Wrap ``backbone`` into a :class:`PredifyNet`; ``hyperparameters`` override β/λ/α of every pcoder
    (``beta``) or of pcoder N alone (``beta.N``, applied after those of every pcoder)."""
    cfg = config if isinstance(config, PredifyConfig) else load_config(config)
    paths = [layer.module for layer in cfg.layers]
    shapes = layer_output_shapes(backbone, paths, cfg.input_size)
    targets = [torch.Size(cfg.input_size), *shapes[:-1]]
    pcoders = []
    overrides = layer_overrides(hyperparameters or {}, len(cfg.layers))
    for i, layer in enumerate(cfg.layers):
        hps = _hyperparameters(overrides[i], layer.hyperparameters, f"hyperparameter override of pcoder {i + 1}")
        predictor = (build_predictor(layer.predictor, f"pcoders[{i}]") if layer.predictor
                     else default_predictor(shapes[i], targets[i]))
        pcoders.append(PCoder(predictor, hps, has_feedback=i < len(cfg.layers) - 1))
    try:
        return PredifyNet(backbone, paths, pcoders, Normalization(cfg.mean, cfg.std), cfg.num_classes,
                          cfg.timesteps, gradient_mode)
    except ValueError as exc:
        raise PcrobustError(str(exc)) from None
