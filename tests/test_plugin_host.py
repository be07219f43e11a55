"""The plugin host: entry points, the allow-list, unknown names, duplicates, a third-party package."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from pcrobust.errors import PcrobustError, UnknownNameError
from pcrobust.plugins import PluginHost
from pcrobust.registry import AttackEntry
from pcrobust_attacks.bim import TargetedBIM

THIRD_PARTY = '''
from pcrobust import hookimpl
from pcrobust.registry import AttackEntry
from pcrobust_attacks.bim import TargetedBIM

@hookimpl
def pcrobust_register_attacks(registry):
    registry.add(AttackEntry(name="fake-bim", description="a third-party attack", build=TargetedBIM))
'''


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed third-party distribution ``fakeplug`` exposing one entry point."""
    (tmp_path / "fakeplug.py").write_text(THIRD_PARTY)
    info = tmp_path / "fakeplug-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[pcrobust]\nfake = fakeplug\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_first_party_plugins_come_from_entry_points():
    host = PluginHost()
    assert {"predify", "attacks"} <= set(host.info)
    assert host.info["predify"].distribution == "pcrobust"
    assert host.registered_by("predify")["models"] == ["custom", "mnist-pnet", "pefficientnetb0", "pvgg16"]
    assert host.registered_by("attacks")["attacks"] == ["bim"]
    assert host.registries.models.get("mnist-pnet").plugin == "predify"


def test_third_party_package_registers_like_first_party(third_party):
    host = PluginHost()
    assert host.info["fake"].version == "1.2.3" and host.info["fake"].distribution == "fakeplug"
    assert host.registries.attacks.get("fake-bim").plugin == "fake"


def test_allow_list_loads_only_named_plugins(third_party, monkeypatch):
    monkeypatch.setenv("PCROBUST_PLUGINS", "predify")
    host = PluginHost.from_environment()
    assert set(host.info) == {"builtin", "predify"}
    assert host.registries.attacks.names() == []
    assert host.registries.datasets.names() == ["foolbox-imagenet", "mnist-5k"]  # the core always loads


def test_unknown_allow_list_name_lists_what_exists(monkeypatch):
    monkeypatch.setenv("PCROBUST_PLUGINS", "predify,nope")
    expected = r"unknown plugin \(from PCROBUST_PLUGINS\) 'nope'; available: .*predify"
    with pytest.raises(UnknownNameError, match=expected):
        PluginHost.from_environment()


def test_unknown_names_list_what_exists():
    host = PluginHost()
    with pytest.raises(UnknownNameError, match="unknown plugin 'cnnf'; available: attacks, predify"):
        host.model("cnnf", None)
    with pytest.raises(UnknownNameError, match="unknown model .pvgg.; available: custom, mnist-pnet, pefficientnetb0"):
        host.model("predify", "pvgg")
    with pytest.raises(UnknownNameError, match="available: bim"):
        host.registries.attacks.get("pgd")


def test_duplicate_entries_are_rejected():
    from pcrobust import hookimpl

    @hookimpl
    def pcrobust_register_attacks(registry):
        registry.add(AttackEntry(name="bim", description="again", build=TargetedBIM))

    twice = ModuleType("twice")
    twice.pcrobust_register_attacks = pcrobust_register_attacks
    host = PluginHost()
    host.register(twice, "twice")
    with pytest.raises(PcrobustError, match="attack 'bim' is registered twice"):
        host.registries.attacks.names()


def test_plugins_command_lists_names_versions_and_entries(cli, third_party):
    code, out, _ = cli("plugins")
    assert code == 0
    assert "predify (pcrobust " in out and "fake (fakeplug 1.2.3)" in out
    assert "models: custom, mnist-pnet, pefficientnetb0, pvgg16" in out
    code, out, _ = cli("plugins", "--json")
    listing = {item["name"]: item for item in json.loads(out)}
    assert listing["attacks"]["attacks"] == ["bim"] and listing["fake"]["version"] == "1.2.3"


def test_every_hook_has_a_docstring():
    from pcrobust import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("pcrobust_")]
    assert len(hooks) == 3
    assert all(getattr(hookspecs, name).__doc__ for name in hooks)
