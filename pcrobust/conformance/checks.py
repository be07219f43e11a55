"""The contract tests of the conformance kit, parametrised over the entries of the plugins it was given.

Each test takes one case fixture, ``plugin_name`` or the entry of one kind (:data:`CASES`), with ids
``plugin/entry``. A model that cannot be built without options or files (``build(None, {})`` raises a
:class:`~pcrobust.errors.PcrobustError`) is skipped with that message; any other exception fails.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from pcrobust.attacks import Adversarials, Attack, AttackOptions, epsilon_problem
from pcrobust.conformance import HOST, enabled_plugins
from pcrobust.contract import BATCH_TOLERANCE, FLOAT64_TOLERANCE
from pcrobust.datasets import LabeledImages
from pcrobust.errors import PcrobustError, first_line
from pcrobust.evaluation import run
from pcrobust.models import TimestepModel, TimestepOutput, evaluation_mode
from pcrobust.plan import parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.registry import KINDS, AttackEntry, DatasetEntry, ModelEntry, PresetEntry, SectionEntry
from pcrobust.run.store import RunFolder
from pcrobust.sections import SectionKind, SectionOptions
from pcrobust.vocabulary import NORMS, Norm

CASES = {"datasets": "dataset_case", "models": "model_case", "attacks": "attack_case",
         "sections": "section_case", "presets": "preset_case"}  # the fixture that holds one entry of each kind
PROBE_IMAGES = 4
MAX_TIMESTEPS = 3  # models are checked at T = min(their default, this)
FALLBACK_MODEL_PLUGIN = "predify"  # runs section kinds when no named plugin registers a model
CRITERIA = ("targeted", "untargeted")


@dataclass
class Kit:
    """The plugin host and the named plugins of one test session, with the datasets loaded so far."""

    host: PluginHost
    plugins: list[str]
    loaded: dict[str, LabeledImages] = field(default_factory=dict)
    attacked: dict[tuple[str, Norm, str], tuple[Probe, Adversarials, ProbeLogits]] = field(default_factory=dict)

    def entries(self, kind: str) -> list[Any]:
        """Entries of ``kind`` that the named plugins register, plugin by plugin."""
        registry = self.host.registries.by_kind()[kind]
        return [entry for plugin in self.plugins for entry in sorted(registry, key=lambda e: e.name)
                if entry.plugin == plugin]

    def data(self, dataset: str) -> LabeledImages:
        """The dataset's ``test`` split (else its first), loaded once."""
        if dataset not in self.loaded:
            entry = self.host.registries.datasets.get(dataset)
            self.loaded[dataset] = entry.load("test" if "test" in entry.splits else entry.splits[0])
        return self.loaded[dataset]

    def attack(self, entry: AttackEntry, norm: Norm, criterion: str) -> tuple[Probe, Adversarials, ProbeLogits]:
        """The probe copies, the attack's answer and the readout it queried, run once per threat."""
        key = (entry.name, norm, criterion)
        if key not in self.attacked:
            attack = entry.build(entry.options(), norm)
            probe = probe_for(attack, max(entry.default_epsilons[norm]), criterion == "targeted")
            self.attacked[key] = (probe, *attack_probe(attack, probe, criterion == "targeted"))
        return self.attacked[key]

    def model_plugin(self) -> str:
        """The plugin whose default model runs section kinds: the first named one with models."""
        return next((e.plugin for e in self.entries("models")), FALLBACK_MODEL_PLUGIN)


KIT = pytest.StashKey[Kit]()


def kit_of(config: pytest.Config) -> Kit:
    """The session's kit, made once per pytest configuration."""
    if KIT not in config.stash:
        config.stash[KIT] = Kit(config.stash[HOST], enabled_plugins(config))
    return config.stash[KIT]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    kit = kit_of(metafunc.config)
    if "plugin_name" in metafunc.fixturenames:
        metafunc.parametrize("plugin_name", kit.plugins)
    for kind, fixture in CASES.items():
        if fixture in metafunc.fixturenames:
            entries = kit.entries(kind)  # a plugin left out has none: test_plugin_loads_and_registers says why
            metafunc.parametrize(fixture, entries, ids=[f"{e.plugin}/{e.name}" for e in entries])


@pytest.fixture
def kit(request: pytest.FixtureRequest) -> Kit:
    return kit_of(request.config)


