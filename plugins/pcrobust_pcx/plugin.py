"""Entry point of the PC-trained family (``pcrobust`` group, name ``pcx``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistrar
from pcrobust_pcx import mnist


@hookimpl
def pcrobust_register_models(registry: ModelRegistrar) -> None:
    registry.add(ModelEntry(
        name=mnist.MODEL_NAME,
        description="PC-trained digit MLP with top-down predictions; timesteps are energy-descent steps on its "
                    "hidden states (mnist-5k), shipped weights",
        build=mnist.build,
        dataset=mnist.DATASET,
        weight_files=mnist.weight_files,
        train=mnist.train,
        default=True,
        option_help=mnist.OPTION_HELP,
    ))
