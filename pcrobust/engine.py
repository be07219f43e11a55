"""The per-timestep evaluation engine: clean and Gaussian-noise accuracy, and batched attacks.

Attacks run on *copies*: one copy of an image per (ε, scored timestep), all attacked together;
each copy's loss reads the logits at its own timestep from one unroll of the chunk.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from pcrobust.attacks import Adversarials, Attack, project
from pcrobust.errors import PcrobustError
from pcrobust.models import Readout, TimestepModel, select_readout
from pcrobust.seeding import derived_seed, float_key, per_item_draws


@dataclass(frozen=True)
class AttackOutcome:
    """Per image, ε and scored timestep (each ``[E, T+1, N]``): ``success`` (bool), ``margin`` (float),
    ``queries`` (model evaluations the attack spent on that copy) and the attack's per-copy ``records``.

    The margin is the logit of the target minus the largest other logit (targeted), or the logit of the
    true class minus the largest other logit (untargeted): positive means the target was hit, or the image
    is still right."""

    success: Tensor
    margin: Tensor
    queries: Tensor
    records: dict[str, Tensor]

    @classmethod
    def empty(cls, epsilons: int, timesteps: int, images: int) -> AttackOutcome:
        shape = (epsilons, timesteps + 1, images)
        return cls(torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.float64),
                   torch.zeros(shape, dtype=torch.float64), {})

    def record(self, e_idx: Tensor | int, t: Tensor | int, i_idx: Tensor, logits: Tensor, labels: Tensor,
               targeted: bool) -> None:
        """Store success and margin of ``[chunk, K]`` logits for the copies (ε ``e_idx``, timestep ``t``,
        image ``i_idx``)."""
        hit = logits.argmax(1) == labels
        self.success[e_idx, t, i_idx] = (hit if targeted else ~hit).cpu()
        self.margin[e_idx, t, i_idx] = margins(logits, labels).double().cpu()

    def spent(self, e_idx: Tensor | int, t: Tensor | int, i_idx: Tensor, queries: Tensor,
              records: Mapping[str, Tensor]) -> None:
        """Store the queries and records of the copies (ε ``e_idx``, timestep ``t``, image ``i_idx``)."""
        self.queries[e_idx, t, i_idx] = queries.double().cpu()
        for name, values in records.items():
            if name not in self.records:
                self.records[name] = torch.full_like(self.margin, float("nan"))
            self.records[name][e_idx, t, i_idx] = values.detach().double().cpu()


class CopyLogits:
    """The :class:`~pcrobust.attacks.LogitsFn` of one chunk of copies: ``readout(z, copies)`` answers, and
    every evaluated row counts as one query of its copy (in ``queries``, one per copy of the chunk, kept on the
    chunk's device so that counting never waits for the device).

    Rows given without ``copies`` are copy ``i`` for row ``i``; a call with another number of rows and no
    ``copies`` (a library that splits batches as it likes) is allowed only where every copy reads the same
    readout (``uniform``), and its rows are shared out evenly among the copies."""

    def __init__(self, readout: Callable[[Tensor, Tensor], Tensor], copies: int, device: torch.device,
                 uniform: bool) -> None:
        self._readout = readout
        self._uniform = uniform
        self._all = torch.arange(copies, device=device)
        self._rows = self._all
        self.queries = torch.zeros(copies, dtype=torch.float64, device=device)

    def among(self, rows: Tensor) -> CopyLogits:
        """The same function for the copies ``rows`` alone (row ``j`` of a call is copy ``rows[j]``),
        counting into the same ``queries``."""
        view = copy.copy(self)
        view._rows = rows
        return view

    def __call__(self, z: Tensor, copies: Tensor | None = None) -> Tensor:
        if copies is not None:
            chosen = self._rows[copies]
        elif len(z) == len(self._rows):
            chosen = self._rows
        elif self._uniform:
            self.queries[self._rows] += len(z) / len(self._rows)
            return self._readout(z, self._rows[:1].expand(len(z)))
        else:
            raise ValueError(f"{len(z)} rows for {len(self._rows)} copies that read different timesteps: "
                             "pass copies")
        self.queries.index_add_(0, chosen, torch.ones(len(chosen), dtype=torch.float64, device=chosen.device))
        return self._readout(z, chosen)

    def uncounted(self, z: Tensor) -> Tensor:
        """The readout of every copy of the chunk (row ``i`` is copy ``i``), not counted: for scoring."""
        return self._readout(z, self._all)


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """``logits[label] − max over the other classes`` per row of ``[N, K]`` logits."""
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(1)
    return own - others


def precision_scope(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """Autocast to bfloat16 on ``device`` for ``bf16`` (a scope of this thread, left as it was on exit);
    nothing for ``float32``. Logits leave the engine in full precision either way (:func:`full_precision`)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def full_precision(logits: Tensor) -> Tensor:
    """Logits as float32 when autocast made them half or bfloat16; float32 and float64 logits unchanged."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


@torch.no_grad()
def predict(model: TimestepModel, images: Tensor, timesteps: int, batch_size: int, device: torch.device,
            desc: str = "clean", progress: bool = True) -> Tensor:
    """Logits ``[T+1, N, K]`` (on the CPU) for every image at every timestep."""
    chunks = images.split(batch_size)
    outputs = [full_precision(model(chunk.to(device), timesteps)).cpu()
               for chunk in tqdm(chunks, desc=desc, disable=not progress)]
    return torch.cat(outputs, dim=1)


@torch.no_grad()
def predict_measures(model: TimestepModel, images: Tensor, timesteps: int, batch_size: int, device: torch.device,
                     desc: str = "measures", progress: bool = True) -> dict[str, Tensor]:
    """The measures a model declares (``measure_names``), each ``[T+1, N]`` float64 on the CPU."""
    parts: dict[str, list[Tensor]] = {name: [] for name in model.measure_names}
    if not parts:
        return {}
    for chunk in tqdm(images.split(batch_size), desc=desc, disable=not progress):
        measures = model.unroll(chunk.to(device), timesteps, errors=True).measures or {}
        for name, values in parts.items():
            if name not in measures:
                raise PcrobustError(f"the model declares the measure {name!r} but its unroll does not return it")
            values.append(measures[name].detach().double().cpu())
    return {name: torch.cat(values, dim=1) for name, values in parts.items()}


def standard_normal_per_image(shape: torch.Size, image_indices: Sequence[int], seed: int) -> Tensor:
    """One standard-normal draw per image, seeded by (seed, image index): independent of batching."""
    return per_item_draws(shape, [derived_seed(seed, index) for index in image_indices])


def add_gaussian_noise(images: Tensor, sigma: float, unit_noise: Tensor) -> Tensor:
    """``clip(x + σ·z, 0, 1)`` with σ in [0, 1] pixel units."""
    return (images + sigma * unit_noise).clamp(0.0, 1.0)


@dataclass(frozen=True)
class StartPoints:
    """Adversarial starting points for an attack that ``needs_starts``: per attacked step ``s`` (the position
    of the attacked timestep among the attacked ones) and image ``i``, ``choice[s, i]`` is a row of
    ``images`` classified as the goal there, or −1 when the data hold none (that copy is not attacked)."""

    images: Tensor
    choice: Tensor


def attacked_steps(readout: Readout, timesteps: int) -> list[int]:
    """The timesteps an attack unrolls to: every one for readout ``t``, else the single unroll it reads."""
    return list(range(timesteps + 1)) if readout == "t" else [0] if readout == "first" else [timesteps]


def _attack_chunk(attack: Attack, logits_fn: CopyLogits, x: Tensor, labels: Tensor, epsilon: Tensor,
                  seeds: Sequence[int], targeted: bool, starts: Tensor | None, ready: Tensor) -> Adversarials:
    """Run ``attack`` on the ``ready`` copies of a chunk (all of them unless starting points are missing);
    the others keep their clean input."""
    if bool(ready.all()):
        with torch.enable_grad():
            return attack.attack(logits_fn, x, labels, epsilon, seeds, targeted=targeted, starts=starts)
    x_adv, rows = x.clone(), ready.nonzero().squeeze(1)
    if not len(rows):
        return Adversarials(x_adv)

    with torch.enable_grad():
        found = attack.attack(logits_fn.among(rows), x[rows], labels[rows], epsilon[rows],
                              [seeds[r] for r in rows.tolist()], targeted=targeted,
                              starts=None if starts is None else starts[rows])
    x_adv[rows] = found.inputs
    records = {}
    for name, values in found.records.items():
        full = torch.full((len(x),), float("nan"), dtype=torch.float64, device=values.device)
        full[rows] = values.double()
        records[name] = full
    return Adversarials(x_adv, records)


def _budgets(attack: Attack, x: Tensor, x_adv: Tensor, eps_rows: Tensor, epsilons: Tensor
             ) -> list[tuple[Tensor | int, Tensor]]:
    """``(ε rows, adversarials)`` to score: the chunk's own, or for an attack that minimised its perturbation
    (run once for the whole grid) its answer clipped to each ε."""
    if not attack.minimizes:
        return [(eps_rows, x_adv)]
    return [(e, project(x, x_adv, torch.full((len(x),), eps, device=x.device, dtype=x.dtype), attack.norm))
            for e, eps in enumerate(epsilons.tolist())]


def _grid(attack: Attack, steps: Sequence[int], n_eps: int, n: int) -> Tensor:
    """Copies ``(t, ε row, image)`` in timestep order; one ε row (0) for an attack that ``minimizes``."""
    rows = range(1 if attack.minimizes else n_eps)
    return torch.tensor([(t, e, i) for t in steps for e in rows for i in range(n)], dtype=torch.long)


def _chunks(attack: Attack, grid: Tensor, steps: Sequence[int], readout: Readout, batch_size: int,
            device: torch.device) -> tuple[Tensor, ...]:
    """The grid's copies in chunks of at most ``batch_size``; with readout ``t``, chunks that each hold one
    timestep on the CPU or for an attack that runs ``one_timestep_per_chunk``."""
    if readout == "t" and (device.type == "cpu" or attack.one_timestep_per_chunk):
        return tuple(c for t in steps for c in grid[grid[:, 0] == t].split(batch_size))
    return grid.split(batch_size)


def _seed_keys(attack: Attack, epsilons: Sequence[float]) -> list[int]:
    return [float_key(float("inf"))] if attack.minimizes else [float_key(e) for e in epsilons]


def _chunk_epsilons(attack: Attack, eps_values: Tensor, e_idx: Tensor, device: torch.device) -> Tensor:
    """Each copy's ε: its row of the grid, or ∞ for an attack that ``minimizes``."""
    if attack.minimizes:
        return torch.full((len(e_idx),), float("inf"), dtype=eps_values.dtype, device=device)
    return eps_values[e_idx].to(device)


def _score_every_timestep(outcome: AttackOutcome, model: TimestepModel, x_adv: Tensor, rows: Tensor | int,
                          i_idx: Tensor, labels: Tensor, timesteps: int, targeted: bool, queries: Tensor,
                          records: Mapping[str, Tensor]) -> None:
    """Score adversarials at every timestep 0..``timesteps`` of one unroll of ``model``, with their costs."""
    logits = full_precision(model(x_adv, timesteps))  # [T+1, chunk, K]
    for t in range(timesteps + 1):
        outcome.record(rows, t, i_idx, logits[t], labels, targeted)
        outcome.spent(rows, t, i_idx, queries, records)


def attack_per_timestep(model: TimestepModel, attack: Attack, images: Tensor, labels: Tensor,
                        epsilons: Sequence[float], timesteps: int, readout: Readout, batch_size: int,
                        device: torch.device, seed: int, image_ids: Sequence[int], *, targeted: bool = True,
                        starts: StartPoints | None = None, progress: bool = True) -> AttackOutcome:
    """Attack every image at every ε and timestep; per-image success, margin and queries per (ε, t).

    ``labels`` are the targets (targeted) or the true classes (untargeted). Each copy's random draws come
    from its own seed, keyed by (seed, ε value, attacked timestep, ``image_ids`` — the images' dataset
    indices), so no result depends on ``batch_size``, on the device's chunking, or on which other images
    or budgets a run holds.
    Readout ``t`` makes one copy per (ε, t, image), each scored at the timestep it attacked;
    ``avg``/``last`` make one copy per (ε, image), attacked on that readout and scored at every t; ``first``
    attacks the feedforward pass alone (an unroll to t = 0, so no gradient goes through the dynamics) and
    scores the result at every t: a transfer from the model's own feedforward network. An attack that
    ``minimizes`` makes one copy for the whole ε grid (seeded with ε = ∞), clipped to each ε when scored.
    Copies are ordered by timestep and a chunk unrolls only as far as its latest timestep. On the CPU,
    where time grows with the work done, a chunk never mixes timesteps (no copy unrolls past its own);
    on a GPU chunks fill up to ``batch_size`` across timesteps, trading that extra work for fewer, larger
    kernel launches. An attack that runs ``one_timestep_per_chunk`` never gets a chunk that mixes timesteps.
    """
    if attack.needs_starts and starts is None:
        raise ValueError(f"{type(attack).__name__} needs starting points")
    n, n_eps = len(images), len(epsilons)
    steps = attacked_steps(readout, timesteps)
    grid = _grid(attack, steps, n_eps, n)
    eps_values = torch.tensor(epsilons, dtype=images.dtype)
    eps_keys = _seed_keys(attack, epsilons)
    outcome = AttackOutcome.empty(n_eps, timesteps, n)
    chunks = _chunks(attack, grid, steps, readout, batch_size, device)
    for chunk in tqdm(chunks, desc=f"attack {type(attack).__name__}", disable=not progress, leave=False):
        t_idx, e_idx, i_idx = chunk.unbind(1)
        x, label = images[i_idx].to(device), labels[i_idx].to(device)
        scored_t, horizon = t_idx.to(device), int(t_idx.max())

        def readout_fn(z: Tensor, copies: Tensor, scored_t: Tensor = scored_t, horizon: int = horizon) -> Tensor:
            return select_readout(full_precision(model(z, horizon)), readout, scored_t[copies])

        logits_fn = CopyLogits(readout_fn, len(chunk), device,
                               uniform=readout != "t" or bool((t_idx == t_idx[0]).all()))
        seeds = [derived_seed(seed, eps_keys[e], t, int(image_ids[i])) for t, e, i in chunk.tolist()]
        chosen, ready = None, torch.ones(len(chunk), dtype=torch.bool)
        if starts is not None and attack.needs_starts:
            choice = starts.choice[torch.tensor([steps.index(t) for t in t_idx.tolist()]), i_idx]
            ready = choice >= 0
            chosen = starts.images[choice.clamp_min(0)].to(device)
        found = _attack_chunk(attack, logits_fn, x, label, _chunk_epsilons(attack, eps_values, e_idx, device), seeds,
                              targeted, chosen, ready.to(device))
        with torch.no_grad():
            for rows, x_adv in _budgets(attack, x, found.inputs, e_idx, eps_values):
                if readout == "t":
                    outcome.record(rows, t_idx, i_idx, logits_fn.uncounted(x_adv), label, targeted)
                    outcome.spent(rows, t_idx, i_idx, logits_fn.queries, found.records)
                else:
                    _score_every_timestep(outcome, model, x_adv, rows, i_idx, label, timesteps, targeted,
                                          logits_fn.queries, found.records)
    return outcome


def transfer_per_timestep(surrogate: TimestepModel, surrogate_timesteps: int, surrogate_readout: Readout,
                          target: TimestepModel, attack: Attack, images: Tensor, labels: Tensor,
                          epsilons: Sequence[float], timesteps: int, batch_size: int, device: torch.device,
                          seed: int, image_ids: Sequence[int], *, targeted: bool = True,
                          progress: bool = True) -> AttackOutcome:
    """Craft on ``surrogate`` (its ``avg``, ``last`` or ``first`` readout over ``surrogate_timesteps``) and score
    the adversarials on ``target`` at every timestep 0..``timesteps``: an :class:`AttackOutcome` ``[E, T+1, N]``
    whose queries are those spent on the surrogate.

    One copy per (ε, image), seeded by (seed, ε value, timestep 0, ``image_ids``) as ``attack_per_timestep``
    seeds its ``first`` readout, so crafting on the target's own feedforward pass gives the same numbers.
    """
    if surrogate_readout not in ("avg", "last", "first"):
        raise ValueError(f"surrogate readout must be avg, last or first, not {surrogate_readout!r}")
    if attack.needs_starts:
        raise ValueError(f"{type(attack).__name__} needs starting points and cannot run as a transfer attack")
    n, n_eps = len(images), len(epsilons)
    grid = _grid(attack, [0], n_eps, n)
    eps_values = torch.tensor(epsilons, dtype=images.dtype)
    eps_keys = _seed_keys(attack, epsilons)
    outcome = AttackOutcome.empty(n_eps, timesteps, n)
    horizon = 0 if surrogate_readout == "first" else surrogate_timesteps

    def readout_fn(z: Tensor, copies: Tensor) -> Tensor:
        return select_readout(surrogate(z, horizon), surrogate_readout)

    for chunk in tqdm(grid.split(batch_size), desc=f"transfer {type(attack).__name__}", disable=not progress,
                      leave=False):
        _, e_idx, i_idx = chunk.unbind(1)
        x, label = images[i_idx].to(device), labels[i_idx].to(device)
        logits_fn = CopyLogits(readout_fn, len(chunk), device, uniform=True)
        seeds = [derived_seed(seed, eps_keys[e], 0, int(image_ids[i])) for _, e, i in chunk.tolist()]
        found = _attack_chunk(attack, logits_fn, x, label, _chunk_epsilons(attack, eps_values, e_idx, device), seeds,
                              targeted, None, torch.ones(len(chunk), dtype=torch.bool, device=device))
        with torch.no_grad():
            for rows, x_adv in _budgets(attack, x, found.inputs, e_idx, eps_values):
                _score_every_timestep(outcome, target, x_adv, rows, i_idx, label, timesteps, targeted,
                                      logits_fn.queries, found.records)
    return outcome