def close(a: Tensor, b: Tensor, scale: Tensor | float | None = None, tolerance: float = BATCH_TOLERANCE) -> bool:
    """Equal up to ``tolerance`` (:data:`~pcrobust.contract.BATCH_TOLERANCE`) of the largest logit (at least 1)."""
    size = float(a.abs().max().clamp_min(1.0)) if scale is None else float(scale)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=tolerance * size))


def as_json(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"{what} is not JSON-serialisable: {exc}")


# --- plugins --------------------------------------------------------------------------------------------------


def test_plugin_loads_and_registers(plugin_name: str, kit: Kit) -> None:
    """The plugin loads, its hooks run, it registers at least one entry, and every entry has a description."""
    try:
        kit.host.plugin(plugin_name)
    except PcrobustError as exc:
        pytest.fail(str(exc))
    registered = kit.host.registered_by(plugin_name)
    assert any(registered.values()), f"plugin {plugin_name!r} registers nothing"
    for kind in KINDS:
        for entry in kit.entries(kind):
            if entry.plugin == plugin_name:
                assert str(getattr(entry, "description", "")).strip(), f"{kind} {entry.name!r} has no description"


# --- models ---------------------------------------------------------------------------------------------------


@dataclass
class Built:
    """A model built from its entry with no weights and no options, and a probe batch of its dataset."""

    entry: ModelEntry
    model: TimestepModel
    images: Tensor
    labels: Tensor
    num_classes: int

    @property
    def timesteps(self) -> int:
        return min(self.model.default_timesteps, MAX_TIMESTEPS)

    def logits(self, x: Tensor | None = None, timesteps: int | None = None) -> Tensor:
        with torch.no_grad():
            return self.model(self.images if x is None else x, self.timesteps if timesteps is None else timesteps)


def build(entry: ModelEntry, kit: Kit) -> Built:
    if not entry.dataset:
        pytest.skip(f"model {entry.name!r} names no dataset")
    try:
        model = entry.build(None, {})
    except PcrobustError as exc:
        pytest.skip(f"model {entry.name!r} needs options or files to build: {exc}")
    data = kit.data(entry.dataset)
    return Built(entry, model, data.images[:PROBE_IMAGES], data.labels[:PROBE_IMAGES], data.num_classes)


@pytest.fixture
def built(model_case: ModelEntry, kit: Kit) -> Built:
    return build(model_case, kit)


def test_model_declares_the_contract(built: Built) -> None:
    """A TimestepModel with K matching the dataset, its timesteps, gradient modes, weight files and facts."""
    model, entry = built.model, built.entry
    assert isinstance(model, TimestepModel), f"build returned a {type(model).__name__}, not a TimestepModel"
    assert model.num_classes == built.num_classes, (
        f"num_classes {model.num_classes} but dataset {entry.dataset!r} has {built.num_classes}")
    assert isinstance(model.default_timesteps, int) and model.default_timesteps >= 0
    assert model.gradient_modes and all(isinstance(mode, str) for mode in model.gradient_modes)
    assert model.gradient_mode in model.gradient_modes
    with pytest.raises(ValueError):
        model.set_gradient_mode("no-such-gradient-mode")
    files = entry.weight_files(None, {})
    assert all(isinstance(path, Path) and path.is_file() for path in files), f"weight files missing: {files}"
    as_json(model.describe(), "describe()")


def test_logits_have_shape_T_plus_1_B_K(built: Built) -> None:
    """``model(x, T)`` is ``[T+1, B, K]`` for T = 0, 1 and the checked T; ``forward(x)`` unrolls the default."""
    batch = len(built.images)
    for timesteps in sorted({0, 1, built.timesteps}):
        logits = built.logits(timesteps=timesteps)
        assert isinstance(logits, Tensor)
        assert tuple(logits.shape) == (timesteps + 1, batch, built.num_classes), (
            f"T={timesteps}: logits {list(logits.shape)}, expected {[timesteps + 1, batch, built.num_classes]}")
    with torch.no_grad():
        assert close(built.model(built.images), built.logits(timesteps=built.model.default_timesteps))


def test_t0_is_the_feedforward_pass(built: Built) -> None:
    """Timestep 0 is the same whatever number of recurrent steps follow it."""
    feedforward = built.logits(timesteps=0)[0]
    for timesteps in sorted({1, built.timesteps}):
        assert close(built.logits(timesteps=timesteps)[0], feedforward), f"t=0 changes when T={timesteps}"


