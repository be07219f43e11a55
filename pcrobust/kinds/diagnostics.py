"""Section kind ``diagnostics``: the checks to pass before a robustness number is believed, per timestep.

On images chosen as attack sections choose them, the white-box attack runs over an ε grid (success must rise
with ε and reach ``min_success`` at the largest), then at one ε with ``steps_factor`` times the steps, crafted
on the model's feedforward pass (a transfer), as a black-box attack, and in the model's other gradient modes;
none may beat it. The input gradient of the margin loss at each timestep must be finite and non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from pcrobust.attacks import Attack, epsilon_problem
from pcrobust.diagnostics import Check, gradients_flow, not_weaker, rates, reaches_full_success, rises_with_epsilon
from pcrobust.engine import attack_per_timestep, margins
from pcrobust.errors import PcrobustError
from pcrobust.kinds.attack_options import SELECTION_RULES
from pcrobust.kinds.common import chosen_images, chunk_units
from pcrobust.kinds.diagnostics_options import DiagnosticsOptions
from pcrobust.models import TimestepModel
from pcrobust.registry import AttackEntry
from pcrobust.run.context import RunContext
from pcrobust.schema import validated
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit
from pcrobust.vocabulary import NORM_SYMBOLS, Readout

if TYPE_CHECKING:
    from pcrobust.registry import Registries

PROTOCOL = ("success = argmax of the logits at timestep t differs from the label (untargeted) or equals the target "
            "(label + 1) mod K (targeted); every attack scored at every timestep on the same images; gradients: "
            "L2 norm of the input gradient of the margin (label logit − largest other logit) at each timestep")


def _options(section: Section) -> DiagnosticsOptions:
    assert isinstance(section.options, DiagnosticsOptions)
    return section.options


def _attack_entry(registries: Registries, name: str, norm: str, criterion: str, key: str) -> AttackEntry:
    """The attack ``name`` if it runs ``norm`` and ``criterion`` without starting points; else a one-line error."""
    entry = registries.attacks.get(name)
    if norm not in entry.norms:
        raise PcrobustError(f"{key}: {name} does not offer norm {norm!r}; it offers {', '.join(entry.norms)}")
    if criterion not in entry.criteria:
        raise PcrobustError(f"{key}: {name} does not run {criterion}; it runs {', '.join(entry.criteria)}")
    if getattr(entry.build, "needs_starts", False):
        raise PcrobustError(f"{key}: {name} needs adversarial starting points, which diagnostics do not choose")
    return entry


class Diagnostics(SectionKind):
    name = "diagnostics"
    description = "gradient-masking checks per timestep: ε sweep, more steps, transfer, black-box, gradients, modes"
    options = DiagnosticsOptions

    def title(self, options: SectionOptions) -> str:
        assert isinstance(options, DiagnosticsOptions)
        return (f"gradient-masking diagnostics of {options.criterion} {options.attack} "
                f"({NORM_SYMBOLS[options.norm or 'linf']})")

    def complete(self, options: SectionOptions, registries: Registries) -> SectionOptions:
        assert isinstance(options, DiagnosticsOptions)
        norm = options.norm or registries.attacks.get(options.attack).norms[0]
        entry = _attack_entry(registries, options.attack, norm, options.criterion, "attack")
        if "steps" not in entry.options.model_fields:
            raise PcrobustError(f"attack: {entry.name} has no steps option, so more steps cannot be compared")
        for epsilon in options.epsilons:
            problem = epsilon_problem(norm, epsilon)
            if problem:
                raise PcrobustError(f"epsilons: {problem}")
        if list(options.epsilons) != sorted(set(options.epsilons)):
            raise PcrobustError(f"epsilons must be distinct and ascending, got {list(options.epsilons)}")
        compare = options.epsilons[0] if options.compare_epsilon is None else options.compare_epsilon
        if compare not in options.epsilons:
            raise PcrobustError(f"compare_epsilon {compare:g} is not one of epsilons "
                                f"({', '.join(f'{e:g}' for e in options.epsilons)})")
        update: dict[str, Any] = {
            "norm": norm, "compare_epsilon": compare,
            "options": validated(entry.options, options.options, "options").model_dump(mode="json", exclude_none=True)}
        if options.black_box != "none":
            other = _attack_entry(registries, options.black_box, norm, options.criterion, "black_box")
            update["black_box_options"] = validated(other.options, options.black_box_options,
                                                    "black_box_options").model_dump(mode="json", exclude_none=True)
        return options.model_copy(update=update)

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        options = _options(section)
        chosen = torch.tensor(chosen_images(context, options.n, options.selection), dtype=torch.long)
        return chunk_units(list(chosen.split(context.run.images_per_unit)) if len(chosen) else [])

    def _modes(self, options: DiagnosticsOptions, model: TimestepModel) -> list[str]:
        """The model's gradient modes other than its current one, when they are compared."""
        return [m for m in model.gradient_modes if m != model.gradient_mode] if options.gradient_modes else []

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        options = _options(section)
        assert options.norm is not None and options.compare_epsilon is not None
        indices = list(unit.indices)
        images, labels = context.data.images[indices], context.data.labels[indices]
        targeted = options.criterion == "targeted"
        goal = (labels + 1) % context.data.num_classes if targeted else labels
        entry = context.registries.attacks.get(options.attack)
        attack_options = entry.options.model_validate(options.options)
        white = entry.build(attack_options, options.norm)
        longer = entry.build(entry.options.model_validate(
            {**options.options, "steps": options.options["steps"] * options.steps_factor}), options.norm)
        compare = (options.compare_epsilon,)
        model = context.model

        def success(attack: Attack, epsilons: Sequence[float], readout: Readout = "t") -> list[Any]:
            outcome = attack_per_timestep(model, attack, images, goal, epsilons, context.timesteps, readout,
                                          context.batch_size, context.device, context.seed, indices,
                                          targeted=targeted, progress=context.progress)
            return outcome.success.permute(0, 2, 1).int().tolist()  # [E][N][T+1]

        outcome: dict[str, Any] = {
            "indices": indices, "labels": labels.tolist(), "targets": goal.tolist() if targeted else None,
            "gradient_mode": model.gradient_mode, "white_box": {"plugin": entry.plugin, **white.describe()},
            "success": success(white, options.epsilons), "more_steps": success(longer, compare)[0],
            "gradient_norms": [[v if np.isfinite(v) else None for v in row]
                               for row in input_gradient_norms(model, images, labels, context).tolist()]}
        if options.transfer:
            outcome["transfer"] = success(white, compare, "first")[0]
        if options.black_box != "none":
            other = context.registries.attacks.get(options.black_box)
            black = other.build(other.options.model_validate(options.black_box_options), options.norm)
            outcome["black_box"] = {"plugin": other.plugin, **black.describe()}
            outcome["black_box_success"] = success(black, compare)[0]
        previous, modes = model.gradient_mode, {}
        try:
            for mode in self._modes(options, model):
                model.set_gradient_mode(mode)
                modes[mode] = success(white, compare)[0]
        finally:
            model.set_gradient_mode(previous)
        outcome["modes"] = modes
        return outcome

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        options = _options(section)
        assert options.compare_epsilon is not None
        fields: dict[str, Any] = {"criterion": options.criterion, "selection": SELECTION_RULES[options.selection],
                                  "n_requested": options.n, "protocol": PROTOCOL}
        if not outcomes:
            fields["note"] = f"no evaluated image met the selection rule ({SELECTION_RULES[options.selection]})"
            return SectionResult(fields, [])
        first = outcomes[0][1]
        fields.update(gradient_mode=first["gradient_mode"], white_box={"name": options.attack, **first["white_box"]})
        if "black_box" in first:
            fields["black_box"] = {"name": options.black_box, **first["black_box"]}
        indices = [i for _, outcome in outcomes for i in outcome["indices"]]
        runs = _runs(options, outcomes)
        series = [Series(label, {"run": run, "epsilon": epsilon}, "success_rate", False, indices, events)
                  for run, label, epsilon, events in runs]
        checks = _checks(options, {run: rates(events) for run, _, epsilon, events in runs
                                   if epsilon == options.compare_epsilon},
                         [rates(events) for run, _, _, events in runs if run == "white-box"],
                         [row for _, outcome in outcomes for row in outcome["gradient_norms"]], first["gradient_mode"])
        fields["checks"] = [check.to_dict() for check in checks]
        fields["passed"] = all(check.passed for check in checks)
        modes = sorted({mode for _, outcome in outcomes for mode in outcome["modes"]})
        if options.gradient_modes and not modes:
            fields["skipped"] = {"gradient-modes": f"the model offers one gradient mode ({first['gradient_mode']})"}
        return SectionResult(fields, series)


