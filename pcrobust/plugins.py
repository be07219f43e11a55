"""The plugin host: finds plugins through the ``pcrobust`` entry-point group and collects their entries."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from pcrobust import __version__, builtin, hookspecs
from pcrobust.errors import PcrobustError, UnknownNameError, first_line
from pcrobust.registry import AttackRegistry, DatasetRegistry, ModelEntry, ModelRegistry, Registry

ENTRY_POINT_GROUP = "pcrobust"
ALLOW_LIST_VARIABLE = "PCROBUST_PLUGINS"
BUILTIN_NAME = "builtin"


@dataclass(frozen=True)
class PluginInfo:
    """An installed plugin: its entry-point name, distribution and version."""

    name: str
    distribution: str
    version: str


@dataclass
class Registries:
    models: ModelRegistry = field(default_factory=lambda: Registry("model"))
    attacks: AttackRegistry = field(default_factory=lambda: Registry("attack"))
    datasets: DatasetRegistry = field(default_factory=lambda: Registry("dataset"))


def allow_list_from_environment() -> list[str] | None:
    """Plugin names in ``PCROBUST_PLUGINS`` (comma-separated), or ``None`` when unset (load all)."""
    raw = os.environ.get(ALLOW_LIST_VARIABLE)
    if raw is None:
        return None
    return [name.strip() for name in raw.split(",") if name.strip()]


class PluginHost:
    """A pluggy manager holding the built-in entries and every allowed entry-point plugin."""

    def __init__(self, allow: list[str] | None = None) -> None:
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._registries: Registries | None = None
        self.register(builtin, BUILTIN_NAME, PluginInfo(BUILTIN_NAME, "pcrobust", __version__))
        self._load_entry_points(allow)

    @classmethod
    def from_environment(cls) -> PluginHost:
        return cls(allow_list_from_environment())

    def _load_entry_points(self, allow: list[str] | None) -> None:
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if allow is not None:
            missing = [name for name in allow if name not in found]
            if missing:
                raise UnknownNameError(f"plugin (from {ALLOW_LIST_VARIABLE})", missing[0], list(found))
        for name, ep in sorted(found.items()):
            if allow is not None and name not in allow:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure: name the plugin that broke, in one line
                raise PcrobustError(f"plugin {name!r} failed to load: {first_line(exc)}") from exc
            dist = ep.dist
            info = PluginInfo(name, dist.name if dist else "?", dist.version if dist else "?")
            self.register(plugin, name, info)

    def register(self, plugin: object, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object by hand (tests, notebooks); entry points do this automatically."""
        self.manager.register(plugin, name=name)
        self.info[name] = info or PluginInfo(name, "", "")
        self._registries = None

    @property
    def registries(self) -> Registries:
        if self._registries is None:
            self._registries = self._collect()
        return self._registries

    def _collect(self) -> Registries:
        registries = Registries()
        hooks: list[tuple[str, Registry[Any]]] = [
            ("pcrobust_register_datasets", registries.datasets),
            ("pcrobust_register_models", registries.models),
            ("pcrobust_register_attacks", registries.attacks),
        ]
        for hook_name, registry in hooks:
            for impl in reversed(getattr(self.manager.hook, hook_name).get_hookimpls()):
                registry.current_plugin = impl.plugin_name
                impl.function(registry=registry)
            registry.current_plugin = ""
        return registries

    def plugin(self, name: str) -> PluginInfo:
        if name not in self.info:
            raise UnknownNameError("plugin", name, [n for n in self.info if n != BUILTIN_NAME])
        return self.info[name]

    def model(self, plugin: str, model: str | None) -> ModelEntry:
        """The named model, or the plugin's default model when ``model`` is ``None``."""
        self.plugin(plugin)
        mine = [entry for entry in self.registries.models if entry.plugin == plugin]
        if model is not None:
            entry = self.registries.models.get(model)
            if entry.plugin != plugin:
                raise UnknownNameError(f"model of plugin {plugin!r}", model, [e.name for e in mine])
            return entry
        defaults = [entry for entry in mine if entry.default] or mine
        if not defaults:
            raise PcrobustError(f"plugin {plugin!r} registers no models")
        return defaults[0]

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` registered, by kind."""
        regs = self.registries
        return {
            kind: sorted(e.name for e in registry if e.plugin == plugin)
            for kind, registry in (("models", regs.models), ("attacks", regs.attacks), ("datasets", regs.datasets))
        }
