"""The plugin host: entry points, the allow-list, misspelt hooks, unknown names, duplicates, a third-party package."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pcrobust import hookimpl
from pcrobust.attacks import GradientAttackOptions
from pcrobust.errors import PcrobustError, UnknownNameError
from pcrobust.plugins import PluginHost
from pcrobust.registry import AttackEntry
from pcrobust_attacks.bim import BIM

THIRD_PARTY = '''
from pcrobust import hookimpl
from pcrobust.registry import AttackEntry
from pcrobust.attacks import GradientAttackOptions
from pcrobust_attacks.bim import BIM

@hookimpl
def pcrobust_register_attacks(registry):
    registry.add(AttackEntry(name="fake-bim", description="a third-party attack", build=BIM,
                            options=GradientAttackOptions, norms=("linf",), default_epsilons={"linf": (0.1,)}))
'''


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Install a third-party distribution ``fakeplug`` whose entry point ``fake`` is the given module source."""

    def make(source: str) -> Path:
        (tmp_path / "fakeplug.py").write_text(source)
        info = tmp_path / "fakeplug-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text("[pcrobust]\nfake = fakeplug\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        return tmp_path

    yield make
    sys.modules.pop("fakeplug", None)  # the next test installs its own source under the same name


@pytest.fixture
def third_party(install: Callable[[str], Path]) -> Path:
    """An installed third-party distribution ``fakeplug`` exposing one entry point."""
    return install(THIRD_PARTY)


def test_first_party_plugins_come_from_entry_points():
    host = PluginHost()
    assert {"predify", "cnnf", "attacks", "datasets"} <= set(host.info)
    assert host.info["predify"].distribution == "pcrobust" and host.info["cnnf"].distribution == "pcrobust"
    assert host.registered_by("cnnf")["models"] == ["cifar-wrn-cnnf", "fmnist-cnnf", "mnist-cnnf"]
    assert host.registered_by("predify")["models"] == ["custom", "mnist-pnet", "pefficientnet-lite0",
                                                        "pefficientnetb0", "pvgg16"]
    assert host.registered_by("attacks")["attacks"] == ["bim", "hsj", "rpgd", "spsa"]
    assert host.registered_by("datasets")["datasets"] == ["cifar10", "foolbox-imagenet", "mnist-5k"]
    assert host.registered_by("builtin") == {"datasets": [], "models": [], "attacks": [],
                                             "sections": ["attack", "clean", "corruption", "diagnostics", "gradcam",
                                                          "noise", "reconstruction", "representation"],
                                             "presets": []}
    assert host.registries.models.get("mnist-pnet").plugin == "predify"
    assert host.registries.datasets.get("mnist-5k").plugin == "datasets"


def test_third_party_package_registers_like_first_party(third_party):
    host = PluginHost()
    assert host.info["fake"].version == "1.2.3" and host.info["fake"].distribution == "fakeplug"
    assert host.registries.attacks.get("fake-bim").plugin == "fake"


def test_allow_list_loads_only_named_plugins_and_the_core(third_party, monkeypatch):
    monkeypatch.setenv("PCROBUST_PLUGINS", "predify,datasets")
    host = PluginHost.from_environment()
    assert set(host.info) == {"builtin", "predify", "datasets"}
    assert host.registries.attacks.names() == []
    assert host.registries.datasets.names() == ["cifar10", "foolbox-imagenet", "mnist-5k"]
    monkeypatch.setenv("PCROBUST_PLUGINS", "predify")
    host = PluginHost.from_environment()
    assert set(host.info) == {"builtin", "predify"}
    assert host.registries.datasets.names() == []  # the datasets are a plugin like any other


def test_a_misspelt_hook_of_an_installed_plugin_names_the_plugin_and_the_hook(install):
    install("from pcrobust import hookimpl\n\n@hookimpl\ndef pcrobust_register_model(registry):\n    pass\n")
    host = PluginHost()  # the broken plugin is left out; the others load
    assert "fake" not in host.info and host.registries.models.get("mnist-pnet").plugin == "predify"
    with pytest.raises(PcrobustError) as caught:
        host.plugin("fake")
    message = str(caught.value)
    assert message.startswith("plugin 'fake' implements unknown hook 'pcrobust_register_model'; known hooks: ")
    assert "pcrobust_register_models" in message and "\n" not in message


