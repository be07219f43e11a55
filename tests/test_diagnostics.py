"""The diagnostics section: gradient-masking checks pass on an undefended model and flag a masked one."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tomli_w
import torch
from torch import Tensor

from pcrobust import hookimpl
from pcrobust.datasets import LabeledImages
from pcrobust.diagnostics import gradients_flow, not_weaker, reaches_full_success, rises_with_epsilon
from pcrobust.evaluation import run
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.plan import parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.registry import DatasetEntry, ModelEntry
from pcrobust.run.store import RunFolder
from tests.conftest import make_tiny

SECTION: dict[str, Any] = {"kind": "diagnostics", "n": 20, "selection": "all", "epsilons": [0.05, 0.2, 1.0],
                           "compare_epsilon": 0.2, "options": {"steps": 5}, "steps_factor": 2,
                           "black_box_options": {"steps": 3, "samples": 4, "lr": 0.05}}
CHECKS = ["success-rises-with-epsilon", "full-success-at-large-epsilon", "more-steps-not-weaker",
          "white-box-not-weaker-than-transfer", "white-box-not-weaker-than-black-box",
          "gradients-finite-and-non-zero", "gradient-mode-not-weaker-than-detached"]


class Rounded(TimestepModel):
    """A model that rounds its input to quarters first: its input gradient is exactly zero (masked)."""

    def __init__(self, inner: TimestepModel) -> None:
        super().__init__()
        self.inner = inner
        self.num_classes = inner.num_classes
        self.default_timesteps = inner.default_timesteps

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        return self.inner.unroll(torch.round(x * 4) / 4, timesteps, reconstructions=reconstructions, errors=errors)


def host_with(model: TimestepModel) -> PluginHost:
    """A host with ``model`` as plugin ``probe`` and 8×8 images labelled by the model's feedforward pass."""
    images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        labels = model.eval()(images, 0)[0].argmax(1)
    data = LabeledImages("probe-images", "test", images, labels, model.num_classes, "random", "")

    @hookimpl
    def pcrobust_register_datasets(registry):
        registry.add(DatasetEntry(name="probe-images", description="", splits=("test",), load=lambda split: data))

    @hookimpl
    def pcrobust_register_models(registry):
        registry.add(ModelEntry(name="probe", description="test model", build=lambda w, o: model,
                                dataset="probe-images", weight_files=lambda w, o: []))

    plugin = ModuleType("probe_plugin")
    plugin.pcrobust_register_datasets = pcrobust_register_datasets  # type: ignore[attr-defined]
    plugin.pcrobust_register_models = pcrobust_register_models  # type: ignore[attr-defined]
    host = PluginHost()
    host.register(plugin, "probe")
    return host


def diagnose(model: TimestepModel, folder: Path, **keys: Any) -> dict[str, Any]:
    host = host_with(model)
    plan = parse_plan({"model": {"plugin": "probe"}, "run": {"timesteps": 2, "device": "cpu"},
                       "sections": [{**SECTION, **keys}]}, host.registries)
    results = run(host, plan, RunFolder(folder), progress=False)
    assert results is not None
    (entry,) = results["sections"]
    return entry


def checks_of(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in entry["checks"]}


def test_the_checks_pass_on_an_undefended_model(tiny, tmp_path: Path):
    entry = diagnose(tiny, tmp_path)
    checks = checks_of(entry)
    assert list(checks) == CHECKS
    assert entry["passed"] is True, [c["reason"] for c in entry["checks"] if not c["passed"]]
    for check in entry["checks"]:
        assert isinstance(check["reason"], str) and "\n" not in check["reason"] and check["numbers"]
    sweep = checks["success-rises-with-epsilon"]["numbers"]
    assert sweep["epsilons"] == [0.05, 0.2, 1.0] and len(sweep["success"]) == 3 and len(sweep["success"][0]) == 3
    assert checks["full-success-at-large-epsilon"]["numbers"]["success"] == sweep["success"][-1]
    gradients = checks["gradients-finite-and-non-zero"]["numbers"]
    assert gradients["n"] == 20 and gradients["zero"] == [0, 0, 0] and min(gradients["min"]) > 0
    modes = checks["gradient-mode-not-weaker-than-detached"]["numbers"]
    assert modes["epsilon"] == 0.2 and len(modes["detached gradients"]) == 3
    assert entry["parameters"]["compare_epsilon"] == 0.2
    assert entry["gradient_mode"] == "exact" and entry["white_box"]["name"] == "bim"
    assert entry["black_box"]["name"] == "spsa" and entry["black_box"]["options"]["steps"] == 3
    labels = [s["label"] for s in entry["series"]]
    assert labels == ["bim ε=0.05", "bim ε=0.2", "bim ε=1", "bim ×2 steps ε=0.2", "transfer from t=0 ε=0.2",
                      "spsa ε=0.2", "bim detached gradients ε=0.2"]
    assert all(s["metric"] == "success_rate" and s["n"] == 20 for s in entry["series"])
    assert [s["values"] for s in entry["series"][:3]] == sweep["success"]


def test_a_model_that_rounds_its_input_is_flagged(tmp_path: Path):
    entry = diagnose(Rounded(make_tiny()), tmp_path)
    checks = checks_of(entry)
    assert entry["passed"] is False
    assert not checks["gradients-finite-and-non-zero"]["passed"]
    assert checks["gradients-finite-and-non-zero"]["numbers"]["zero"] == [20, 20, 20]
    assert "20 of 20 images have a zero or non-finite input gradient" in checks["gradients-finite-and-non-zero"][
        "reason"]
    assert not checks["full-success-at-large-epsilon"]["passed"]
    assert "success at ε=1 is only" in checks["full-success-at-large-epsilon"]["reason"]
    assert "gradient-mode-not-weaker-than-detached" not in checks  # the wrapper offers one gradient mode
    assert entry["skipped"] == {"gradient-modes": "the model offers one gradient mode (exact)"}


