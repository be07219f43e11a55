"""Hooks are called through pluggy, one plugin at a time, with a registrar that attributes every entry."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pytest

from pcrobust import hookimpl
from pcrobust.attacks import GradientAttackOptions
from pcrobust.errors import PcrobustError
from pcrobust.plugins import PluginHost
from pcrobust.registry import KINDS, AttackEntry, DatasetEntry
from pcrobust_attacks.bim import BIM


def attack(name: str, plugin: str = "") -> AttackEntry:
    return AttackEntry(name=name, description="test attack", build=BIM, plugin=plugin,
                       options=GradientAttackOptions, norms=("linf",), default_epsilons={"linf": (0.1,)})


@dataclass(frozen=True)
class Section:
    name: str
    plugin: str = ""


class ObjectSection:
    """A section kind that is not a dataclass: it attributes itself through ``with_plugin``."""

    def __init__(self, name: str, plugin: str = "") -> None:
        self.name, self.plugin = name, plugin

    def with_plugin(self, plugin: str) -> ObjectSection:
        return ObjectSection(self.name, plugin)


def host_with(**plugins: object) -> PluginHost:
    host = PluginHost(allow=[])
    for name, plugin in plugins.items():
        host.register(plugin, name)
    return host


def test_an_implementation_may_take_fewer_arguments_than_the_spec():
    calls: list[str] = []

    class NoArguments:
        @hookimpl
        def pcrobust_register_attacks(self) -> None:
            calls.append("attacks")

    host = host_with(bare=NoArguments())
    assert host.registries.attacks.names() == []
    assert calls == ["attacks"]


def test_a_wrapper_sees_its_own_plugins_registrations():
    seen: list[tuple[list[str], list[str]]] = []

    class Wrapped:
        @hookimpl
        def pcrobust_register_attacks(self, registry):
            registry.add(attack("b"))
            registry.add(attack("a"))

        @hookimpl(wrapper=True, specname="pcrobust_register_attacks")
        def around(self, registry):
            before = registry.names()
            result = yield
            seen.append((before, registry.names()))
            registry.add(attack("added-by-wrapper"))
            return result

    other = ModuleType("other")
    other.pcrobust_register_attacks = hookimpl(lambda registry: registry.add(attack("theirs")))
    host = host_with(other=other, wrapped=Wrapped())
    assert host.registered_by("wrapped")["attacks"] == ["a", "added-by-wrapper", "b"]
    assert seen == [([], ["a", "b"])]  # once: it wraps its own plugin's implementations, not the other's


def test_every_entry_is_attributed_to_the_plugin_that_added_it():
    class First:
        @hookimpl
        def pcrobust_register_attacks(self, registry):
            registry.add(attack("one", plugin="someone-else"))

        @hookimpl
        def pcrobust_register_sections(self, registry):
            registry.add(Section("my-clean"))

    class Second:
        @hookimpl
        def pcrobust_register_attacks(self, registry):
            registry.add(attack("two"))

        @hookimpl
        def pcrobust_register_sections(self, registry):
            registry.add(ObjectSection("my-noise"))

    host = host_with(first=First(), second=Second())
    attacks, sections = host.registries.attacks, host.registries.sections
    assert (attacks.get("one").plugin, attacks.get("two").plugin) == ("first", "second")
    assert (sections.get("my-clean").plugin, sections.get("my-noise").plugin) == ("first", "second")
    assert host.registered_by("second") == {"datasets": [], "models": [], "attacks": ["two"], "sections": ["my-noise"],
                                            "presets": []}


def test_registries_are_filled_kind_by_kind_in_a_fixed_order():
    order: list[str] = []

    class Recorder:
        pass

    recorder = Recorder()
    for kind in reversed(KINDS):
        setattr(recorder, f"pcrobust_register_{kind}", hookimpl(lambda kind=kind: order.append(kind)))
    host_with(recorder=recorder).registries.sections.names()
    assert order == ["datasets", "models", "attacks", "sections", "presets"]


@dataclass(frozen=True)
class NoPluginField:
    name: str


class NoWithPlugin:
    name, plugin = "odd", ""


@pytest.mark.parametrize("section, problem", [
    (NoPluginField("odd"), "cannot record its plugin: .*plugin"),
    (NoWithPlugin(), r"is neither a dataclass nor offers with_plugin\(name\)$"),
])
def test_a_section_kind_that_cannot_be_attributed_is_a_one_line_error(section, problem):
    class Odd:
        @hookimpl
        def pcrobust_register_sections(self, registry):
            registry.add(section)

    host = host_with(odd=Odd())
    with pytest.raises(PcrobustError, match=f"^plugin 'odd': section kind 'odd' of plugin 'odd' {problem}"):
        host.plugin("odd")


def test_a_misspelt_hook_registered_by_hand_is_refused_and_not_kept():
    class Typo:
        @hookimpl
        def pcrobust_register_atacks(self, registry):
            pass

    host = PluginHost(allow=[])
    with pytest.raises(PcrobustError, match="^plugin 'typo' implements unknown hook 'pcrobust_register_atacks'"):
        host.register(Typo(), "typo")
    assert host.manager.get_plugin("typo") is None and "typo" not in host.info
    host.register(ModuleType("fine"), "fine")  # the refused plugin does not fail later registrations


def test_an_argument_the_spec_lacks_is_a_one_line_error():
    class Misnamed:
        @hookimpl
        def pcrobust_register_models(self, registrar):
            pass

    with pytest.raises(PcrobustError, match="^plugin 'misnamed' cannot be registered: .*registrar") as caught:
        host_with(misnamed=Misnamed())
    assert "\n" not in str(caught.value)


def test_a_failing_hook_names_the_plugin_in_one_line():
    class Broken:
        @hookimpl
        def pcrobust_register_datasets(self, registry):
            registry.add(DatasetEntry(name="d", description="", splits=("test",), load=lambda split: None))
            raise RuntimeError("no data here\nsecond line")

    class Fine:
        @hookimpl
        def pcrobust_register_datasets(self, registry):
            registry.add(DatasetEntry(name="e", description="", splits=("test",), load=lambda split: None))

    host = host_with(broken=Broken(), fine=Fine())
    assert host.registries.datasets.names() == ["e"], "a broken plugin's entries go, the others' stay"
    with pytest.raises(PcrobustError, match="^plugin 'broken' failed in pcrobust_register_datasets: no data here$"):
        host.plugin("broken")
