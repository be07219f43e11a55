"""Entry point of the Predify family (``pcrobust`` group, name ``predify``)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistrar, PresetEntry, PresetRegistrar
from pcrobust_predify import custom, lite0, mnist, presets, recipes
from pcrobust_predify.config import load_config

DYNAMICS_HELP = {
    "beta": "feedforward weight β of every pcoder (β + λ ≤ 1) [default: the network's]",
    "lambda": "feedback weight λ of every pcoder [default: the network's]",
    "alpha": "error-correction rate α of every pcoder [default: the network's]",
}


def dynamics_help(config: Path) -> dict[str, str]:
    """The β/λ/α options of every pcoder and of each pcoder of the network ``config`` describes alone."""
    pcoders = len(load_config(config).layers)
    own = {f"{key}.{n}": f"{symbol} of pcoder {n} alone (1 = the lowest), after {key}"
           for n in range(1, pcoders + 1) for key, symbol in (("beta", "β"), ("lambda", "λ"), ("alpha", "α"))}
    return {**DYNAMICS_HELP, **own}


FILE_HELP = {
    "backbone": "torchvision weights file of the backbone (with feedback_dir, instead of --weights)",
    "feedback_dir": "folder of the reference pcoders' feedback weights '*pc<n>_*.pth' (with backbone)",
}
CUSTOM_HELP = {
    **DYNAMICS_HELP,
    "beta": "feedforward weight β of every pcoder (β + λ ≤ 1; beta.N, lambda.N, alpha.N: pcoder N alone) "
            "[default: the config's]",
    "config": "TOML file naming the pcoders' layers, input size, classes and normalisation (required)",
    "backbone": "module:factory returning the backbone nn.Module (required)",
}
RECIPE_DESCRIPTIONS = {
    "pvgg16": "PVGG16 over torchvision vgg16, 5 pcoders, local weights (needs torchvision)",
    "pefficientnetb0": "PEfficientNetB0 over torchvision efficientnet_b0, 8 pcoders, local weights (needs torchvision)",
}


@hookimpl
def pcrobust_register_models(registry: ModelRegistrar) -> None:
    registry.add(ModelEntry(
        name=mnist.MODEL_NAME,
        description="3-pcoder Predify digit net (mnist-5k), shipped weights",
        build=mnist.build,
        dataset=mnist.DATASET,
        weight_files=mnist.weight_files,
        train=mnist.train,
        default=True,
        option_help=dynamics_help(mnist.config_path()),
    ))
    registry.add(ModelEntry(
        name=lite0.MODEL_NAME,
        description="8-pcoder PEfficientNet-Lite0 over ImageNet-pretrained EfficientNet-Lite0, shipped feedback "
                    "(needs the imagenet extra)",
        build=lite0.build,
        dataset=lite0.DATASET,
        weight_files=lite0.weight_files,
        train=lite0.train,
        option_help=dynamics_help(lite0.config_path()),
    ))
    for name, recipe in recipes.RECIPES.items():
        registry.add(ModelEntry(
            name=name,
            description=RECIPE_DESCRIPTIONS[name],
            build=partial(recipes.build_recipe, recipe),
            dataset="foolbox-imagenet",
            weight_files=recipes.weight_files,
            option_help={**dynamics_help(recipe.config_path), **FILE_HELP},
        ))
    registry.add(ModelEntry(
        name=custom.MODEL_NAME,
        description="your backbone predified by a TOML config: -o config=FILE -o backbone=module:factory",
        build=custom.build,
        dataset="",
        weight_files=custom.weight_files,
        train=custom.train,
        option_help=CUSTOM_HELP,
    ))


@hookimpl
def pcrobust_register_presets(registry: PresetRegistrar) -> None:
    for name, description in presets.PRESETS.items():
        registry.add(PresetEntry(name=name, description=description, plan=partial(presets.load, name)))
