"""RPGD (L2 PGD with a random start): the L2 ball, its random start, restarts, Foolbox, and a plan section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pcrobust.engine import attack_per_timestep
from pcrobust.models import evaluation_mode
from pcrobust_attacks.rpgd import RPGD, RPGDOptions, uniform_in_l2_ball
from tests.conftest import foolbox_targeted_successes


def test_random_starts_are_uniform_in_the_l2_ball_and_seeded_per_sample():
    x = torch.zeros(400, 1, 2, 2)
    eps = torch.full((400,), 1.5)
    draws = uniform_in_l2_ball(x, eps, range(400))
    radius = draws.flatten(1).norm(dim=1)
    assert (radius <= 1.5 + 1e-6).all()
    fraction_of_volume = (radius / 1.5) ** 4  # uniform in a 4-d ball ⇔ (r/ε)^d uniform on [0, 1]
    assert abs(fraction_of_volume.mean().item() - 0.5) < 0.05
    assert (fraction_of_volume < 0.25).float().mean().item() == pytest.approx(0.25, abs=0.06)
    assert torch.equal(draws[10:20], uniform_in_l2_ball(x[10:20], eps[10:20], range(10, 20)))


def test_rpgd_stays_in_budgets_above_one_and_restarts_never_lose_a_success(tiny, images):
    targets = (torch.arange(8) + 1) % 5
    eps = torch.full((8,), 1.2)
    with evaluation_mode(tiny):
        def logits(z):
            return tiny(z, 2)[2]

        once = RPGD(RPGDOptions(steps=5, rel_stepsize=0.2), "l2")(logits, images, targets, eps, range(8))
        thrice = RPGD(RPGDOptions(steps=5, rel_stepsize=0.2, restarts=3), "l2")(logits, images, targets, eps,
                                                                                range(8))
        hit_once, hit_thrice = (logits(once).argmax(1) == targets), (logits(thrice).argmax(1) == targets)
    for adversarial in (once, thrice):
        assert ((adversarial - images).flatten(1).norm(dim=1) <= 1.2 + 1e-5).all()
        assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (hit_thrice | ~hit_once).all(), "a copy that one restart broke stays broken with more restarts"
    assert hit_once.any()


def test_rpgd_without_random_start_matches_foolbox_l2_basic_iterative(default_model):
    fb = pytest.importorskip("foolbox")
    from pcrobust_datasets.mnist import load_mnist_5k

    data = load_mnist_5k("test")
    x, y = data.images[::100][:10], data.labels[::100][:10]
    targets = (y + 1) % 10
    timesteps, eps = 1, 1.5
    attack = RPGD(RPGDOptions(steps=10, rel_stepsize=0.2, random_start=False), "l2")
    with evaluation_mode(default_model):
        ours = attack_per_timestep(default_model, attack, x, targets, [eps], timesteps, "t", 100,
                                   torch.device("cpu"), 0, range(10), progress=False).success[0].sum(1).tolist()
        theirs = foolbox_targeted_successes(default_model, fb.attacks.L2BasicIterativeAttack(rel_stepsize=0.2,
                                                                                             steps=10),
                                            x, targets, eps, timesteps)
    assert ours == theirs and sum(ours) > 0


def test_an_rpgd_section_takes_l2_budgets_above_one(cli, tmp_path: Path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[model]\nplugin = "predify"\n[data]\nn = 40\n[run]\ntimesteps = 1\ndevice = "cpu"\n'
                    '[[sections]]\nkind = "attack"\nattack = "rpgd"\nepsilons = [1.5]\nn = 4\n'
                    'options = { steps = 3, restarts = 2 }\n')
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    section = json.loads((tmp_path / "r" / "results.json").read_text())["sections"][0]
    assert section["attack"]["norm"] == "l2" and section["attack"]["plugin"] == "attacks"
    assert section["attack"]["options"] == {"steps": 3, "rel_stepsize": 0.025, "random_start": True, "restarts": 2,
                                          "backend": "pcrobust"}
    assert section["series"][0]["key"] == {"epsilon": 1.5} and section["series"][0]["n"] == 4
    code, _, err = cli("plan", "--plugin", "predify", "--attack", "rpgd", "--norm", "linf")
    assert code == 2 and "norm 'linf' is not offered by rpgd; choose from l2" in err
