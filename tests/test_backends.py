"""Foolbox and ART as backends of BIM and RPGD: the same adversarials without a random start, the same success
rates with one, one timestep per library call, and the ``backend`` option of a plan section."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import foolbox as fb
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn

from pcrobust.attacks import Attack
from pcrobust.engine import _chunks, _grid, attack_per_timestep
from pcrobust.models import evaluation_mode
from pcrobust_attacks.backends import LibraryBIM, LibraryRPGD
from pcrobust_attacks.bim import BIM, BIMOptions
from pcrobust_attacks.rpgd import RPGD, RPGDOptions
from pcrobust_predify.network import PredifyNet
from tests.conftest import make_tiny

LogitsAt = Callable[..., Tensor]


def bim(backend: str, **options: object) -> Attack:
    return (BIM if backend == "pcrobust" else LibraryBIM)(BIMOptions(backend=backend, **options), "linf")


def rpgd(backend: str, **options: object) -> Attack:
    return (RPGD if backend == "pcrobust" else LibraryRPGD)(RPGDOptions(backend=backend, **options), "l2")


def at(model: nn.Module, t: int) -> LogitsAt:
    def logits(z: Tensor, copies: Tensor | None = None) -> Tensor:
        return model(z, t)[t]

    return logits


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    from pcrobust_datasets.mnist import load_mnist_5k

    data = load_mnist_5k("test")
    return data.images[::100][:10], data.labels[::100][:10]


def cases(default_model: PredifyNet, digits: tuple[Tensor, Tensor]) -> list[tuple[nn.Module, Tensor, Tensor, int]]:
    """(model, images, labels, classes): the tiny net on random images, and the shipped net on MNIST digits."""
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    return [(make_tiny(), images, torch.arange(8) % 5, 5), (default_model, *digits, 10)]


@pytest.mark.parametrize("backend", ["foolbox", "art"])
@pytest.mark.parametrize("targeted", [True, False])
@pytest.mark.parametrize("kind", ["bim", "rpgd"])
def test_without_random_start_libraries_find_our_adversarials(default_model, digits, kind, targeted, backend):
    for model, x, y, classes in cases(default_model, digits):
        labels = (y + 1) % classes if targeted else y
        eps = torch.full((len(x),), 0.1 if kind == "bim" else 1.5)
        eps[::2] /= 2  # two budgets in one call: the library runs once per ε
        make = bim if kind == "bim" else rpgd
        with evaluation_mode(model):
            for t in (0, 2):
                ours = make("pcrobust", steps=10, rel_stepsize=0.2, random_start=False)(
                    at(model, t), x, labels, eps, range(len(x)), targeted=targeted)
                theirs = make(backend, steps=10, rel_stepsize=0.2, random_start=False)(
                    at(model, t), x, labels, eps, range(len(x)), targeted=targeted)
                assert (ours - theirs).abs().max().item() <= 1e-5
                assert not torch.equal(ours, x)


def test_the_untargeted_l2_differences_were_float32_noise_foolboxs_norm_floor_and_arts_clipping_order(
        default_model, digits):
    """On confidently classified digits (the untargeted case), the float32 cross-entropy's gradient is rounding
    noise and often shorter than 1e-12. Given float64 logits, stock Foolbox, which floors the length at 1e-12,
    differs from us on exactly those images; stock ART, which clips to [0, 1] before projecting onto the ε-ball,
    differs too."""
    x, y = digits
    logits = at(default_model, 1)

    class Plain(nn.Module):
        def forward(self, z: Tensor) -> Tensor:
            return logits(z).double()

    def gradient(loss: Callable[[Tensor], Tensor]) -> Tensor:
        z = x.clone().requires_grad_(True)
        return torch.autograd.grad(loss(logits(z)), z)[0].flatten(1)

    with evaluation_mode(default_model):
        single = gradient(lambda out: F.cross_entropy(out, y, reduction="sum"))
        double = gradient(lambda out: F.cross_entropy(out.double(), y, reduction="sum"))
        eps = torch.full((len(x),), 1.5)
        ours = rpgd("pcrobust", steps=10, rel_stepsize=0.2, random_start=False)(logits, x, y, eps, range(len(x)),
                                                                                 targeted=False)
        stock = fb.attacks.L2ProjectedGradientDescentAttack(rel_stepsize=0.2, steps=10, random_start=False)
        foolbox = stock.run(fb.PyTorchModel(Plain().eval(), bounds=(0, 1)), x, fb.criteria.Misclassification(y),
                            epsilon=1.5)
        classifier = PyTorchClassifier(Plain().eval(), loss=nn.CrossEntropyLoss(reduction="sum"),
                                       input_shape=(1, 28, 28), nb_classes=10, clip_values=(0.0, 1.0),
                                       device_type="cpu")
        art = torch.from_numpy(ProjectedGradientDescent(classifier, norm=2, eps=1.5, eps_step=0.3, max_iter=10,
                                                        num_random_init=0, batch_size=10, verbose=False)
                               .generate(x.numpy(), y=y.numpy()))
    agreement = F.cosine_similarity(single, double)
    short = double.norm(dim=1) < 1e-12
    assert (agreement[double.norm(dim=1) > 1e-2] > 0.999).all() and (agreement < 0.9).any()
    differs = (ours - foolbox).flatten(1).abs().amax(1) > 1e-5
    assert short.any() and torch.equal(differs, short)
    assert (ours - art).abs().max().item() > 1e-3


def mcnemar_agrees(a: Tensor, b: Tensor) -> bool:
    """Paired successes ``a`` and ``b`` on the same copies are consistent with equal success rates: the
    discordant pairs split evenly within 4 standard deviations."""
    first, second = int((a & ~b).sum()), int((~a & b).sum())
    return abs(first - second) <= 4 * math.sqrt(first + second) + 1


@pytest.mark.parametrize("backend", ["foolbox", "art"])
@pytest.mark.parametrize("kind,epsilon", [("bim", 0.08), ("rpgd", 0.5)])
def test_with_random_start_success_rates_agree(tiny, kind, epsilon, backend):
    n, timesteps = 600, 2
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    make = bim if kind == "bim" else rpgd
    with evaluation_mode(tiny):
        targets = (tiny(x, 0)[0].argmax(1) + 1) % 5
        success = {b: attack_per_timestep(tiny, make(b, steps=3, rel_stepsize=0.5, random_start=True), x, targets,
                                          [epsilon], timesteps, "t", 256, torch.device("cpu"), 0, range(n),
                                          progress=False).success[0]
                   for b in ("pcrobust", backend)}
    for t in range(timesteps + 1):
        ours, theirs = success["pcrobust"][t], success[backend][t]
        assert 0.2 * n < ours.sum() < 0.8 * n
        assert mcnemar_agrees(ours, theirs), (t, int(ours.sum()), int(theirs.sum()))


@pytest.mark.parametrize("backend", ["foolbox", "art"])
def test_library_random_starts_are_seeded_per_call_and_leave_global_generators_alone(tiny, images, backend):
    targets = (torch.arange(8) + 1) % 5
    eps = torch.full((8,), 0.5)
    attack = rpgd(backend, steps=2, rel_stepsize=0.5)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    with evaluation_mode(tiny):
        first = attack(at(tiny, 1), images, targets, eps, range(8))
        again = attack(at(tiny, 1), images, targets, eps, range(8))
        other = attack(at(tiny, 1), images, targets, eps, range(1, 9))
        plain = rpgd(backend, steps=2, rel_stepsize=0.5, random_start=False)(at(tiny, 1), images, targets, eps,
                                                                             range(8))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state, strict=True))
    assert torch.equal(first, again) and not torch.equal(first, other) and not torch.equal(first, plain)


def test_an_attack_that_runs_one_timestep_per_chunk_never_gets_mixed_timesteps():
    library, own = rpgd("foolbox"), rpgd("pcrobust")
    grid = _grid(own, range(4), 2, 5)
    cuda = torch.device("cuda")
    assert all(len(set(c[:, 0].tolist())) == 1 for c in _chunks(library, grid, range(4), "t", 16, cuda))
    assert any(len(set(c[:, 0].tolist())) > 1 for c in _chunks(own, grid, range(4), "t", 16, cuda))


def test_library_queries_are_counted_per_copy(tiny, images):
    targets = (torch.arange(8) + 1) % 5
    with evaluation_mode(tiny):
        counts = {b: attack_per_timestep(tiny, bim(b, steps=3), images, targets, [0.1, 0.2], 2, "t", 64,
                                         torch.device("cpu"), 0, range(8), progress=False).queries
                  for b in ("pcrobust", "foolbox", "art")}
    assert (counts["pcrobust"] == 3).all() and (counts["foolbox"] == 3).all()
    assert (counts["art"] > 3).all()  # ART also reads the class count and checks its success


SECTION = '[[sections]]\nkind = "attack"\nattack = "{attack}"\nepsilons = [{eps}]\nn = 4\nname = "{name}"\n' \
          'options = {{ steps = 3, random_start = false, backend = "{backend}" }}\n'


def test_a_plan_section_picks_its_backend_and_records_it(cli, tmp_path: Path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[model]\nplugin = "predify"\n[data]\nn = 40\n[run]\ntimesteps = 1\ndevice = "cpu"\n'
                    + "".join(SECTION.format(attack=attack, eps=eps, name=f"{attack} {backend}", backend=backend)
                              for attack, eps in (("bim", 0.2), ("rpgd", 1.5))
                              for backend in ("pcrobust", "foolbox", "art")))
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    sections = {s["id"]: s for s in json.loads((tmp_path / "r" / "results.json").read_text())["sections"]}
    for attack in ("bim", "rpgd"):
        ours = sections[f"{attack} pcrobust"]
        assert ours["attack"]["options"]["backend"] == "pcrobust" and "library" not in ours["attack"]
        for backend, package in (("foolbox", "foolbox"), ("art", "adversarial-robustness-toolbox")):
            theirs = sections[f"{attack} {backend}"]
            assert theirs["attack"]["options"]["backend"] == backend
            assert theirs["attack"]["library"].startswith(f"{package} ")
            assert theirs["series"][0]["counts"] == ours["series"][0]["counts"]

    code, out, err = cli("plan", "--plugin", "predify", "--attack", "rpgd", "--backend", "art")
    assert code == 0 and 'backend = "art"' in out, err
    plan.write_text('[model]\nplugin = "predify"\n[[sections]]\nkind = "attack"\nattack = "rpgd"\n'
                    'options = { backend = "cleverhans" }\n')
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "bad"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "backend" in err and all(name in err for name in ("'pcrobust'", "'foolbox'", "'art'", "cleverhans"))


def test_hsj_through_foolbox_stays_adversarial_and_counts_its_queries(tiny, images):
    from pcrobust.engine import StartPoints, attack_per_timestep
    from pcrobust.models import evaluation_mode
    from pcrobust_attacks.backends import LibraryHSJ
    from pcrobust_attacks.hsj import HopSkipJump, HSJOptions

    with evaluation_mode(tiny):
        predicted = tiny(images, 1).argmax(2)  # [T+1, N]
    goals = predicted[1].roll(1)
    choice = torch.stack([torch.tensor([int((predicted[t] == g).nonzero()[0]) if (predicted[t] == g).any() else -1
                                        for g in goals]) for t in range(2)])
    starts = StartPoints(images, choice)
    budget = {"steps": 3, "initial_evals": 10}
    outcomes = {}
    for backend, make in (("pcrobust", HopSkipJump), ("foolbox", LibraryHSJ)):
        attack = make(HSJOptions(**budget, backend=backend), "l2")
        with evaluation_mode(tiny):
            outcomes[backend] = attack_per_timestep(tiny, attack, images, goals, [0.5, 100.0], 1, "t", 64,
                                                    torch.device("cpu"), 0, range(8), starts=starts,
                                                    progress=False)
    ready = (choice >= 0)
    for outcome in outcomes.values():
        assert outcome.success[1][ready].all(), "at an unbounded ε every copy with a start stays adversarial"
        assert (outcome.queries[0][ready] > 0).all() and (outcome.queries[0][~ready] == 0).all()
    foolbox, ours = outcomes["foolbox"].records["distance"][0], outcomes["pcrobust"].records["distance"][0]
    assert torch.isfinite(foolbox[ready]).all() and foolbox[ready].median() > 0
    assert ours[ready].median() <= 1.5 * foolbox[ready].median()
