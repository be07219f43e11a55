"""The conformance kit: it passes the example plugin and the Predify family, fails broken models, and covers and
documents every hook."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

import pcrobust.kinds.corruption  # noqa: F401 - imported before the inline runs, which would import numpy.fft again
import pcrobust.kinds.reconstruction  # noqa: F401
import pcrobust.kinds.representation  # noqa: F401
from pcrobust import hookspecs
from pcrobust.conformance import checks
from pcrobust.registry import KINDS, hook_name

pytest_plugins = ("pytester",)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pcrobust-example-plugin"

BROKEN = '''
import torch
from pcrobust import hookimpl
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.registry import ModelEntry


class Linear(TimestepModel):
    num_classes = 10
    default_timesteps = 1

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(784, 10, generator=torch.Generator().manual_seed(0)) / 10)

    def logits(self, x):
        return x.flatten(1) @ self.weight

    def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
        return TimestepOutput(self.logits(x).expand(timesteps + 1, -1, -1))


class NaNLogits(Linear):
    def logits(self, x):
        return super().logits(x) * float("nan")


class BatchDependent(Linear):
    def logits(self, x):
        return super().logits(x - x.mean(0, keepdim=True))


class RoundingAmplified(Linear):
    """Batch-size rounding (a few units of the dtype's epsilon) amplified a millionfold, as sign-selected
    dynamics can: large in float32, negligible in float64."""

    def logits(self, x):
        return super().logits(x) + torch.finfo(x.dtype).eps * len(x) * 1e6


@hookimpl
def pcrobust_register_models(registry):
    for name, net in (("linear", Linear), ("nan-logits", NaNLogits), ("batch-dependent", BatchDependent),
                      ("rounding-amplified", RoundingAmplified)):
        registry.add(ModelEntry(name=name, description="a test model", build=lambda w, o, net=net: net().eval(),
                                dataset="mnist-5k", weight_files=lambda w, o: []))
'''


def install(pytester: pytest.Pytester, distribution: str, entry_points: str) -> None:
    """Make ``distribution`` (a dist-info with ``entry_points``) visible to the plugin host."""
    info = pytester.path / f"{distribution}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    pytester.syspathinsert()


def outcomes(pytester: pytest.Pytester, *plugins: str) -> dict[str, str]:
    """Run the kit over ``plugins`` in-process: each test's name and outcome."""
    recorder = pytester.inline_run("-p", "no:cacheprovider", *(f"--pcrobust-conformance={p}" for p in plugins))
    passed, skipped, failed = recorder.listoutcomes()
    return {report.nodeid.split("::", 1)[1]: outcome
            for outcome, reports in (("passed", passed), ("skipped", skipped), ("failed", failed))
            for report in reports}


@pytest.fixture
def example(pytester: pytest.Pytester) -> None:
    """The example plugin ``lateral``, from its source folder where it is not installed."""
    if importlib.util.find_spec("pcrobust_example") is None:
        pytester.syspathinsert(EXAMPLE)
        install(pytester, "pcrobust_example_plugin", "[pcrobust]\nlateral = pcrobust_example.plugin\n")


def test_the_kit_passes_the_example_plugin_and_predify(pytester, example):
    results = outcomes(pytester, "lateral", "predify")
    assert [name for name, outcome in results.items() if outcome == "failed"] == []
    for name in ("test_plugin_loads_and_registers[lateral]",
                 "test_batch_composition_invariance[lateral/lateral-digits]",
                 "test_gradients_are_finite_and_nonzero[lateral/lateral-digits]",
                 "test_attack_stays_in_the_epsilon_ball_and_bounds[lateral/fgsm]",
                 "test_gradient_attack_sees_finite_nonzero_gradients[lateral/fgsm]",
                 "test_eval_mode_invariance[predify/mnist-pnet]", "test_extras_have_their_shapes[predify/mnist-pnet]",
                 "test_preset_is_a_valid_plan[predify/predify-mnist]"):
        assert results[name] == "passed", name
    assert results["test_t0_is_the_feedforward_pass[predify/custom]"] == "skipped"  # needs a config and a backbone


def test_the_kit_fails_nan_logits_and_batch_dependent_models(pytester):
    (pytester.path / "brokenplug.py").write_text(BROKEN)
    install(pytester, "brokenplug", "[pcrobust]\nbroken = brokenplug\n")
    results = outcomes(pytester, "broken")
    failed = {name for name, outcome in results.items() if outcome == "failed"}
    assert {"test_logits_are_finite[broken/nan-logits-data]",
            "test_gradients_are_finite_and_nonzero[broken/nan-logits]",
            "test_batch_composition_invariance[broken/batch-dependent]"} <= failed
    assert not {name for name in failed if "broken/linear" in name or "broken/rounding-amplified" in name}
    assert results["test_batch_composition_invariance[broken/linear]"] == "passed"
    assert results["test_batch_composition_invariance[broken/rounding-amplified]"] == "passed"  # in float64


def test_the_kit_is_inactive_unless_a_plugin_is_named(pytester):
    pytester.makepyfile("def test_own():\n    pass\n")
    assert outcomes(pytester) == {"test_own": "passed"}


def test_an_unknown_plugin_is_a_usage_error(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "--pcrobust-conformance=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pcrobust conformance: plugin 'nope' is not installed; installed: *predify*"])


def kit_tests_of(fixture: str) -> list[str]:
    """The kit's tests that take ``fixture``, directly or through one of the kit's fixtures."""
    own = {name: inspect.signature(value).parameters for name, value in vars(checks).items()
           if callable(value) and getattr(value, "__module__", None) == checks.__name__ and not isinstance(value, type)}
    takes = {fixture} | {name for name, parameters in own.items() if fixture in parameters}
    return [name for name, parameters in own.items() if name.startswith("test_") and takes & set(parameters)]


def test_every_hook_is_documented_and_checked_by_the_kit():
    readme = (REPO / "README.md").read_text()
    for kind in KINDS:
        name = hook_name(kind)
        spec = getattr(hookspecs, name)
        assert spec.__doc__, f"{name} has no docstring"
        arguments = ", ".join(f"{p}: {spec.__annotations__[p]}" for p in inspect.signature(spec).parameters)
        assert f"def {name}({arguments}) -> None" in readme, f"the README does not give {name}'s signature"
        assert kit_tests_of(checks.CASES[kind]), f"the conformance kit has no test of {kind} ({name})"
    assert sorted(checks.CASES) == sorted(KINDS)
