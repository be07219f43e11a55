"""HopSkipJump (decision-based, L2 and L∞): adversarial answers at every ε, shrinking distances, per-copy seeding,
query budgets, untargeted and targeted success, Foolbox as an oracle, and a plan section."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from pcrobust.attacks import LogitsFn, project
from pcrobust.engine import StartPoints, attack_per_timestep
from pcrobust.models import evaluation_mode
from pcrobust.seeding import derived_seed, float_key
from pcrobust.starts import nearest_starts
from pcrobust.vocabulary import Norm
from pcrobust_attacks.hsj import HopSkipJump, HSJOptions, distances
from pcrobust_predify.network import PredifyNet

FAST = {"steps": 4, "initial_evals": 10}
INF = float("inf")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: the tiny model's many small calls only lose time to threads contending for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def at(model: PredifyNet, timestep: int) -> LogitsFn:
    """The logits of ``model`` at ``timestep``, for any copies."""

    def logits(z: Tensor, copies: Tensor | None = None) -> Tensor:
        return model(z, timestep)[timestep]

    return logits


def targeted_case(model: PredifyNet, x: Tensor, timestep: int, norm: Norm) -> tuple[Tensor, Tensor]:
    """Targets (3 for images predicted 0, else 0) and the nearest pool image classified as each target."""
    pool = torch.rand(48, *x.shape[1:], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pool_logits, predicted = model(pool, timestep), at(model, timestep)(x).argmax(1)
    targets = torch.where(predicted == 0, 3, 0)
    points = nearest_starts(x, range(100, 100 + len(x)), predicted, targets, True, pool, range(len(pool)),
                            pool_logits[timestep].argmax(1), pool_logits, "last", timestep, norm)
    assert (points.choice >= 0).all()
    return targets, pool[points.choice[0]]


def hsj(norm: Norm, **options: float) -> HopSkipJump:
    return HopSkipJump(HSJOptions(**{**FAST, **options}), norm)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_answers_are_adversarial_closer_than_the_starts_and_lie_in_every_ball(tiny, images, norm):
    logits = at(tiny, 1)
    targets, starts = targeted_case(tiny, images, 1, norm)
    with evaluation_mode(tiny):
        found = hsj(norm).attack(logits, images, targets, torch.full((8,), INF), range(8), starts=starts)
        assert (logits(found.inputs).argmax(1) == targets).all(), "a decision-based attack stays adversarial"
        for epsilon in (0.05, 0.5, 2.0):
            clipped = project(images, found.inputs, torch.full((8,), epsilon), norm)
            assert (distances(clipped - images, norm) <= epsilon + 1e-5).all()
            assert clipped.min() >= 0 and clipped.max() <= 1
            inside = found.records["distance"] <= epsilon
            assert (logits(clipped).argmax(1) == targets)[inside].all()
    distance = distances(found.inputs - images, norm)
    torch.testing.assert_close(found.records["distance"], distance)
    start = distances(starts - images, norm)
    assert (distance < start).all() and distance.median() < 0.25 * start.median()
    assert torch.equal(found.records["iterations"], torch.full((8,), 4))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_a_copy_is_seeded_by_its_own_seed_not_by_its_batch(tiny, images, norm):
    logits = at(tiny, 1)
    targets, starts = targeted_case(tiny, images, 1, norm)
    attack, eps = hsj(norm, steps=3), torch.full((8,), INF)
    with evaluation_mode(tiny):
        whole = attack(logits, images, targets, eps, range(8), starts=starts)
        again = attack(logits, images, targets, eps, range(8), starts=starts)
        part = attack(logits, images[3:5], targets[3:5], eps[3:5], range(3, 5), starts=starts[3:5])
        other = attack(logits, images, targets, eps, range(100, 108), starts=starts)
    assert torch.equal(whole, again)
    torch.testing.assert_close(part, whole[3:5], atol=1e-5, rtol=0)
    assert not torch.equal(whole, other)


class Counting:
    """A per-copy logits function that counts the rows asked of each copy and the rows of each call."""

    def __init__(self, model: PredifyNet, copies: int) -> None:
        self.logits, self.asked = at(model, 1), torch.zeros(copies, dtype=torch.long)
        self.calls: list[int] = []

    def __call__(self, z: Tensor, copies: Tensor | None = None) -> Tensor:
        assert copies is not None and len(copies) == len(z)
        self.asked.index_add_(0, copies, torch.ones_like(copies))
        self.calls.append(len(z))
        return self.logits(z)


def test_queries_stay_within_each_copys_budget_and_finished_copies_stop(tiny, images):
    targets, starts = targeted_case(tiny, images, 1, "l2")
    starts[2] = images[2]  # not adversarial: one query, then left clean
    eps = torch.full((8,), INF)
    with evaluation_mode(tiny):
        budgeted, alone = Counting(tiny, 8), Counting(tiny, 1)
        found = hsj("l2", steps=8, max_queries=150, max_batch=64).attack(budgeted, images, targets, eps, range(8),
                                                                          starts=starts)
        hsj("l2", steps=8, max_queries=150, max_batch=64).attack(alone, images[5:6], targets[5:6], eps[5:6], [5],
                                                                 starts=starts[5:6])
        done, one = Counting(tiny, 8), Counting(tiny, 1)
        short = hsj("l2", steps=2).attack(done, images, targets, eps, range(8), starts=starts)
        hsj("l2", steps=2).attack(one, images[5:6], targets[5:6], eps[5:6], [5], starts=starts[5:6])
    assert budgeted.asked[2] == 1 and torch.equal(found.inputs[2], images[2])
    assert found.records["distance"][2].isnan() and found.records["iterations"][2] == 0
    others = torch.tensor([i for i in range(8) if i != 2])
    assert torch.equal(budgeted.asked[others], torch.full((7,), 150)), "8 steps need more than 150 queries"
    assert (found.records["iterations"][others] < 8).all()
    assert alone.asked[0] == budgeted.asked[5]
    assert max(budgeted.calls) <= 64
    assert (done.asked[others] < 10000).all() and torch.equal(short.records["iterations"][others], torch.full((7,), 2))
    assert len(set(done.asked[others].tolist())) > 1, "copies stop on their own, not with the batch"
    assert one.asked[0] == done.asked[5]
    assert len(done.calls) < 2 * len(one.calls), "all copies' rows share each call"


def test_the_engine_counts_the_same_queries_and_skips_copies_without_a_start(tiny, images):
    targets, starts = targeted_case(tiny, images, 1, "linf")
    choice = torch.arange(8).repeat(2, 1)
    choice[:, 0] = -1
    points = StartPoints(torch.cat([images[:1], starts[1:]]), choice)
    attack = hsj("linf", steps=3, max_queries=120)
    with evaluation_mode(tiny):
        outcome = attack_per_timestep(tiny, attack, images, targets, [0.05, 0.3], 1, "t", 5, torch.device("cpu"),
                                      0, range(8), starts=points, progress=False)
        counting = Counting(tiny, 7)
        seeds = [derived_seed(0, float_key(INF), 1, i) for i in range(1, 8)]
        found = attack.attack(counting, images[1:], targets[1:], torch.full((7,), INF), seeds, starts=starts[1:])
    assert torch.equal(outcome.queries[:, 1, 1:], counting.asked.double().expand(2, 7))
    assert (outcome.queries <= 120).all()
    assert torch.equal(outcome.queries[:, :, 0], torch.zeros(2, 2)), "no start, not attacked"
    assert outcome.records["distance"][:, :, 0].isnan().all()
    torch.testing.assert_close(outcome.records["distance"][0, 1, 1:], found.records["distance"].double())
    for row, epsilon in enumerate((0.05, 0.3)):
        assert outcome.success[row, 1, 1:][found.records["distance"] <= epsilon].all()
    assert outcome.success[1, 1, 1:].float().mean() > outcome.success[0, 1, 1:].float().mean()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_untargeted_answers_leave_the_label(tiny, images, norm):
    logits = at(tiny, 2)
    pool = torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pool_logits, labels = tiny(pool, 2), logits(images).argmax(1)
    points = nearest_starts(images, range(100, 108), labels, labels, False, pool, range(48),
                            pool_logits[2].argmax(1), pool_logits, "last", 2, norm)
    starts = pool[points.choice[0]]
    with evaluation_mode(tiny):
        found = hsj(norm).attack(logits, images, labels, torch.full((8,), INF), range(8), targeted=False,
                                 starts=starts)
        assert (logits(found.inputs).argmax(1) != labels).all()
    assert (found.records["distance"] < distances(starts - images, norm)).all()


@pytest.mark.parametrize(("norm", "epsilons"), [("l2", [0.02, 1.0]), ("linf", [0.002, 0.2])])
def test_targeted_success_reaches_every_image_at_a_large_budget(tiny, images, norm, epsilons):
    targets, starts = targeted_case(tiny, images, 2, norm)
    points = StartPoints(starts, torch.arange(8).view(1, 8))
    with evaluation_mode(tiny):
        outcome = attack_per_timestep(tiny, hsj(norm, steps=6), images, targets, epsilons, 2, "last", 8,
                                      torch.device("cpu"), 0, range(8), starts=points, progress=False)
    assert outcome.success[1, 2].all(), "scored at the attacked readout"
    assert outcome.success[0, 2].float().mean() < 0.5
    assert torch.equal(outcome.records["iterations"], torch.full((2, 3, 8), 6.0))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_median_distance_is_no_worse_than_foolbox(tiny, norm):
    """Foolbox's ``HopSkipJumpAttack``, one image at a time (its batches share one gradient norm), with the same
    iterations, samples and starts, on the feedforward pass; the medians agree to within 10%."""
    import foolbox as fb

    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    targets, starts = targeted_case(tiny, x, 0, norm)
    logits = at(tiny, 0)

    class Feedforward(nn.Module):
        def forward(self, z: Tensor) -> Tensor:
            return logits(z)

    with evaluation_mode(tiny):
        ours = hsj(norm, steps=10, initial_evals=20).attack(logits, x, targets, torch.full((12,), INF), range(12),
                                                            starts=starts).records["distance"]
        model = fb.PyTorchModel(Feedforward().eval(), bounds=(0, 1))
        reference = fb.attacks.HopSkipJumpAttack(steps=10, initial_gradient_eval_steps=20, constraint=norm)
        torch.manual_seed(0)
        theirs = torch.cat([distances(reference.run(model, x[i:i + 1], fb.criteria.TargetedMisclassification(
            targets[i:i + 1]), starting_points=starts[i:i + 1]) - x[i:i + 1], norm) for i in range(12)])
    assert ours.median() <= 1.1 * theirs.median(), (ours.median(), theirs.median())


def test_an_hsj_section_runs_through_the_cli(cli, tmp_path: Path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[model]\nplugin = "predify"\n[data]\nn = 40\n[run]\ntimesteps = 1\ndevice = "cpu"\n'
                    '[[sections]]\nkind = "attack"\nattack = "hsj"\nn = 2\n'
                    'options = { steps = 2, initial_evals = 10, max_queries = 60 }\n')
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    section = json.loads((tmp_path / "r" / "results.json").read_text())["sections"][0]
    assert section["attack"]["norm"] == "l2" and section["attack"]["plugin"] == "attacks"
    assert section["attack"]["options"]["max_queries"] == 60
    assert [s["key"] for s in section["series"]] == [{"epsilon": 1.0}, {"epsilon": 2.0}, {"epsilon": 3.0}]
    starts = section["starts"]["per_image"]
    assert len(starts) == 2 and all(len(per_t) == 2 for per_t in starts.values())
    for row in section["queries"]:
        assert all(0 < value <= 60 for value in row["max"] if value is not None)
    assert set(section["records"]) == {"distance", "iterations"}