def test_no_state_between_calls(built: Built) -> None:
    """A call keeps nothing: other images and other horizons in between change no logit."""
    first = built.logits()
    built.logits(1 - built.images, built.timesteps + 1)
    built.logits(built.images[:1], 0)
    assert close(built.logits(), first), "logits changed after other calls: state is kept between calls"


def test_batch_composition_invariance(built: Built) -> None:
    """An image's logits do not depend on the other images of its batch, their number or their order: in float32,
    or, as the engine rules (:mod:`pcrobust.contract`), in a float64 copy when float32 rounding disagrees."""
    others = torch.rand(built.images[:3].shape, generator=torch.Generator().manual_seed(1))
    model = built.model
    try:
        assert_batch_composition_invariance(model, built.images, others, built.timesteps, BATCH_TOLERANCE)
    except AssertionError as in_float32:
        try:
            double = copy.deepcopy(model).double()
            with torch.no_grad():
                double(built.images[:1].double(), 0)
        except Exception as exc:  # no float64 copy to tell rounding apart: the float32 verdict stands
            raise AssertionError(f"{in_float32} (a float64 copy failed: {first_line(exc)})") from None
        assert_batch_composition_invariance(double, built.images.double(), others.double(), built.timesteps,
                                            FLOAT64_TOLERANCE)


def assert_batch_composition_invariance(model: TimestepModel, x: Tensor, others: Tensor, timesteps: int,
                                        tolerance: float) -> None:
    """The three batch comparisons of :func:`test_batch_composition_invariance` at ``tolerance``."""
    with torch.no_grad():
        full = model(x, timesteps)
        scale = float(full.abs().max().clamp_min(1.0))
        alone = torch.cat([model(x[i:i + 1], timesteps) for i in range(len(x))], dim=1)
        assert close(alone, full, scale, tolerance), (
            "an image's logits alone differ from its logits in a batch")
        flipped = model(x.flip(0), timesteps).flip(1)
        assert close(flipped, full, scale, tolerance), (
            "an image's logits depend on its position in the batch")
        companions = model(torch.cat([x[:2], others.to(x.dtype)]), timesteps)[:, :2]
        assert close(companions, full[:, :2], scale, tolerance), (
            "an image's logits depend on the other images of its batch")


def test_eval_mode_invariance(built: Built) -> None:
    """``build`` returns an eval-mode model whose logits are the same in the engine's evaluation mode (frozen
    parameters), with autograd on or off, and after a train/eval round trip; evaluation mode restores state."""
    model = built.model
    assert not model.training, "build must return the model in eval mode (model.eval())"
    reference = built.logits()
    flags = [p.requires_grad for p in model.parameters()]
    with evaluation_mode(model):
        assert close(built.logits(), reference), "logits differ in evaluation mode"
        with torch.enable_grad():
            assert close(model(built.images, built.timesteps).detach(), reference), "logits differ with autograd on"
    assert not model.training and [p.requires_grad for p in model.parameters()] == flags
    model.train()
    model.eval()
    assert close(built.logits(), reference), "logits differ after model.train(); model.eval()"


@pytest.mark.parametrize("inputs", ["data", "uniform", "zeros", "ones"])
def test_logits_are_finite(built: Built, inputs: str) -> None:
    """Finite logits at every timestep, on real images and on the extremes of [0, 1]."""
    x = {"data": built.images, "uniform": torch.rand(built.images.shape, generator=torch.Generator().manual_seed(0)),
         "zeros": torch.zeros_like(built.images), "ones": torch.ones_like(built.images)}[inputs]
    assert bool(torch.isfinite(built.logits(x.to(built.images.dtype))).all()), f"non-finite logits on {inputs} inputs"


def test_gradients_are_finite_and_nonzero(built: Built) -> None:
    """In every gradient mode, each timestep's logit of the label has a finite input gradient, non-zero for every
    image (the logit itself, unlike a cross-entropy, cannot saturate)."""
    model = built.model
    with evaluation_mode(model), torch.enable_grad():
        for mode in model.gradient_modes:
            model.set_gradient_mode(mode)
            x = built.images.clone().requires_grad_(True)
            logits = model(x, built.timesteps)
            for t in range(built.timesteps + 1):
                own = logits[t].gather(1, built.labels.view(-1, 1)).sum()
                (gradient,) = torch.autograd.grad(own, x, retain_graph=t < built.timesteps)
                assert bool(torch.isfinite(gradient).all()), f"gradient mode {mode!r}, t={t}: non-finite gradient"
                per_image = gradient.flatten(1).abs().amax(1)
                assert bool((per_image > 0).all()), f"gradient mode {mode!r}, t={t}: zero gradient for an image"


