"""Entry point of the CNN-F family (``pcrobust`` group, name ``cnnf``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import ModelEntry, ModelRegistrar
from pcrobust_cnnf import cifar, fmnist, mnist
from pcrobust_cnnf.options import OPTION_HELP, REFERENCE_HELP


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
        option_help=OPTION_HELP,
        resumable=True,
    ))
    registry.add(ModelEntry(
        name=fmnist.MODEL_NAME,
        description="the paper's Fashion-MNIST CNN-F (4 conv + 3 linear, T = 1): --weights of your own or "
                    "-o reference=CNNF_1_fmnist.pt",
        build=fmnist.build,
        dataset="",
        weight_files=fmnist.weight_files,
        train=fmnist.train,
        option_help=REFERENCE_HELP,
        resumable=True,
    ))
    registry.add(ModelEntry(
        name=cifar.MODEL_NAME,
        description="the paper's CIFAR-10 CNN-F on a WideResNet-40-2 (h after 5 blocks, T = 2): random weights "
                    "or -o reference=CNNF_2_cifar.pt",
        build=cifar.build,
        dataset="cifar10",
        weight_files=cifar.weight_files,
        option_help=REFERENCE_HELP,
    ))
