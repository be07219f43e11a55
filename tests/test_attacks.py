"""Attack invariants: the ε-ball and [0, 1] by construction, targets, and BIM against Foolbox 3."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from pcrobust.attacks import Attack, GradientAttackOptions, project
from pcrobust.engine import attack_per_timestep
from pcrobust.models import evaluation_mode
from pcrobust.targets import choose_targets
from pcrobust_attacks.bim import BIM
from tests.conftest import foolbox_targeted_successes


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_stays_in_ball_and_bounds(norm):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 5, 5, generator=g)
    far = x + 3 * torch.randn(x.shape, generator=g)
    eps = torch.linspace(0.01, 2.0, 16)
    out = project(x, far, eps, norm)
    size = (out - x).flatten(1).abs().amax(1) if norm == "linf" else (out - x).flatten(1).norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert out.min() >= 0 and out.max() <= 1


class RunsAway(Attack):
    """An attack that ignores its budget: the base class must still enforce it."""

    norm = "linf"

    def run(self, logits_fn, x, target, epsilon, seeds, targeted) -> Tensor:
        return x + 5.0


def test_base_class_enforces_the_budget():
    x = torch.rand(4, 1, 3, 3)
    runs_away = RunsAway(GradientAttackOptions(), "linf")
    out = runs_away(lambda z: z.flatten(1), x, torch.zeros(4, dtype=torch.long),
                                     torch.full((4,), 0.1), range(4))
    assert ((out - x).abs() <= 0.1 + 1e-7).all() and out.max() <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        runs_away(lambda z: z, x + 2, torch.zeros(4, dtype=torch.long), torch.ones(4), range(4))
    with pytest.raises(ValueError, match="one seed per sample"):
        runs_away(lambda z: z, x, torch.zeros(4, dtype=torch.long), torch.ones(4), range(3))


@pytest.mark.parametrize("bad", [{"steps": 0}, {"rel_stepsize": 0.0}])
def test_settings_validated(bad):
    with pytest.raises(ValueError):
        GradientAttackOptions(**bad)


def test_targets_are_deterministic_and_never_the_label():
    labels = torch.arange(10).repeat(5)
    ids = list(range(100, 150))
    shifted = choose_targets("shift", labels, 10, image_indices=ids, shift=3)
    assert torch.equal(shifted, (labels + 3) % 10)
    random_a = choose_targets("random", labels, 10, image_indices=ids, seed=7)
    assert torch.equal(random_a, choose_targets("random", labels, 10, image_indices=ids, seed=7))
    assert not torch.equal(random_a, choose_targets("random", labels, 10, image_indices=ids, seed=8))
    assert (random_a != labels).all() and (shifted != labels).all()
    logits = torch.randn(50, 10)
    assert torch.equal(choose_targets("least-likely", labels, 10, image_indices=ids, feedforward_logits=logits),
                       logits.argmin(1))
    with pytest.raises(ValueError):
        choose_targets("shift", labels, 10, image_indices=ids, shift=10)


def test_random_targets_are_keyed_by_dataset_index_not_position():
    labels = torch.arange(10).repeat(3)
    ids = list(range(30))
    every = choose_targets("random", labels, 10, image_indices=ids, seed=3)
    some = choose_targets("random", labels[10:20], 10, image_indices=ids[10:20], seed=3)
    assert torch.equal(every[10:20], some), "an image's target must not depend on the other images chosen"


def test_attack_seeds_are_keyed_by_epsilon_value_and_dataset_index(tiny, images):
    """Adding an ε or dropping an image leaves every other copy's random start, hence its outcome, alone."""
    bim = BIM(GradientAttackOptions(steps=2, rel_stepsize=0.1, random_start=True), "linf")
    targets = (torch.arange(8) + 1) % 5
    ids = [11, 3, 57, 8, 21, 40, 2, 99]
    with evaluation_mode(tiny):
        full = attack_per_timestep(tiny, bim, images, targets, [0.2, 0.5], 2, "t", 64, torch.device("cpu"), 4, ids,
                                   progress=False)
        part = attack_per_timestep(tiny, bim, images[2:6], targets[2:6], [0.5], 2, "t", 64, torch.device("cpu"), 4,
                                   ids[2:6], progress=False)
    assert torch.allclose(full.margin[1, :, 2:6], part.margin[0], atol=1e-5)
    assert torch.equal(full.success[1, :, 2:6], part.success[0])


