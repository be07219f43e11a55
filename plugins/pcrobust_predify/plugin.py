"""Entry point of the Predify family (``pcrobust`` group, name ``predify``)."""

from __future__ import annotations

from functools import partial

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistrar, PresetEntry, PresetRegistrar
from pcrobust_predify import custom, mnist, presets, recipes

RECIPE_DESCRIPTIONS = {
    "pvgg16": "PVGG16 over torchvision vgg16, 5 pcoders, local weights (needs torchvision)",
    "pefficientnetb0": "PEfficientNetB0 over torchvision efficientnet_b0, 8 pcoders, local weights (needs torchvision)",
}


@hookimpl
def pcrobust_register_models(registry: ModelRegistrar) -> None:
    registry.add(ModelEntry(
        name=mnist.MODEL_NAME,
        description="3-pcoder Predify digit net (mnist-5k), shipped weights; options beta, lambda, alpha",
        build=mnist.build,
        dataset=mnist.DATASET,
        weight_files=mnist.weight_files,
        train=mnist.train,
        default=True,
    ))
    for name, recipe in recipes.RECIPES.items():
        registry.add(ModelEntry(
            name=name,
            description=RECIPE_DESCRIPTIONS[name],
            build=partial(recipes.build_recipe, recipe),
            dataset="foolbox-imagenet",
            weight_files=recipes.weight_files,
        ))
    registry.add(ModelEntry(
        name=custom.MODEL_NAME,
        description="your backbone predified by a TOML config: -o config=FILE -o backbone=module:factory",
        build=custom.build,
        dataset="",
        weight_files=custom.weight_files,
        train=custom.train,
    ))


@hookimpl
def pcrobust_register_presets(registry: PresetRegistrar) -> None:
    for name, description in presets.PRESETS.items():
        registry.add(PresetEntry(name=name, description=description, plan=partial(presets.load, name)))
