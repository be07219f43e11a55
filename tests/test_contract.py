"""The engine checks a model's timestep contract on a few images before any work, naming the plugin."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import Tensor

from pcrobust import hookimpl
from pcrobust.contract import BATCH_TOLERANCE, FLOAT64_TOLERANCE
from pcrobust.errors import PcrobustError
from pcrobust.evaluation import run
from pcrobust.html_report import warnings
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.plan import parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.registry import ModelEntry
from pcrobust.run.store import RunFolder


class Linear(TimestepModel):
    """A linear read-out of the image, the same at every timestep; subclasses break one rule each."""

    num_classes = 10
    default_timesteps = 1

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(784, 10, generator=torch.Generator().manual_seed(0)))

    def logits(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        return TimestepOutput(self.logits(x).expand(timesteps + 1, -1, -1))


class WrongShape(Linear):
    def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
        return TimestepOutput(self.logits(x))


class WrongClasses(Linear):
    def logits(self, x):
        return super().logits(x)[:, :7]


class NotFinite(Linear):
    def logits(self, x):
        return super().logits(x) * float("nan")


class Stateful(Linear):
    calls = 0

    def logits(self, x):
        self.calls += 1
        return super().logits(x) + self.calls


class BatchDependent(Linear):
    def logits(self, x):
        return super().logits(x - x.mean(0, keepdim=True))


class RoundingAmplified(Linear):
    """Batch-size rounding (a few units of the dtype's epsilon) amplified a millionfold, as sign-selected
    dynamics can: large in float32, negligible in float64."""

    def logits(self, x):
        return super().logits(x) + torch.finfo(x.dtype).eps * len(x) * 1e6


class BatchDependentInFloat32Only(BatchDependent):
    """Batch-dependent, and unable to run in float64 (a float32 constant made inside)."""

    def logits(self, x):
        return super().logits(x) @ torch.eye(10)


class NaNAfterFeedforward(Linear):
    def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
        logits = super().unroll(x, timesteps).logits.clone()
        logits[1:] = float("nan")
        return TimestepOutput(logits)


class FewerTimesteps(Linear):
    def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
        return super().unroll(x, timesteps - 1)


class DropoutLeftOn(Linear):
    def logits(self, x):
        return torch.nn.functional.dropout(super().logits(x), 0.5, training=True)


class Raises(Linear):
    def logits(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


class NotAModel(torch.nn.Module):
    pass


def host_with(model: torch.nn.Module) -> PluginHost:
    @hookimpl
    def pcrobust_register_models(registry):
        registry.add(ModelEntry(name="probe", description="test model", build=lambda w, o: model,
                                dataset="mnist-5k", weight_files=lambda w, o: []))

    plugin = ModuleType("broken_plugin")
    plugin.pcrobust_register_models = pcrobust_register_models  # type: ignore[attr-defined]
    host = PluginHost()
    host.register(plugin, "broken")
    return host


@pytest.mark.parametrize("model,message", [
    (WrongShape(), "logits [3, 10], expected [T+1, B, K] = [2, 3, 10]"),
    (WrongClasses(), "expected [T+1, B, K] = [2, 3, 10] (K = the dataset's 10 classes)"),
    (NotFinite(), "non-finite logits"),
    (NaNAfterFeedforward(), "non-finite logits"),
    (FewerTimesteps(), "logits [1, 3, 10], expected [T+1, B, K] = [2, 3, 10]"),
    (DropoutLeftOn(), "two calls on the same images differ"),
    (Raises(), "failed on 3 images of shape [1, 28, 28]: mat1 and mat2 shapes cannot be multiplied"),
    (Stateful(), "two calls on the same images differ"),
    (BatchDependent(), "depend on the other images of its batch (in float32 and in a float64 copy)"),
    (BatchDependentInFloat32Only(), "depend on the other images of its batch (a float64 copy, to tell rounding "
                                    "apart, failed: "),
    (NotAModel(), "built a NotAModel, not a pcrobust.models.TimestepModel"),
])
def test_a_broken_model_is_refused_before_any_work(model, message, tmp_path: Path):
    host = host_with(model)
    plan = parse_plan({"model": {"plugin": "broken"}, "data": {"n": 20}, "run": {"device": "cpu"},
                       "sections": [{"kind": "clean"}]}, host.registries)
    with pytest.raises(PcrobustError, match="plugin 'broken'") as caught:
        run(host, plan, RunFolder(tmp_path / "out"), progress=False)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_model_that_keeps_the_contract_runs(tmp_path: Path):
    host = host_with(Linear())
    plan = parse_plan({"model": {"plugin": "broken"}, "data": {"n": 20}, "run": {"device": "cpu"},
                       "sections": [{"kind": "clean"}]}, host.registries)
    results = run(host, plan, RunFolder(tmp_path / "out"), progress=False)
    assert results is not None and results["sections"][0]["series"][0]["n"] == 20


def test_rounding_that_the_dynamics_amplify_is_told_apart_in_float64_and_recorded(tmp_path: Path):
    plan = parse_plan({"model": {"plugin": "broken"}, "data": {"n": 20}, "run": {"device": "cpu"},
                       "sections": [{"kind": "clean"}]}, host_with(Linear()).registries)
    plain = run(host_with(Linear()), plan, RunFolder(tmp_path / "plain"), progress=False)
    assert plain is not None
    check = plain["provenance"]["contract_check"]
    assert check["checked_in"] == "float32" and check["float32_batch_difference"] <= BATCH_TOLERANCE
    assert "warning" not in check
    model = RoundingAmplified()
    results = run(host_with(model), plan, RunFolder(tmp_path / "amplified"), progress=False)
    assert results is not None and results["sections"][0]["series"][0]["n"] == 20
    check = results["provenance"]["contract_check"]
    assert check["checked_in"] == "float64" and check["tolerance"] == FLOAT64_TOLERANCE
    assert check["float32_batch_difference"] > BATCH_TOLERANCE >= FLOAT64_TOLERANCE > check["float64_batch_difference"]
    assert "float32 logits change by up to" in check["warning"]
    assert model.weight.dtype == torch.float32  # the float64 probe ran on a copy
    assert any("float32 logits change" in line for line in warnings(results))