def test_determinism(built: Built, kit: Kit) -> None:
    """A second build gives the same logits, and the global random state does not change them."""
    reference = built.logits()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)
        assert close(built.logits(), reference), "logits depend on the global random state"
    again = build(built.entry, kit)
    assert close(again.logits(), reference), "two builds of the entry give different logits"


def test_extras_have_their_shapes(built: Built) -> None:
    """Extras are ``None`` or ``[T+1, L, B]`` errors, ``[T+1, B, C, H, W]`` reconstructions and finite
    ``[T+1, B]`` measures (every declared one present); asking for them does not change the logits."""
    with torch.no_grad():
        output = built.model.unroll(built.images, built.timesteps, reconstructions=True, errors=True)
        lean = built.model.unroll(built.images, built.timesteps, errors=False)
    assert isinstance(output, TimestepOutput) and isinstance(lean, TimestepOutput)
    assert close(output.logits, lean.logits), "asking for extras changes the logits"
    steps, batch = built.timesteps + 1, len(built.images)
    if output.reconstruction_errors is not None:
        errors = output.reconstruction_errors
        assert errors.dim() == 3 and (errors.shape[0], errors.shape[2]) == (steps, batch), (
            f"reconstruction_errors {list(errors.shape)}, expected [T+1, L, B] = [{steps}, L, {batch}]")
        assert bool(torch.isfinite(errors).all())
    if output.reconstructions is not None:
        expected = (steps, *built.images.shape)
        assert tuple(output.reconstructions.shape) == expected, (
            f"reconstructions {list(output.reconstructions.shape)}, expected [T+1, B, C, H, W] = {list(expected)}")
    declared = tuple(built.model.measure_names)
    measures = output.measures or {}
    assert set(declared) <= set(measures), (
        f"measures {sorted(measures)} lack the declared {sorted(set(declared) - set(measures))}")
    for name, values in measures.items():
        assert tuple(values.shape) == (steps, batch), (
            f"measure {name!r} {list(values.shape)}, expected [T+1, B] = [{steps}, {batch}]")
        assert bool(torch.isfinite(values).all()), f"measure {name!r} is not finite"


# --- attacks --------------------------------------------------------------------------------------------------


class ProbeNet(TimestepModel):
    """A fixed float64 net on 1×8×8 images: a linear read-out pushed by a tanh recurrence (4 classes, T = 2)."""

    num_classes = 4
    default_timesteps = 2

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(64, 4, generator=generator, dtype=torch.float64))
        self.recurrent = torch.nn.Parameter(torch.randn(4, 4, generator=generator, dtype=torch.float64) / 2)

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        drive = (x.flatten(1) - 0.5) @ self.weight
        logits = [drive]
        for _ in range(timesteps):
            logits.append(drive + torch.tanh(logits[-1] @ self.recurrent))
        return TimestepOutput(torch.stack(logits))


@dataclass
class ProbeLogits:
    """The attacked readout, the last timestep of :class:`ProbeNet` for every copy (so ``copies`` changes nothing);
    records the input gradients that reach it."""

    model: ProbeNet
    gradients: list[Tensor] = field(default_factory=list)

    def __call__(self, z: Tensor, copies: Tensor | None = None) -> Tensor:
        if z.requires_grad:
            z.register_hook(lambda gradient: self.gradients.append(gradient.detach()))
        return self.model(z, self.model.default_timesteps)[-1]


@dataclass(frozen=True)
class Probe:
    """Copies to attack: images, labels (targets or true classes), one ε and one seed each, starting points."""

    x: Tensor
    labels: Tensor
    epsilon: Tensor
    seeds: list[int]
    starts: Tensor | None

    def rows(self, rows: Sequence[int]) -> Probe:
        index = torch.tensor(rows)
        return Probe(self.x[index], self.labels[index], self.epsilon[index], [self.seeds[r] for r in rows],
                     None if self.starts is None else self.starts[index])