def _stacked(outcomes: Sequence[tuple[Unit, Mapping[str, Any]]], key: str, *path: Any) -> np.ndarray:
    """The per-image rows ``outcome[key][path...]`` of every unit, as a ``[N, T+1]`` bool array."""
    rows = []
    for _, outcome in outcomes:
        value = outcome[key]
        for step in path:
            value = value[step]
        rows.extend(value)
    return np.asarray(rows, dtype=bool)


def _runs(options: DiagnosticsOptions, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]]
          ) -> list[tuple[str, str, float, np.ndarray]]:
    """Every attack run as (run, label, ε, per-image success ``[N, T+1]``)."""
    assert options.compare_epsilon is not None
    compare, first = options.compare_epsilon, outcomes[0][1]
    runs = [("white-box", f"{options.attack} ε={e:g}", e, _stacked(outcomes, "success", row))
            for row, e in enumerate(options.epsilons)]
    runs.append(("more-steps", f"{options.attack} ×{options.steps_factor} steps ε={compare:g}", compare,
                 _stacked(outcomes, "more_steps")))
    if "transfer" in first:
        runs.append(("transfer", f"transfer from t=0 ε={compare:g}", compare, _stacked(outcomes, "transfer")))
    if "black_box_success" in first:
        runs.append(("black-box", f"{options.black_box} ε={compare:g}", compare,
                     _stacked(outcomes, "black_box_success")))
    for mode in first["modes"]:
        runs.append((f"mode {mode}", f"{options.attack} {mode} gradients ε={compare:g}", compare,
                     _stacked(outcomes, "modes", mode)))
    return runs


