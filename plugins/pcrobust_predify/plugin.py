"""Entry point of the Predify family (``pcrobust`` group, name ``predify``)."""

from __future__ import annotations

from functools import partial

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistrar, PresetEntry, PresetRegistrar
from pcrobust_predify import custom, lite0, mnist, presets, recipes

DYNAMICS_HELP = {
    "beta": "feedforward weight β of every pcoder (β + λ ≤ 1) [default: the network's]",
    "lambda": "feedback weight λ of every pcoder [default: the network's]",
    "alpha": "error-correction rate α of every pcoder [default: the network's]",
}
RECIPE_HELP = {
    **DYNAMICS_HELP,
    "backbone": "torchvision weights file of the backbone (with feedback_dir, instead of --weights)",
    "feedback_dir": "folder of the reference pcoders' feedback weights '*pc<n>_*.pth' (with backbone)",
}
CUSTOM_HELP = {
    **DYNAMICS_HELP,
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
        option_help=DYNAMICS_HELP,
    ))
    registry.add(ModelEntry(
        name=lite0.MODEL_NAME,
        description="8-pcoder PEfficientNet-Lite0 over ImageNet-pretrained EfficientNet-Lite0, shipped feedback "
                    "(needs the imagenet extra)",
        build=lite0.build,
        dataset=lite0.DATASET,
        weight_files=lite0.weight_files,
        train=lite0.train,
        option_help=DYNAMICS_HELP,
    ))
    for name, recipe in recipes.RECIPES.items():
        registry.add(ModelEntry(
            name=name,
            description=RECIPE_DESCRIPTIONS[name],
            build=partial(recipes.build_recipe, recipe),
            dataset="foolbox-imagenet",
            weight_files=recipes.weight_files,
            option_help=RECIPE_HELP,
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