def test_unknown_allow_list_name_lists_what_exists(monkeypatch):
    monkeypatch.setenv("PCROBUST_PLUGINS", "predify,nope")
    expected = r"unknown plugin \(from PCROBUST_PLUGINS\) 'nope'; available: .*predify"
    with pytest.raises(UnknownNameError, match=expected):
        PluginHost.from_environment()


def test_unknown_names_list_what_exists():
    host = PluginHost()
    with pytest.raises(UnknownNameError, match="unknown plugin 'nope'; available: attacks, cnnf, datasets, .*predify"):
        host.model("nope", None)
    expected = ("unknown model .pvgg.; available: cifar-wrn-cnnf, custom, fmnist-cnnf, .*mnist-cnnf, mnist-pcx, "
                "mnist-pnet, pefficientnet-lite0, pefficientnetb0")
    with pytest.raises(UnknownNameError, match=expected):
        host.model("predify", "pvgg")
    with pytest.raises(UnknownNameError, match="available: bim"):
        host.registries.attacks.get("pgd")


def test_duplicate_entries_are_rejected():
    @hookimpl
    def pcrobust_register_attacks(registry):
        registry.add(AttackEntry(name="bim", description="again", build=BIM, options=GradientAttackOptions,
                                norms=("linf",), default_epsilons={"linf": (0.1,)}))

    twice = ModuleType("twice")
    twice.pcrobust_register_attacks = pcrobust_register_attacks
    host = PluginHost()
    host.register(twice, "twice")
    assert host.registries.attacks.get("bim").plugin == "attacks"  # the later plugin is left out, not the first
    twice_message = "plugin 'twice': attack 'bim' is registered twice \\(first by plugin 'attacks'\\)"
    with pytest.raises(PcrobustError, match=twice_message):
        host.plugin("twice")


def test_plugins_command_lists_names_versions_and_entries(cli, third_party):
    code, out, _ = cli("plugins")
    assert code == 0
    assert "predify (pcrobust " in out and "fake (fakeplug 1.2.3)" in out
    assert "models: custom, mnist-pnet, pefficientnet-lite0, pefficientnetb0, pvgg16" in out
    assert "predify (pcrobust " in out and ", default model mnist-pnet" in out
    assert "    bim: BIM, L∞" in out and "    fake-bim: a third-party attack" in out
    code, out, _ = cli("plugins", "--json")
    listing = {item["name"]: item for item in json.loads(out)}
    assert listing["predify"]["default_model"] == "mnist-pnet" and listing["attacks"]["default_model"] is None
    assert listing["cnnf"]["default_model"] == "mnist-cnnf"
    assert listing["fake"]["descriptions"]["attacks"] == {"fake-bim": "a third-party attack"}
    assert listing["attacks"]["attacks"] == ["bim", "hsj", "rpgd", "spsa"] and listing["fake"]["version"] == "1.2.3"
    assert listing["datasets"]["datasets"] == ["cifar10", "foolbox-imagenet", "mnist-5k"]
    assert listing["fake"]["sections"] == []


def test_every_hook_has_a_docstring():
    from pcrobust import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("pcrobust_")]
    assert len(hooks) == 5
    assert all(getattr(hookspecs, name).__doc__ for name in hooks)


