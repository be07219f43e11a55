"""SPSA (gradient-free, L∞): the ball, per-copy seeding, its gradient estimate, real digits, and a plan section."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pcrobust.engine import attack_per_timestep, margins
from pcrobust.models import evaluation_mode
from pcrobust_attacks.spsa import SPSA, SPSAOptions, estimate_gradient, margin_loss, rademacher


def test_spsa_stays_in_the_ball_and_is_seeded_per_copy_not_per_batch(tiny, images):
    targets = (torch.arange(8) + 1) % 5
    eps = torch.full((8,), 0.1)
    attack = SPSA(SPSAOptions(steps=4, samples=8, lr=0.05), "linf")
    with evaluation_mode(tiny):
        def logits(z, copies=None):
            return tiny(z, 2)[2]

        whole = attack(logits, images, targets, eps, range(8))
        again = attack(logits, images, targets, eps, range(8))
        part = attack(logits, images[3:5], targets[3:5], eps[3:5], range(3, 5))
        other_seeds = attack(logits, images, targets, eps, range(100, 108))
    assert ((whole - images).abs().flatten(1).amax(1) <= 0.1 + 1e-6).all()
    assert whole.min() >= 0 and whole.max() <= 1
    assert torch.equal(whole, again)
    torch.testing.assert_close(part, whole[3:5], atol=1e-5, rtol=0)
    assert not torch.equal(whole, other_seeds)
    assert not torch.equal(whole, images)


def test_untargeted_spsa_lowers_the_true_class_margin(tiny, images):
    labels = torch.arange(8) % 5
    eps = torch.full((8,), 0.2)
    with evaluation_mode(tiny):
        def logits(z, copies=None):
            return tiny(z, 1)[1]

        adversarial = SPSA(SPSAOptions(steps=5, samples=8, lr=0.05), "linf")(logits, images, labels, eps, range(8),
                                                                              targeted=False)
        before, after = margins(logits(images), labels), margins(logits(adversarial), labels)
    assert (after < before).float().mean() >= 0.75


def test_spsa_estimates_the_sign_of_a_smooth_gradient():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(16, 4, generator=g)
    x = torch.rand(3, 1, 4, 4, generator=g)
    labels = torch.tensor([0, 1, 2])

    def loss_fn(z):
        return margin_loss(z.flatten(1) @ weights, labels, targeted=True)

    x_grad = x.clone().requires_grad_(True)
    (true,) = torch.autograd.grad(loss_fn(x_grad).sum(), x_grad)
    estimate = estimate_gradient(loss_fn, x, rademacher(x.shape[1:], [7, 8, 9], 256), 0.01)
    agreement = (estimate.sign() == true.sign()).float().mean().item()
    assert agreement > 0.8, agreement
    cosine = torch.nn.functional.cosine_similarity(estimate.flatten(1), true.flatten(1)).min().item()
    assert cosine > 0.6, cosine


def test_targeted_spsa_moves_real_digits_towards_their_targets(default_model):
    from pcrobust_datasets.mnist import load_mnist_5k

    data = load_mnist_5k("test")
    x, y = data.images[::50][:6], data.labels[::50][:6]
    targets = (y + 1) % 10
    attack = SPSA(SPSAOptions(steps=30, samples=16, lr=0.05), "linf")
    with evaluation_mode(default_model):
        outcome = attack_per_timestep(default_model, attack, x, targets, [0.3], 1, "t", 100,
                                      torch.device("cpu"), 0, range(6), progress=False)
        start = torch.stack([margins(logits, targets) for logits in default_model(x, 1)])  # [T+1, N]
    assert outcome.success[0].sum() > 0
    assert (outcome.margin[0].float() > start + 1).all(), "every copy's margin towards its target grew"


def test_early_stopping_freezes_a_copy(tiny, images):
    targets = torch.zeros(8, dtype=torch.long)
    eps = torch.full((8,), 0.2)
    with evaluation_mode(tiny):
        def logits(z, copies=None):
            return tiny(z, 1)[1]

        frozen = SPSA(SPSAOptions(steps=3, samples=4, early_stop_margin=1e9), "linf")(
            logits, images, targets, eps, range(8))
    assert torch.equal(frozen, images)


def test_an_spsa_section_runs_through_the_cli(cli, tmp_path: Path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[model]\nplugin = "predify"\n[data]\nn = 40\n[run]\ntimesteps = 1\ndevice = "cpu"\n'
                    '[[sections]]\nkind = "attack"\nattack = "spsa"\nepsilons = [0.2]\nn = 2\n'
                    'options = { steps = 2, samples = 4 }\n')
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    section = json.loads((tmp_path / "r" / "results.json").read_text())["sections"][0]
    assert section["attack"]["norm"] == "linf" and section["attack"]["plugin"] == "attacks"
    assert section["attack"]["options"] == {"steps": 2, "delta": 0.01, "lr": 0.01, "samples": 4,
                                            "early_stop_margin": None}
    assert section["series"][0]["key"] == {"epsilon": 0.2} and section["series"][0]["n"] == 2
    assert section["queries"] == [{"epsilon": 0.2, "mean": [16.0, 16.0], "max": [16.0, 16.0]}], "2 steps × 2 × 4"
    assert section["records"]["iterations"][0]["mean"] == [2.0, 2.0]
    report = (tmp_path / "r" / "report.html").read_text()
    assert "model queries per image" in report and "<td>16.0</td>" in report


def test_spsa_queries_are_counted_per_copy_and_frozen_copies_stop_spending(tiny, images):
    targets = (torch.arange(8) + 1) % 5
    with evaluation_mode(tiny):
        plain = attack_per_timestep(tiny, SPSA(SPSAOptions(steps=3, samples=4), "linf"), images, targets, [0.1, 0.2],
                                    2, "t", 7, torch.device("cpu"), 0, range(8), progress=False)
        frozen = attack_per_timestep(tiny, SPSA(SPSAOptions(steps=3, samples=4, early_stop_margin=1e9), "linf"),
                                     images, targets, [0.1], 2, "t", 7, torch.device("cpu"), 0, range(8),
                                     progress=False)
    assert torch.equal(plain.queries, torch.full((2, 3, 8), 3 * 2 * 4.0)), "steps × 2 × samples per copy"
    assert torch.equal(plain.records["iterations"], torch.full((2, 3, 8), 3.0))
    assert torch.equal(frozen.queries, torch.ones(1, 3, 8)), "one margin check, then frozen"
    assert torch.equal(frozen.records["iterations"], torch.zeros(1, 3, 8))
