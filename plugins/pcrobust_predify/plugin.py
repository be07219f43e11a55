"""Entry point of the Predify family (``pcrobust`` group, name ``predify``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistry
from pcrobust_predify import mnist


@hookimpl
def pcrobust_register_models(registry: ModelRegistry) -> None:
    registry.add(ModelEntry(
        name=mnist.MODEL_NAME,
        description="3-pcoder Predify digit net (mnist-5k), shipped weights; options beta, lambda, alpha",
        build=mnist.build,
        dataset="mnist-5k",
        weight_files=mnist.weight_files,
        train=mnist.train,
        default=True,
    ))