def test_checks_judge_rates_with_a_tolerance():
    assert rises_with_epsilon([0.1, 0.3], [[0.5, 0.5], [0.46, 0.6]], 0.05).passed
    falling = rises_with_epsilon([0.1, 0.3], [[0.5, 0.5], [0.5, 0.4]], 0.05)
    assert not falling.passed and falling.reason == ("success falls by 0.100 from ε=0.1 to ε=0.3 at t=1 "
                                                     "(tolerance 0.05)")
    assert not reaches_full_success(1.0, [1.0, 0.9], 0.95).passed
    assert reaches_full_success(1.0, [1.0, 0.95], 0.95).passed
    beaten = not_weaker("white-box-not-weaker-than-black-box", ("white-box", [0.2, 0.3]), ("black-box", [0.2, 0.5]),
                        0.3, 0.05)
    assert not beaten.passed and beaten.numbers["black-box"] == [0.2, 0.5] and "t=1" in beaten.reason
    assert not gradients_flow([[1.0, None], [1.0, 2.0]]).passed
    healthy = gradients_flow([[1.0, 3.0], [2.0, 2.0]])
    assert healthy.passed and healthy.numbers["mean"] == [1.5, 2.5] and healthy.numbers["min"] == [1.0, 2.0]


def test_the_flag_and_a_plan_section_run_from_the_cli(cli, tmp_path: Path):
    flags = ["--plugin", "predify", "--n-clean", "30", "--timesteps", "1", "--device", "cpu", "--attack", "none",
             "--noise-sigmas", "", "--diagnostics"]
    code, out, _ = cli("plan", *flags)
    assert code == 0
    plan = tomllib.loads(out)
    section = plan["sections"][-1]
    assert section["kind"] == "diagnostics" and section["compare_epsilon"] == 0.1 and section["n"] == 50
    assert section["black_box"] == "spsa" and section["options"]["steps"] == 10
    section.update(n=6, options={"steps": 3}, black_box_options={"steps": 2, "samples": 2}, steps_factor=2)
    (tmp_path / "plan.toml").write_text(tomli_w.dumps(plan))
    code, out, err = cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    entry = results["sections"][-1]
    assert entry["kind"] == "diagnostics" and entry["n"] == 6 and isinstance(entry["passed"], bool)
    assert [c["name"] for c in entry["checks"]] == CHECKS
    assert all(set(c) == {"name", "passed", "reason", "numbers"} for c in entry["checks"])
    for check in entry["checks"]:
        assert f"{'pass' if check['passed'] else 'FAIL'} {check['name']}: " in " ".join(out.split())
    html = (tmp_path / "r" / "report.html").read_text()
    assert '<table class="checks">' in html and "gradients-finite-and-non-zero" in html
    assert html.count('<tr class="pass">') + html.count('<tr class="fail">') == len(CHECKS)


def test_the_flag_alone_adds_the_section_at_its_defaults(cli, tmp_path: Path):
    code, out, err = cli("evaluate", "--plugin", "predify", "--n-clean", "6", "--timesteps", "1", "--device", "cpu",
                         "--attack", "none", "--noise-sigmas", "", "--diagnostics", "--quiet",
                         "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    entry = results["sections"][-1]
    assert entry["id"] == "diagnostics" and entry["parameters"]["epsilons"] == [0.1, 0.3, 1.0]
    assert len(entry["checks"]) == len(CHECKS) and "diagnostics" in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.parametrize("keys,message", [
    ({"epsilons": [0.3, 0.1]}, "epsilons must be distinct and ascending, got [0.3, 0.1]"),
    ({"epsilons": [0.1, 2.0]}, "epsilons: linf epsilons must lie in (0, 1]"),
    ({"compare_epsilon": 0.2}, "compare_epsilon 0.2 is not one of epsilons (0.1, 0.3, 1)"),
    ({"black_box": "nope"}, "unknown attack 'nope'"),
    ({"attack": "rpgd"}, "attack: rpgd does not offer norm 'linf'"),
    ({"black_box_options": {"stepz": 1}}, "black_box_options: unknown key 'stepz'"),
    ({"tolerance": 1.5}, "tolerance: input should be less than 1"),
    ({"steps_factor": 1}, "steps_factor: input should be greater than or equal to 2"),
])
def test_bad_options_are_one_line_errors(cli, tmp_path: Path, keys: dict[str, Any], message: str):
    plan = {"model": {"plugin": "predify"}, "run": {"device": "cpu"},
            "sections": [{"kind": "diagnostics", "norm": "linf", **keys}]}
    (tmp_path / "plan.toml").write_text(tomli_w.dumps(plan))
    code, _, err = cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "section 1 (diagnostics)" in err and message in err, err
    assert not (tmp_path / "r").exists()
    code, _, err = cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--diagnostics")
    assert code == 2 and "cannot be combined with --diagnostics" in err


def test_comparisons_can_be_left_out_and_targeted_success_diagnosed(tiny, tmp_path: Path):
    entry = diagnose(tiny, tmp_path, criterion="targeted", transfer=False, black_box="none", gradient_modes=False)
    assert entry["criterion"] == "targeted" and "black_box" not in entry and "skipped" not in entry
    assert [c["name"] for c in entry["checks"]] == ["success-rises-with-epsilon", "full-success-at-large-epsilon",
                                                    "more-steps-not-weaker", "gradients-finite-and-non-zero"]
    assert [s["label"] for s in entry["series"]] == ["bim ε=0.05", "bim ε=0.2", "bim ε=1", "bim ×2 steps ε=0.2"]
