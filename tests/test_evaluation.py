"""The evaluation run with a hand-registered model family: any TimestepModel plugs in."""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from pcrobust import hookimpl
from pcrobust.evaluation import run
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.plan import parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.registry import ModelEntry
from pcrobust.run.store import RunFolder


class ChangesItsMind(TimestepModel):
    """Predicts class t mod 10 at timestep t, whatever the image: never right at every timestep."""

    num_classes = 10
    default_timesteps = 2

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        steps = torch.arange(timesteps + 1) % 10
        one_hot = torch.nn.functional.one_hot(steps, 10).float()
        return TimestepOutput(self.scale * one_hot[:, None, :].expand(-1, len(x), -1) + 0 * x.mean())


def host_with_fickle_model() -> PluginHost:
    @hookimpl
    def pcrobust_register_models(registry):
        registry.add(ModelEntry(name="fickle", description="test model", build=lambda w, o: ChangesItsMind(),
                                dataset="mnist-5k", weight_files=lambda w, o: []))

    plugin = ModuleType("fickle_plugin")
    plugin.pcrobust_register_models = pcrobust_register_models
    host = PluginHost()
    host.register(plugin, "fickle")
    return host


def test_a_run_without_attackable_images_keeps_its_other_results(tmp_path):
    host = host_with_fickle_model()
    plan = parse_plan({"model": {"plugin": "fickle"}, "data": {"n": 50}, "run": {"device": "cpu"},
                       "sections": [{"kind": "clean"}, {"kind": "noise", "sigmas": [0.1]}, {"kind": "attack"}]},
                      host.registries)
    results = run(host, plan, RunFolder(tmp_path), progress=False)
    assert results is not None
    clean, noise, attack = results["sections"]
    assert attack["series"] == [] and "no evaluated image met the selection rule" in attack["note"]
    assert clean["series"][0]["n"] == 50 and len(clean["series"][0]["values"]) == 3
    assert noise["series"][0]["counts"] == clean["series"][0]["counts"]  # the model ignores its input
    assert results["model"]["plugin"] == "fickle" and results["provenance"]["weights"] == {}
