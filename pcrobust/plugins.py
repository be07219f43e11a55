"""The plugin host: finds plugins through the ``pcrobust`` entry-point group and collects their entries.

Every registration hook is called through pluggy once per plugin, restricted to that plugin's implementations
and handed a :class:`~pcrobust.registry.Registrar` bound to its name, so each entry records who added it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from pcrobust import hookspecs
from pcrobust.errors import PcrobustError, UnknownNameError, first_line
from pcrobust.registry import KINDS, ModelEntry, Registrar, Registries, hook_name

ENTRY_POINT_GROUP = "pcrobust"
ALLOW_LIST_VARIABLE = "PCROBUST_PLUGINS"
BUILTIN_NAME = "builtin"


@dataclass(frozen=True)
class PluginInfo:
    """An installed plugin: its entry-point name, distribution and version."""

    name: str
    distribution: str
    version: str


def allow_list_from_environment() -> list[str] | None:
    """Plugin names in ``PCROBUST_PLUGINS`` (comma-separated), or ``None`` when unset (load all).

    The allow-list restricts entry-point plugins to those it names; the core (``builtin``) always loads.
    """
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
        self._load_entry_points(allow)

    @classmethod
    def from_environment(cls) -> PluginHost:
        return cls(allow_list_from_environment())

    def _load_entry_points(self, allow: list[str] | None) -> None:
        """The core's own plugin (entry point ``builtin``) first and always, then the allowed ones by name."""
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if BUILTIN_NAME not in found:
            raise PcrobustError(f"the core's entry point {BUILTIN_NAME!r} is missing: reinstall pcrobust")
        if allow is not None:
            missing = [name for name in allow if name not in found]
            if missing:
                raise UnknownNameError(f"plugin (from {ALLOW_LIST_VARIABLE})", missing[0], list(found))
        for name, ep in sorted(found.items(), key=lambda item: (item[0] != BUILTIN_NAME, item[0])):
            if allow is not None and name not in allow and name != BUILTIN_NAME:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure: name the plugin that broke, in one line
                raise PcrobustError(f"plugin {name!r} failed to load: {first_line(exc)}") from exc
            dist = ep.dist
            info = PluginInfo(name, dist.name if dist else "?", dist.version if dist else "?")
            self.register(plugin, name, info)

    def register(self, plugin: object, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object by hand (tests, notebooks); entry points do this automatically.

        A hook implementation that no spec knows (a misspelt hook name) or whose arguments do not match its spec
        is a one-line :class:`PcrobustError`.
        """
        try:
            self.manager.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PcrobustError(f"plugin {name!r} cannot be registered: {' '.join(str(exc).split())}") from None
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            unknown = _unknown_hook(self.manager, exc.plugin)
            self.manager.unregister(plugin)
            known = ", ".join(hook_name(kind) for kind in KINDS)
            raise PcrobustError(f"plugin {name!r} implements unknown hook {unknown!r}; known hooks: {known}") from None
        self.info[name] = info or PluginInfo(name, "", "")
        self._registries = None

    @property
    def registries(self) -> Registries:
        if self._registries is None:
            self._registries = self._collect()
        return self._registries

    def _collect(self) -> Registries:
        registries = Registries()
        for kind, registry in registries.by_kind().items():
            for name in self.info:
                self._call(hook_name(kind), name, Registrar(registry, name))
        return registries

    def _call(self, hook: str, name: str, registrar: Registrar[Any]) -> None:
        """Call ``hook`` of the plugin called ``name`` alone; a failure other than a user error names the plugin."""
        mine = self.manager.get_plugin(name)
        others = [plugin for plugin in self.manager.get_plugins() if plugin is not mine]
        try:
            self.manager.subset_hook_caller(hook, remove_plugins=others)(registry=registrar)
        except PcrobustError:
            raise
        except Exception as exc:  # a broken plugin: name it, in one line
            raise PcrobustError(f"plugin {name!r} failed in {hook}: {first_line(exc)}") from exc

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
        return {kind: sorted(e.name for e in registry if e.plugin == plugin)
                for kind, registry in self.registries.by_kind().items()}


def _unknown_hook(manager: pluggy.PluginManager, plugin: object) -> str:
    """The name of a hook that ``plugin`` implements and no spec defines."""
    callers = manager.get_hookcallers(plugin) or []
    return next(caller.name for caller in callers if not caller.has_spec()
                and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()))