def test_untargeted_bim_lowers_accuracy_and_reports_margins_of_the_label(default_model):
    from pcrobust_datasets.mnist import load_mnist_5k

    data = load_mnist_5k("test")
    x, y = data.images[:16], data.labels[:16]
    bim = BIM(GradientAttackOptions(steps=10), "linf")
    with evaluation_mode(default_model):
        clean_right = default_model(x, 1).argmax(2) == y
        outcome = attack_per_timestep(default_model, bim, x, y, [0.3], 1, "t", 64, torch.device("cpu"), 0,
                                      range(16), targeted=False, progress=False)
    broken = outcome.success[0]
    assert broken.sum() > clean_right.logical_not().sum(), "the attack must break more images than noise does"
    assert torch.equal(broken, outcome.margin[0] < 0), "untargeted: broken means the label lost its lead"


class Recorder(BIM):
    """BIM that also records which target each image got in each call."""

    def __init__(self, settings):
        super().__init__(settings, "linf")
        self.seen: list[tuple[Tensor, Tensor]] = []

    def run(self, logits_fn, x, target, epsilon, seeds, targeted):
        self.seen.append((x.clone(), target.clone()))
        return super().run(logits_fn, x, target, epsilon, seeds, targeted)


def test_engine_gives_each_image_one_target_at_every_timestep(tiny, images):
    attack = Recorder(GradientAttackOptions(steps=2))
    targets = (torch.arange(8) * 3) % 5
    with evaluation_mode(tiny):
        attack_per_timestep(tiny, attack, images, targets, [0.1, 0.2], 3, "t", 7, torch.device("cpu"), 0, range(8),
                            progress=False)
    pairs = [(x, t) for xs, ts in attack.seen for x, t in zip(xs, ts, strict=True)]
    assert len(pairs) == 8 * 2 * 4  # images × ε × timesteps
    for x, target in pairs:
        image = next(i for i in range(8) if torch.equal(images[i], x))
        assert target == targets[image]


def per_timestep_loop(model, images, targets, eps, timesteps, settings):
    """The reference scripts' way: a separate attack for each timestep, scored at that timestep."""
    hits = []
    for t in range(timesteps + 1):
        def logits_fn(z, t=t):
            return model(z, t)[t]
        x_adv = BIM(settings, "linf")(logits_fn, images, targets, torch.full((len(images),), eps),
                                      range(len(images)))
        with torch.no_grad():
            hits.append(int((logits_fn(x_adv).argmax(1) == targets).sum()))
    return hits


def test_batched_engine_equals_one_attack_per_timestep(tiny, images):
    settings = GradientAttackOptions(steps=5, rel_stepsize=0.25)
    targets = (torch.arange(8) + 1) % 5
    with evaluation_mode(tiny):
        batched = attack_per_timestep(tiny, BIM(settings, "linf"), images, targets, [0.3], 3, "t", 64,
                                      torch.device("cpu"), 0, range(8), progress=False)
        looped = per_timestep_loop(tiny, images, targets, 0.3, 3, settings)
    assert batched.success[0].sum(1).tolist() == looped
    assert sum(looped) > 0


def test_avg_readout_is_attacked_once_and_scored_at_every_timestep(tiny, images):
    targets = (torch.arange(8) + 2) % 5
    with evaluation_mode(tiny):
        bim = BIM(GradientAttackOptions(steps=5), "linf")
        outcome = attack_per_timestep(tiny, bim, images, targets, [0.5], 3, "avg", 64, torch.device("cpu"), 0,
                                      range(8), progress=False)
    assert outcome.success.shape == (1, 4, 8) and outcome.margin.shape == (1, 4, 8)
    assert outcome.success.sum() > 0
    assert torch.equal(outcome.success, outcome.margin > 0), "a hit target has a positive margin"