@pytest.mark.parametrize("source, reason", [
    ("raise ImportError('needs a package that is not installed')",
     "plugin 'fake' failed to load: needs a package that is not installed"),
    ("from pcrobust import hookimpl\n\n@hookimpl\ndef pcrobust_register_attacks(registry):\n"
     "    raise RuntimeError('half-written plugin')\n",
     "plugin 'fake' failed in pcrobust_register_attacks: half-written plugin"),
])
def test_one_broken_plugin_never_stops_the_others(install, cli, tmp_path, source, reason):
    install(source)
    code, out, err = cli("evaluate", "--plugin", "predify", "--n-clean", "20", "--timesteps", "0", "--attack",
                         "none", "--noise-sigmas", "", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0 and f"warning: left out {reason}" in err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["provenance"]["plugins_left_out"] == {"fake": reason}
    assert "fake" not in results["provenance"]["plugins"]
    code, out, _ = cli("plugins")
    assert code == 0 and f"fake: left out: {reason}" in out and "predify (pcrobust" in out
    code, _, err = cli("evaluate", "--plugin", "fake", "--quiet", "--out", str(tmp_path / "f"))
    assert code == 2 and err.strip() == f"pcrobust: error: {reason}"
    code, out, err = cli("--exclude-plugin", "fake", "evaluate", "--plugin", "predify", "--n-clean", "20",
                         "--timesteps", "0", "--attack", "none", "--noise-sigmas", "", "--quiet",
                         "--out", str(tmp_path / "x"))
    assert code == 0 and "warning" not in err, "an excluded plugin is not even imported"
    assert json.loads((tmp_path / "x" / "results.json").read_text())["provenance"]["plugins_left_out"] == {}


def test_excluding_a_plugin_leaves_it_out_and_names_must_exist(cli, third_party):
    host = PluginHost(exclude=["fake", "attacks"])
    assert "fake" not in host.info and not {"bim", "fake-bim"} & set(host.registries.attacks.names())
    with pytest.raises(PcrobustError, match=r"plugin 'attacks' is excluded \(--exclude-plugin attacks\)"):
        host.plugin("attacks")
    with pytest.raises(UnknownNameError, match="unknown plugin to exclude 'nope'"):
        PluginHost(exclude=["nope"])
    with pytest.raises(PcrobustError, match="cannot be excluded"):
        PluginHost(exclude=["builtin"])
    code, out, err = cli("--exclude-plugin", "fake", "plugins")
    assert code == 0 and "fake" not in out and "predify (pcrobust" in out


def test_debug_shows_the_traceback_behind_a_one_line_error(cli):
    code, _, err = cli("evaluate", "--plugin", "nope")
    assert code == 2 and "Traceback" not in err and err.strip().startswith("pcrobust: error: unknown plugin 'nope'")
    code, _, err = cli("--debug", "evaluate", "--plugin", "nope")
    assert code == 2 and "Traceback (most recent call last)" in err and "UnknownNameError" in err
    assert err.strip().splitlines()[-1].startswith("pcrobust: error: unknown plugin 'nope'")


def test_models_lists_each_model_with_its_dataset_default_and_options(cli):
    code, out, _ = cli("models", "--plugin", "predify")
    assert code == 0
    assert out.startswith("mnist-pnet (plugin predify, dataset mnist-5k, default, trainable with `pcrobust train`)")
    assert "  -o beta=...  feedforward weight β" in out and "  -o config=...  TOML file" in out
    code, out, _ = cli("models", "--json")
    listing = {item["name"]: item for item in json.loads(out)}
    assert listing["mnist-pnet"]["default"] and not listing["custom"]["default"]
    assert set(listing["custom"]["options"]) == {"beta", "lambda", "alpha", "config", "backbone"}
    assert listing["custom"]["dataset"] is None
    assert listing["mnist-cnnf"]["default"] and set(listing["mnist-cnnf"]["options"]) == {"eta"}
    code, out, _ = cli("models", "--plugin", "cnnf")
    assert out.startswith("mnist-cnnf (plugin cnnf, dataset mnist-5k, default, trainable with `pcrobust train`)")
    assert "  -o eta=...  online update step η" in out
    lite0 = listing["pefficientnet-lite0"]
    assert lite0["dataset"] == "foolbox-imagenet" and lite0["trainable"] and set(lite0["options"]) == {
        "beta", "lambda", "alpha", *(f"{key}.{n}" for key in ("beta", "lambda", "alpha") for n in range(1, 9))}
    assert set(listing["mnist-pnet"]["options"]) == {"beta", "lambda", "alpha", "beta.1", "lambda.1", "alpha.1",
                                                     "beta.2", "lambda.2", "alpha.2", "beta.3", "lambda.3", "alpha.3"}
    code, _, err = cli("models", "--plugin", "nope")
    assert code == 2 and "unknown plugin 'nope'" in err
