"""The hooks a pcrobust plugin may implement (entry-point group ``pcrobust``).

Every hook receives a registrar object and adds entries to it; hooks may gain keyword
arguments later without breaking existing plugins (pluggy passes only what they ask for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pcrobust.registry import AttackRegistry, DatasetRegistry, ModelRegistry

hookspec = pluggy.HookspecMarker("pcrobust")
hookimpl = pluggy.HookimplMarker("pcrobust")


@hookspec
def pcrobust_register_models(registry: ModelRegistry) -> None:
    """Add model entries: ``registry.add(ModelEntry(...))``. Factories are called lazily."""


@hookspec
def pcrobust_register_attacks(registry: AttackRegistry) -> None:
    """Add attack entries: ``registry.add(AttackEntry(...))``."""


@hookspec
def pcrobust_register_datasets(registry: DatasetRegistry) -> None:
    """Add dataset entries: ``registry.add(DatasetEntry(...))``."""