def test_random_start_stays_in_budget_and_is_seeded_per_sample(tiny, images):
    attack = BIM(GradientAttackOptions(steps=1, rel_stepsize=0.01, random_start=True), "linf")
    eps = torch.full((8,), 0.05)
    with evaluation_mode(tiny):
        def run(seeds, count=8):
            return attack(lambda z: tiny(z, 1)[1], images[:count], torch.zeros(count, dtype=torch.long),
                          eps[:count], seeds)
        a, b, c = run(range(8)), run(range(8)), run(range(1, 9))
        alone = run(range(3), count=3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a[:3], alone, atol=1e-6), "a sample's start must not depend on its batch"
    assert ((a - images).abs() <= 0.05 + 1e-7).all()


def test_engine_random_starts_do_not_depend_on_batch_size(tiny, images):
    settings = GradientAttackOptions(steps=3, rel_stepsize=0.5, random_start=True)
    targets = (torch.arange(8) + 1) % 5
    with evaluation_mode(tiny):
        counts = [attack_per_timestep(tiny, BIM(settings, "linf"), images, targets, [0.2, 0.4], 2, "t", size,
                                      torch.device("cpu"), 5, range(8), progress=False).success for size in (5, 48)]
        other_seed = attack_per_timestep(tiny, BIM(settings, "linf"), images, targets, [0.2, 0.4], 2, "t", 48,
                                         torch.device("cpu"), 6, range(8), progress=False).success
    assert torch.equal(counts[0], counts[1])
    assert counts[0].sum() > 0 and other_seed.shape == counts[0].shape


def test_bim_matches_foolbox_linf_basic_iterative_attack(default_model):
    fb = pytest.importorskip("foolbox")
    from pcrobust_datasets.mnist import load_mnist_5k

    data = load_mnist_5k("test")
    x, y = data.images[::100][:10], data.labels[::100][:10]
    targets = (y + 1) % 10
    timesteps, eps = 2, 0.3
    settings = GradientAttackOptions(steps=10, rel_stepsize=0.2)
    with evaluation_mode(default_model):
        ours = attack_per_timestep(default_model, BIM(settings, "linf"), x, targets, [eps], timesteps, "t", 100,
                                   torch.device("cpu"), 0, range(10), progress=False).success[0].sum(1).tolist()
        theirs = foolbox_targeted_successes(default_model, fb.attacks.LinfBasicIterativeAttack(rel_stepsize=0.2,
                                                                                               steps=10),
                                            x, targets, eps, timesteps)
    assert ours == theirs


def test_first_readout_attacks_the_feedforward_pass_and_scores_every_timestep(tiny, images):
    targets = (torch.arange(8) + 1) % 5
    bim = BIM(GradientAttackOptions(steps=4, rel_stepsize=0.3), "linf")
    with evaluation_mode(tiny):
        first = attack_per_timestep(tiny, bim, images, targets, [0.4], 3, "first", 64, torch.device("cpu"), 0,
                                    range(8), progress=False)
        per_t = attack_per_timestep(tiny, bim, images, targets, [0.4], 3, "t", 64, torch.device("cpu"), 0,
                                    range(8), progress=False)
        crafted = bim(lambda z: tiny(z, 0)[0], images, targets, torch.full((8,), 0.4), [0] * 8)
        scored = tiny(crafted, 3).argmax(2) == targets  # the feedforward adversarials, scored at every t
    assert torch.equal(first.success[0], scored), "first = craft on t = 0 alone, then score at every t"
    assert torch.equal(first.success[0, 0], per_t.success[0, 0]), "at t = 0 both attack the same readout"
    assert first.success.sum() > 0
