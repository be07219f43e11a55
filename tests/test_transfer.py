"""Transfer attacks: adversarials crafted on a surrogate registered model, scored at every timestep of the target."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tomli_w
import torch
from torch import Tensor

from pcrobust import hookimpl
from pcrobust.evaluation import run
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.plan import parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.registry import ModelEntry
from pcrobust.run.store import RunFolder

ATTACK = {"kind": "attack", "attack": "bim", "epsilons": [0.3], "n": 6, "options": {"steps": 3}}
PLAN: dict[str, Any] = {"model": {"plugin": "predify"}, "data": {"n": 60}, "run": {"timesteps": 2, "device": "cpu"},
                        "sections": []}


class Linear(TimestepModel):
    """A linear classifier of 28×28 images whose logits grow by one tenth per timestep."""

    num_classes = 10
    default_timesteps = 1

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(28 * 28, 10)
        torch.nn.init.normal_(self.fc.weight, generator=torch.Generator().manual_seed(0))

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        logits = self.fc(x.flatten(1))
        return TimestepOutput(torch.stack([logits * (1 + 0.1 * t) for t in range(timesteps + 1)]))


def host_with_linear_model() -> PluginHost:
    @hookimpl
    def pcrobust_register_models(registry):
        registry.add(ModelEntry(name="linear", description="test model", build=lambda w, o: Linear(),
                                dataset="mnist-5k", weight_files=lambda w, o: []))

    plugin = ModuleType("linear_plugin")
    plugin.pcrobust_register_models = pcrobust_register_models  # type: ignore[attr-defined]
    host = PluginHost()
    host.register(plugin, "linear")
    return host


def plan_with(*sections: dict[str, Any]) -> dict[str, Any]:
    plan = copy.deepcopy(PLAN)
    plan["sections"] = list(sections)
    return plan


def test_the_default_model_as_its_own_surrogate_equals_the_first_readout(tmp_path: Path):
    host = PluginHost()
    plan = parse_plan(plan_with({**ATTACK, "name": "first", "readout": "first"},
                                {**ATTACK, "name": "transfer", "surrogate": {"plugin": "predify",
                                                                             "readout": "first"}}),
                      host.registries)
    results = run(host, plan, RunFolder(tmp_path), progress=False)
    assert results is not None
    first, transfer = results["sections"]
    assert "surrogate" not in first
    described = dict(transfer["surrogate"])
    assert described.pop("contract_check")["checked_in"] == "float32"
    assert described == {"plugin": "predify", "name": results["model"]["name"], "readout": "first",
                         "timesteps": transfer["surrogate"]["timesteps"]}
    assert first["image_indices"] == transfer["image_indices"] and len(first["image_indices"]) == 6
    assert [s["values"] for s in transfer["series"]] == [s["values"] for s in first["series"]]
    assert len(transfer["series"][0]["values"]) == 3
    store = RunFolder(tmp_path)
    record = store.record()
    assert record is not None
    for key in ("success", "margin"):
        ours = [store.load_unit("transfer", u["key"], record["plan_digest"])[key] for u in record["units"]["transfer"]]
        theirs = [store.load_unit("first", u["key"], record["plan_digest"])[key] for u in record["units"]["first"]]
        assert ours == theirs


def test_a_different_registered_model_is_a_surrogate(tmp_path: Path):
    host = host_with_linear_model()
    surrogate = {"plugin": "linear", "readout": "avg", "timesteps": 2}
    plan = parse_plan(plan_with({**ATTACK, "criterion": "untargeted", "selection": "all", "surrogate": surrogate}),
                      host.registries)
    results = run(host, plan, RunFolder(tmp_path), progress=False)
    assert results is not None
    (section,) = results["sections"]
    described = dict(section["surrogate"])
    assert described.pop("contract_check")["checked_in"] == "float32"
    assert described == {"plugin": "linear", "name": "linear", "readout": "avg", "timesteps": 2}
    assert section["attacked_readout"] == "surrogate avg" and section["scored_readout"] == "t"
    assert results["model"]["plugin"] == "predify" and section["n"] == 6
    assert len(section["series"][0]["values"]) == 3


@pytest.mark.parametrize("surrogate,extra,message", [
    ({"plugin": "nope"}, {}, "section 1 (attack bim): surrogate.plugin: unknown plugin 'nope'"),
    ({"plugin": "predify", "name": "nope"}, {}, "section 1 (attack bim): surrogate.name: unknown model of plugin"),
    ({"plugin": "predify"}, {"readout": "t"}, "section 1 (attack bim): readout: 't' cannot be combined with "
                                              "surrogate"),
    ({"plugin": "predify", "readout": "t"}, {}, "section 1 (attack bim): surrogate.readout: input should be"),
], ids=["unknown plugin", "unknown model", "readout t", "surrogate readout t"])
def test_bad_surrogates_are_one_line_exit_2(cli, tmp_path: Path, surrogate, extra, message):
    (tmp_path / "plan.toml").write_text(tomli_w.dumps(plan_with({**ATTACK, **extra, "surrogate": surrogate})))
    code, _, err = cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert not (tmp_path / "r").exists()
