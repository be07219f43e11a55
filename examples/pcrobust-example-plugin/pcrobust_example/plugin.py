"""The entry point of the ``lateral`` plugin (group ``pcrobust``): one model family and one attack."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import AttackEntry, AttackRegistrar, ModelEntry, ModelRegistrar
from pcrobust_example import model, training
from pcrobust_example.attack import FGSM, FGSMOptions


@hookimpl
def pcrobust_register_models(registry: ModelRegistrar) -> None:
    registry.add(ModelEntry(
        name=model.MODEL_NAME,
        description="conv net with 3×3 lateral recurrence on real MNIST digits, shipped weights; option gain",
        build=model.build,
        dataset=model.DATASET,
        weight_files=model.weight_files,
        train=training.train,
        default=True,
    ))


@hookimpl
def pcrobust_register_attacks(registry: AttackRegistrar) -> None:
    registry.add(AttackEntry(
        name="fgsm",
        description="FGSM, L∞: one signed-gradient step of rel_stepsize·ε (cross-entropy or margin loss)",
        build=FGSM,
        options=FGSMOptions,
        norms=("linf",),
        default_epsilons={"linf": (0.05, 0.1, 0.2)},
    ))