def probe_for(attack: Attack, epsilon: float, targeted: bool) -> Probe:
    """Six images of :class:`ProbeNet`, the goal per copy, and (for an attack that needs them) starting points:
    pool images that the net already puts in the goal class."""
    net = ProbeNet()
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 8, 8, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        predicted = net(x)[-1].argmax(1)
    labels = (predicted + 1) % net.num_classes if targeted else predicted
    starts = None
    if attack.needs_starts:
        pool = torch.rand(512, 1, 8, 8, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            pool_classes = net(pool)[-1].argmax(1)
        goal = (pool_classes.view(1, -1) == labels.view(-1, 1)) if targeted else \
            (pool_classes.view(1, -1) != labels.view(-1, 1))
        assert bool(goal.any(1).all()), "the probe pool holds no starting point for some copy"
        starts = pool[goal.double().argmax(1)]
    budget = math.inf if attack.minimizes else epsilon
    return Probe(x, labels, torch.full((len(x),), budget, dtype=torch.float64), list(range(100, 100 + len(x))),
                 starts)


def attack_probe(attack: Attack, probe: Probe, targeted: bool) -> tuple[Adversarials, ProbeLogits]:
    logits_fn = ProbeLogits(ProbeNet())
    with torch.enable_grad():
        found = attack.attack(logits_fn, probe.x, probe.labels, probe.epsilon, probe.seeds, targeted=targeted,
                              starts=probe.starts)
    return found, logits_fn


def threats(entry: AttackEntry) -> list[tuple[Norm, str]]:
    """(norm, criterion) for every norm and criterion of the entry."""
    return [(norm, criterion) for norm in entry.norms for criterion in entry.criteria]


def test_attack_entry_is_complete(attack_case: AttackEntry) -> None:
    """Norms with valid default ε grids, criteria, typed options with defaults, and a buildable attack per norm."""
    entry = attack_case
    assert entry.norms and set(entry.norms) <= set(NORMS), f"norms {entry.norms} not among {NORMS}"
    assert entry.criteria and set(entry.criteria) <= set(CRITERIA), f"criteria {entry.criteria}"
    for norm in entry.norms:
        grid = entry.default_epsilons.get(norm)
        assert grid, f"no default ε grid for norm {norm!r}"
        assert all(epsilon_problem(norm, eps) is None for eps in grid), f"invalid default ε in {grid}"
    assert isinstance(entry.options, type) and issubclass(entry.options, AttackOptions)
    options = entry.options()
    as_json(options.model_dump(mode="json"), "the default options")
    for norm in entry.norms:
        attack = entry.build(options, norm)
        assert isinstance(attack, Attack), f"build returned a {type(attack).__name__}, not an Attack"
        assert attack.norm == norm
        as_json(attack.describe(), "describe()")


def test_attack_stays_in_the_epsilon_ball_and_bounds(attack_case: AttackEntry, kit: Kit) -> None:
    """Every norm and criterion at the largest default ε: adversarials shaped like the inputs, finite, in [0, 1]
    and in the ε-ball, with one record value per copy."""
    for norm, criterion in threats(attack_case):
        probe, found, _ = kit.attack(attack_case, norm, criterion)
        where = f"{norm} {criterion}"
        assert found.inputs.shape == probe.x.shape and found.inputs.dtype == probe.x.dtype, where
        assert bool(torch.isfinite(found.inputs).all()), f"{where}: non-finite adversarials"
        assert float(found.inputs.min()) >= 0 and float(found.inputs.max()) <= 1, f"{where}: outside [0, 1]"
        delta = (found.inputs - probe.x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert bool((size <= probe.epsilon * (1 + 1e-6) + 1e-9).all()), f"{where}: outside the ε-ball"
        for name, values in found.records.items():
            assert values.shape == (len(probe.x),), f"{where}: record {name!r} is {list(values.shape)}, not [N]"


def test_attack_is_deterministic_and_copies_are_independent(attack_case: AttackEntry, kit: Kit) -> None:
    """The same seeds give the same adversarials, and a copy's adversarial does not depend on the other copies."""
    for norm, criterion in threats(attack_case):
        probe, first, _ = kit.attack(attack_case, norm, criterion)
        attack, targeted = attack_case.build(attack_case.options(), norm), criterion == "targeted"
        again, _ = attack_probe(attack, probe, targeted)
        assert torch.equal(first.inputs, again.inputs), f"{norm} {criterion}: two runs differ"
        rows = [1, 4]
        part, _ = attack_probe(attack, probe.rows(rows), targeted)
        assert torch.allclose(part.inputs, first.inputs[rows], rtol=0, atol=1e-6), (
            f"{norm} {criterion}: a copy's adversarial depends on the other copies attacked with it")


def test_gradient_attack_sees_finite_nonzero_gradients(attack_case: AttackEntry, kit: Kit) -> None:
    """An attack that differentiates the readout gets finite gradients, non-zero for every copy."""
    for norm, criterion in threats(attack_case):
        _, _, logits_fn = kit.attack(attack_case, norm, criterion)
        if not logits_fn.gradients:
            pytest.skip("the attack takes no gradients")
        for gradient in logits_fn.gradients:
            assert bool(torch.isfinite(gradient).all()), f"{norm} {criterion}: non-finite gradient"
        assert any(bool((g.flatten(1).abs().amax(1) > 0).all()) for g in logits_fn.gradients), (
            f"{norm} {criterion}: no gradient reaches every copy")


# --- datasets -------------------------------------------------------------------------------------------------


def test_dataset_loads_labelled_images_in_0_1(dataset_case: DatasetEntry) -> None:
    """Every split: float32 images ``[N, C, H, W]`` in [0, 1], labels in [0, K), the same on a second load."""
    assert dataset_case.splits, "no splits"
    for split in dataset_case.splits:
        data = dataset_case.load(split)
        assert isinstance(data, LabeledImages) and (data.name, data.split) == (dataset_case.name, split)
        assert len(data) > 0 and data.images.dim() == 4 and data.images.dtype == torch.float32
        assert float(data.images.min()) >= 0 and float(data.images.max()) <= 1, f"{split}: pixels outside [0, 1]"
        assert data.labels.dtype == torch.int64 and data.num_classes >= 2
        assert int(data.labels.min()) >= 0 and int(data.labels.max()) < data.num_classes
        as_json(data.describe(), "describe()")
        again = dataset_case.load(split)
        assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels), (
            f"{split}: two loads differ")


# --- section kinds --------------------------------------------------------------------------------------------


def test_section_kind_is_complete(section_case: SectionEntry) -> None:
    """A SectionKind with a description, typed options with defaults, a title and a label."""
    kind = section_case
    assert isinstance(kind, SectionKind), f"{type(kind).__name__} is not a pcrobust.sections.SectionKind"
    assert isinstance(kind.options, type) and issubclass(kind.options, SectionOptions)
    options = kind.options.model_validate({})
    assert isinstance(kind.title(options), str) and isinstance(kind.label(options), str)


def section_run(kit: Kit, kind: SectionEntry, folder: Path, batch_size: int) -> dict[str, Any]:
    """The results entry of a one-section plan of ``kind`` (default options) on 8 images at T = 1."""
    raw = {"model": {"plugin": kit.model_plugin()}, "data": {"n": 8},
           "run": {"device": "cpu", "timesteps": 1, "batch_size": batch_size, "images_per_unit": batch_size},
           "sections": [{"kind": kind.name}]}
    results = run(kit.host, parse_plan(raw, kit.host.registries), RunFolder(folder), progress=False)
    assert results is not None
    section: dict[str, Any] = results["sections"][0]
    return section


def test_section_runs_deterministically_whatever_the_batching(section_case: SectionEntry, kit: Kit,
                                                               tmp_path: Path) -> None:
    """A section of the kind with default options runs on 8 images at T = 1; its series hold one row per image and
    a column per timestep (or measures, one value per timestep), and do not change with the batch size or another
    run."""
    first = section_run(kit, section_case, tmp_path / "a", 8)
    assert first["kind"] == section_case.name, "wrong kind"
    assert first.get("series") or first.get("measures"), "no series or measures"
    for series in first.get("series", []):
        assert len(series["counts"]) == 2 and series["n"] <= 8
    for measure in first.get("measures", []):
        assert len(measure["values"]) == 2 and measure["n"] <= 8
    other = section_run(kit, section_case, tmp_path / "b", 3)
    assert other.get("series") == first.get("series"), "the series change with the batch size"
    assert other.get("measures") == first.get("measures"), "the measures change with the batch size"
    assert section_run(kit, section_case, tmp_path / "c", 8) == first, "two runs differ"


# --- presets --------------------------------------------------------------------------------------------------


def test_preset_is_a_valid_plan(preset_case: PresetEntry, kit: Kit) -> None:
    """The preset's tables validate as a plan against the installed registries, the same each time."""
    raw = preset_case.plan()
    assert raw == preset_case.plan(), "plan() returns different tables on a second call"
    try:
        parse_plan(raw, kit.host.registries)
    except PcrobustError as exc:
        pytest.fail(f"preset {preset_case.name!r}: {exc}")