def _checks(options: DiagnosticsOptions, at_compare: Mapping[str, list[float]], sweep: list[list[float]],
            norms: list[list[float | None]], mode: str) -> list[Check]:
    """The checks, from success rates per run at the compared ε, the white-box sweep, the gradient norms and the
    gradient ``mode`` the white-box attack ran in."""
    assert options.compare_epsilon is not None
    compare, tolerance = options.compare_epsilon, options.tolerance
    white = ("white-box", at_compare["white-box"])
    checks = [rises_with_epsilon(options.epsilons, sweep, tolerance),
              reaches_full_success(options.epsilons[-1], sweep[-1], options.min_success),
              not_weaker("more-steps-not-weaker", (f"×{options.steps_factor} steps", at_compare["more-steps"]),
                         ("steps", at_compare["white-box"]), compare, tolerance)]
    for run in ("transfer", "black-box"):
        if run in at_compare:
            checks.append(not_weaker(f"white-box-not-weaker-than-{run}", white, (run, at_compare[run]), compare,
                                     tolerance))
    checks.append(gradients_flow(norms))
    for run, values in at_compare.items():
        if run.startswith("mode "):
            other = run.removeprefix("mode ")
            checks.append(not_weaker(f"gradient-mode-not-weaker-than-{other}",
                                     (f"{mode} gradients", at_compare["white-box"]), (f"{other} gradients", values),
                                     compare, tolerance))
    return checks


def input_gradient_norms(model: TimestepModel, images: Tensor, labels: Tensor, context: RunContext) -> Tensor:
    """``[N, T+1]``: per image and timestep, the L2 norm of the input gradient of the margin at that timestep
    (0 where the logits do not depend on the input)."""
    norms = []
    for x, y in zip(images.split(context.batch_size), labels.split(context.batch_size), strict=True):
        x = x.to(context.device).requires_grad_(True)
        y = y.to(context.device)
        rows = []
        with torch.enable_grad():
            logits = model(x, context.timesteps)
            for t in range(context.timesteps + 1):
                loss = margins(logits[t], y).sum()
                gradient = torch.autograd.grad(loss, x, retain_graph=True, allow_unused=True)[0] \
                    if loss.requires_grad else None
                rows.append(torch.zeros(len(x)) if gradient is None else gradient.flatten(1).norm(dim=1).cpu())
        norms.append(torch.stack(rows, dim=1))
    return torch.cat(norms).double()
