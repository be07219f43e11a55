"""BIM and RPGD run by Foolbox 3 or ART, and HopSkipJump by Foolbox 3, instead of pcrobust, for cross-checking
any number.

A library sees one plain model, so these attacks run ``one_timestep_per_chunk``: the engine gives them
copies that all read one timestep, and the library attacks :class:`LibraryModel`, the copies' readout.
Copies are attacked in one library call per distinct ε. A library's random start draws from the global
generators of torch (Foolbox) or NumPy (ART); each call seeds them from its copies' seeds and restores
them afterwards, so with a random start the draws depend on which copies share a call.

The libraries are configured to follow pcrobust's conventions where theirs differ (see
:class:`~pcrobust_attacks.rpgd.RPGD`): their model answers float64 logits, so their cross-entropy is
computed in double precision; for RPGD, Foolbox's gradient normalisation has no 1e-12 floor on the length,
and ART clips to [0, 1] after its projection onto the ε-ball instead of before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import eagerpy as ep
import foolbox as fb
import numpy as np
import torch
from art.attacks.evasion import BasicIterativeMethod, ProjectedGradientDescent
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn

from pcrobust.attacks import Adversarials, LogitsFn
from pcrobust.seeding import derived_seed
from pcrobust_attacks.bim import BIM, BIMOptions
from pcrobust_attacks.hsj import HopSkipJump, HSJOptions, distances
from pcrobust_attacks.rpgd import RPGD, RPGDOptions

GroupAttack = Callable[[nn.Module, Tensor, Tensor, float, bool], Tensor]


class LibraryModel(nn.Module):
    """The readout of some copies of a chunk as a plain model: row ``j`` of an input is copy ``copies[j]``,
    cast to ``dtype`` (ART hands the model float32). Its logits are float64, so that a library's cross-entropy
    is computed in double precision, as pcrobust's is (see
    :func:`~pcrobust_attacks.bim.summed_cross_entropy`)."""

    def __init__(self, logits_fn: LogitsFn, copies: Tensor, dtype: torch.dtype) -> None:
        super().__init__()
        self.logits_fn = logits_fn
        self.copies = copies
        self.dtype = dtype

    def forward(self, z: Tensor) -> Tensor:
        if len(z) != len(self.copies):
            raise ValueError(f"the library evaluated {len(z)} rows for {len(self.copies)} copies")
        return self.logits_fn(z.to(self.dtype), self.copies).double()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's (CPU and CUDA) and NumPy's global generators seeded with ``seed``, restored on exit."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def by_epsilon(logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
               targeted: bool, attack: GroupAttack) -> Tensor:
    """``attack(model, x, labels, ε, targeted)`` once per distinct ε on the copies with that ε, seeded from them."""
    x_adv = x.clone()
    for value in epsilon.unique().tolist():
        rows = (epsilon == value).nonzero().squeeze(1)
        model = LibraryModel(logits_fn, rows, x.dtype).eval()
        with seeded(derived_seed(*(seeds[r] for r in rows.tolist()))):
            found = attack(model, x[rows], labels[rows], float(value), targeted)
        x_adv[rows] = found.to(device=x.device, dtype=x.dtype)
    return x_adv


class ExactL2PGD(fb.attacks.L2ProjectedGradientDescentAttack):
    """Foolbox's L2 PGD with each gradient divided by its length, without Foolbox's floor of 1e-12 on it."""

    def normalize(self, gradients: ep.Tensor, *, x: ep.Tensor, bounds: Any) -> ep.Tensor:
        length = fb.devutils.atleast_kd(ep.norms.l2(fb.devutils.flatten(gradients), axis=-1), gradients.ndim)
        return gradients * ep.where(length > 0, 1 / length, 0)


class BallThenBoxPGD(ProjectedGradientDescentPyTorch):
    """ART's PGD (PyTorch) that clips to the estimator's ``clip_values`` after the projection onto the ε-ball
    rather than before it."""

    def _apply_perturbation_pytorch(self, x: Tensor, perturbation: Tensor, eps_step: Any) -> Tensor:
        step = torch.tensor(np.array(eps_step, dtype=np.float32), device=x.device) * perturbation
        return x + step.nan_to_num(nan=0.0)

    def _compute_pytorch(self, *args: Any, **kwargs: Any) -> Tensor:
        low, high = self.estimator.clip_values
        return super()._compute_pytorch(*args, **kwargs).clamp(float(low), float(high))


def foolbox_group(make: Callable[[], fb.attacks.base.FixedEpsilonAttack]) -> GroupAttack:
    """Run Foolbox's attack ``make()`` on a group, untargeted (``Misclassification``) or targeted."""

    def attack(model: nn.Module, x: Tensor, labels: Tensor, epsilon: float, targeted: bool) -> Tensor:
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        criterion = (fb.criteria.TargetedMisclassification(labels) if targeted
                     else fb.criteria.Misclassification(labels))
        return make().run(fmodel, x, criterion, epsilon=epsilon)

    return attack


