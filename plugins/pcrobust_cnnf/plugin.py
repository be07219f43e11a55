"""Entry point of the CNN-F family (``pcrobust`` group, name ``cnnf``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistrar
from pcrobust_cnnf import mnist


@hookimpl
def pcrobust_register_models(registry: ModelRegistrar) -> None:
    registry.add(ModelEntry(
        name=mnist.MODEL_NAME,
        description="small CNN-F digit net (3 conv + 2 linear, h after 2 convs; mnist-5k), shipped weights",
        build=mnist.build,
        dataset=mnist.DATASET,
        weight_files=mnist.weight_files,
        train=mnist.train,
        default=True,
        option_help=mnist.OPTION_HELP,
    ))
