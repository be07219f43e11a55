"""The plugin host: finds plugins through the ``pcrobust`` entry-point group and collects their entries.

Every registration hook is called through pluggy once per plugin, restricted to that plugin's implementations
and handed a :class:`~pcrobust.registry.Registrar` bound to its name, so each entry records who added it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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

    def __init__(self, allow: list[str] | None = None, exclude: Sequence[str] = ()) -> None:
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.broken: dict[str, str] = {}  # plugin name → why it was left out (one line)
        self._registries: Registries | None = None
        self.excluded = set(exclude)
        self._load_entry_points(allow, self.excluded)

    @classmethod
    def from_environment(cls, exclude: Sequence[str] = ()) -> PluginHost:
        return cls(allow_list_from_environment(), exclude)

    def _load_entry_points(self, allow: list[str] | None, exclude: set[str]) -> None:
        """The core's own plugin (entry point ``builtin``) first and always, then the allowed ones by name,
        but never those in ``exclude`` (not even imported).

        A plugin that fails to load or to register is left out and recorded in :attr:`broken`; the others load.
        """
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if BUILTIN_NAME not in found:
            raise PcrobustError(f"the core's entry point {BUILTIN_NAME!r} is missing: reinstall pcrobust")
        if allow is not None:
            missing = [name for name in allow if name not in found]
            if missing:
                raise UnknownNameError(f"plugin (from {ALLOW_LIST_VARIABLE})", missing[0], list(found))
        if BUILTIN_NAME in exclude:
            raise PcrobustError(f"the core's plugin {BUILTIN_NAME!r} cannot be excluded")
        unknown = sorted(exclude - set(found))
        if unknown:
            raise UnknownNameError("plugin to exclude", unknown[0], [name for name in found if name != BUILTIN_NAME])
        for name, ep in sorted(found.items(), key=lambda item: (item[0] != BUILTIN_NAME, item[0])):
            if name in exclude or (allow is not None and name not in allow and name != BUILTIN_NAME):
                continue
            try:
                plugin = ep.load()
                dist = ep.dist
                self.register(plugin, name, PluginInfo(name, dist.name if dist else "?", dist.version if dist else "?"))
            except PcrobustError as exc:
                self.broken[name] = str(exc)
            except Exception as exc:  # any import-time failure: name the plugin that broke, in one line
                self.broken[name] = f"plugin {name!r} failed to load: {first_line(exc)}"
        if BUILTIN_NAME in self.broken:
            raise PcrobustError(self.broken[BUILTIN_NAME])

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
        """Fill the registries kind by kind; a plugin whose hook fails is left out with all its entries and
        recorded in :attr:`broken`, and the registries are filled again without it."""
        while True:
            registries = Registries()
            try:
                for kind, registry in registries.by_kind().items():
                    for name in self.info:
                        if name not in self.broken:
                            self._call(hook_name(kind), name, Registrar(registry, name))
                return registries
            except _PluginFailed as failure:
                if failure.plugin == BUILTIN_NAME:
                    raise PcrobustError(failure.message) from None
                self.broken[failure.plugin] = failure.message

    def _call(self, hook: str, name: str, registrar: Registrar[Any]) -> None:
        """Call ``hook`` of the plugin called ``name`` alone; any failure names the plugin, in one line."""
        mine = self.manager.get_plugin(name)
        others = [plugin for plugin in self.manager.get_plugins() if plugin is not mine]
        try:
            self.manager.subset_hook_caller(hook, remove_plugins=others)(registry=registrar)
        except PcrobustError as exc:
            raise _PluginFailed(name, f"plugin {name!r}: {exc}") from exc
        except Exception as exc:  # a broken plugin: name it, in one line
            raise _PluginFailed(name, f"plugin {name!r} failed in {hook}: {first_line(exc)}") from exc

    def plugin(self, name: str) -> PluginInfo:
        """The installed plugin ``name``; a plugin that was left out is an error saying why."""
        self.registries  # noqa: B018 - collecting may leave out plugins whose hooks fail
        if name in self.broken:
            raise PcrobustError(self.broken[name])
        if name in self.excluded:
            raise PcrobustError(f"plugin {name!r} is excluded (--exclude-plugin {name})")
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
        default = self.default_model(plugin)
        if default is None:
            raise PcrobustError(f"plugin {plugin!r} registers no models")
        return self.registries.models.get(default)

    def default_model(self, plugin: str) -> str | None:
        """The model ``--plugin`` alone evaluates, or ``None`` for a plugin without models."""
        mine = [entry for entry in self.registries.models if entry.plugin == plugin]
        return next((entry.name for entry in mine if entry.default), mine[0].name if mine else None)

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` registered, by kind."""
        return {kind: sorted(e.name for e in registry if e.plugin == plugin)
                for kind, registry in self.registries.by_kind().items()}


class _PluginFailed(Exception):
    """A plugin's hook failed while the registries were filled."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(message)
        self.plugin, self.message = plugin, message


def _unknown_hook(manager: pluggy.PluginManager, plugin: object) -> str:
    """The name of a hook that ``plugin`` implements and no spec defines."""
    callers = manager.get_hookcallers(plugin) or []
    return next(caller.name for caller in callers if not caller.has_spec()
                and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()))