def art_classifier(model: nn.Module, x: Tensor) -> PyTorchClassifier:
    """ART's classifier of ``model`` on inputs like ``x`` (in [0, 1]), with the summed cross-entropy loss."""
    with torch.no_grad():
        classes = model(x).shape[1]
    return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(reduction="sum"), input_shape=tuple(x.shape[1:]),
                             nb_classes=classes, clip_values=(0.0, 1.0), device_type="gpu" if x.is_cuda else "cpu")


def art_group(make: Callable[[PyTorchClassifier, float, bool, int], Any]) -> GroupAttack:
    """Run ART's attack ``make(classifier, ε, targeted, batch size)`` on a group, with ``y`` the labels."""

    def attack(model: nn.Module, x: Tensor, labels: Tensor, epsilon: float, targeted: bool) -> Tensor:
        found = make(art_classifier(model, x), epsilon, targeted, len(x)).generate(
            x.detach().cpu().numpy(), y=labels.cpu().numpy())
        return torch.from_numpy(found)

    return attack


def library_version(backend: str) -> str:
    """The package behind ``backend`` and its installed version, e.g. ``foolbox 3.3.4``."""
    package = {"foolbox": "foolbox", "art": "adversarial-robustness-toolbox"}[backend]
    return f"{package} {version(package)}"


class LibraryBIM(BIM):
    """BIM run by a library per ε group (see the module's docstring)."""

    one_timestep_per_chunk = True
    options: BIMOptions

    def group_attack(self) -> GroupAttack:
        o = self.options
        if o.backend == "foolbox":
            return foolbox_group(lambda: fb.attacks.LinfBasicIterativeAttack(
                rel_stepsize=o.rel_stepsize, steps=o.steps, random_start=o.random_start))

        def make(classifier: PyTorchClassifier, eps: float, targeted: bool, batch: int) -> Any:
            if o.random_start:
                return ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=o.rel_stepsize * eps,
                                                max_iter=o.steps, targeted=targeted, num_random_init=1,
                                                batch_size=batch, verbose=False)
            return BasicIterativeMethod(classifier, eps=eps, eps_step=o.rel_stepsize * eps, max_iter=o.steps,
                                        targeted=targeted, batch_size=batch, verbose=False)

        return art_group(make)

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor:
        return by_epsilon(logits_fn, x, labels, epsilon, seeds, targeted, self.group_attack())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "library": library_version(self.options.backend)}


class LibraryRPGD(RPGD):
    """RPGD whose runs (one per restart) a library makes per ε group (see the module's docstring)."""

    one_timestep_per_chunk = True
    options: RPGDOptions

    def group_attack(self) -> GroupAttack:
        o = self.options
        if o.backend == "foolbox":
            return foolbox_group(lambda: ExactL2PGD(rel_stepsize=o.rel_stepsize, steps=o.steps,
                                                    random_start=o.random_start))

        def make(classifier: PyTorchClassifier, eps: float, targeted: bool, batch: int) -> Any:
            return BallThenBoxPGD(classifier, norm=2, eps=eps, eps_step=o.rel_stepsize * eps, max_iter=o.steps,
                                  targeted=targeted, num_random_init=int(o.random_start), batch_size=batch,
                                  verbose=False)

        return art_group(make)

    def _one_run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
                 targeted: bool) -> Tensor:
        return by_epsilon(logits_fn, x, labels, epsilon, seeds, targeted, self.group_attack())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "library": library_version(self.options.backend)}


class LibraryHSJ(HopSkipJump):
    """HopSkipJump run by Foolbox 3's ``HopSkipJumpAttack`` with the same iterations, boundary samples, γ and
    constraint, from the same starting points, one image at a time: Foolbox normalises its gradient estimate
    over the whole batch, which couples the images of a batch. Each image's draws come from the global torch
    generator seeded with its copy's seed (restored after). Foolbox has no query budget, so ``max_queries``
    and ``max_batch`` do not apply; the queries it spends are counted like any attack's. Records per copy:
    ``distance`` (the perturbation found, in the attack's norm)."""

    one_timestep_per_chunk = True
    options: HSJOptions

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool, starts: Tensor | None = None) -> Adversarials:
        if starts is None:
            raise ValueError("HopSkipJump needs starting points")
        o = self.options
        found = x.clone()
        for row in range(len(x)):
            rows = torch.tensor([row], device=x.device)
            fmodel = fb.PyTorchModel(LibraryModel(logits_fn, rows, x.dtype).eval(), bounds=(0, 1), device=x.device)
            criterion = (fb.criteria.TargetedMisclassification(labels[rows]) if targeted
                         else fb.criteria.Misclassification(labels[rows]))
            attack = fb.attacks.HopSkipJumpAttack(steps=o.steps, initial_gradient_eval_steps=o.initial_evals,
                                                  max_gradient_eval_steps=o.max_evals, gamma=o.gamma,
                                                  constraint=self.norm)
            with seeded(seeds[row]):
                raw = attack.run(fmodel, x[rows], criterion,
                                 starting_points=starts[rows].to(device=x.device, dtype=x.dtype))
            found[row] = raw[0].to(device=x.device, dtype=x.dtype)
        return Adversarials(found, {"distance": distances(found - x, self.norm)})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "library": library_version(self.options.backend)}
