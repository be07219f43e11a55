"""The hooks a pcrobust plugin may implement (entry-point group ``pcrobust``).

The host calls every hook through pluggy once per plugin, with a :class:`~pcrobust.registry.Registrar` bound to
that plugin: ``registry.add(entry)`` records the entry with its ``plugin`` field set to the plugin's name.
An implementation may take fewer arguments than the spec (hooks may gain keyword arguments later without
breaking existing plugins), and a ``wrapper=True`` implementation wraps its own plugin's registrations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pcrobust.registry import (
        AttackRegistrar,
        DatasetRegistrar,
        ModelRegistrar,
        PresetRegistrar,
        SectionRegistrar,
    )

hookspec = pluggy.HookspecMarker("pcrobust")
hookimpl = pluggy.HookimplMarker("pcrobust")


@hookspec
def pcrobust_register_models(registry: ModelRegistrar) -> None:
    """Add model entries: ``registry.add(ModelEntry(...))``. Factories are called lazily."""


@hookspec
def pcrobust_register_attacks(registry: AttackRegistrar) -> None:
    """Add attack entries: ``registry.add(AttackEntry(...))``."""


@hookspec
def pcrobust_register_datasets(registry: DatasetRegistrar) -> None:
    """Add dataset entries: ``registry.add(DatasetEntry(...))``."""


@hookspec
def pcrobust_register_sections(registry: SectionRegistrar) -> None:
    """Add section kinds: ``registry.add(section_kind)``.

    A section kind has a unique ``name`` and a ``plugin`` field. A dataclass kind is stamped with
    ``dataclasses.replace(kind, plugin=...)``; any other object must offer ``with_plugin(name)`` returning
    the stamped kind.
    """


@hookspec
def pcrobust_register_presets(registry: PresetRegistrar) -> None:
    """Add named plans: ``registry.add(PresetEntry(name=..., description=..., plan=...))``."""
