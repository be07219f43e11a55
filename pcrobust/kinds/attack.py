"""Section kind ``attack``: an attack's success per timestep over an ε grid, on images chosen by a rule.

Targeted sections report the success rate (the scored readout's argmax is the target); untargeted ones
the robust accuracy (the argmax is still the label). The attack's own options are typed by its entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pcrobust.attacks import Attack, epsilon_problem
from pcrobust.contract import ContractCheck, check_timestep_contract
from pcrobust.engine import AttackOutcome, StartPoints, attack_per_timestep, transfer_per_timestep
from pcrobust.errors import PcrobustError, UnknownNameError
from pcrobust.kinds.attack_options import SELECTION_RULES, AttackSectionOptions, SurrogateOptions
from pcrobust.kinds.common import chosen_images, chunk_units
from pcrobust.models import TimestepModel, evaluation_mode
from pcrobust.registry import AttackEntry, ModelEntry
from pcrobust.run.context import RunContext
from pcrobust.schema import validated
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit
from pcrobust.specs import option_strings
from pcrobust.starts import nearest_starts
from pcrobust.targets import choose_targets
from pcrobust.vocabulary import NORM_SYMBOLS

if TYPE_CHECKING:
    from pcrobust.registry import Registries


def surrogate_entry(surrogate: SurrogateOptions, registries: Registries) -> ModelEntry:
    """The surrogate's model entry: the named model of its plugin, or the plugin's default model."""
    mine = [entry for entry in registries.models if entry.plugin == surrogate.plugin]
    if not mine:
        known = sorted({e.plugin for e in registries.models})
        raise PcrobustError(f"surrogate.plugin: {UnknownNameError('plugin', surrogate.plugin, known)}")
    if surrogate.name is None:
        return next((entry for entry in mine if entry.default), mine[0])
    entry = registries.models.get(surrogate.name) if surrogate.name in registries.models.entries else None
    if entry is None or entry.plugin != surrogate.plugin:
        unknown = UnknownNameError(f"model of plugin {surrogate.plugin!r}", surrogate.name, [e.name for e in mine])
        raise PcrobustError(f"surrogate.name: {unknown}")
    return entry


@dataclass(frozen=True)
class ChosenStarts:
    """Starting points and the dataset indices of their pool's rows."""

    points: StartPoints
    ids: list[int]


def _options(section: Section) -> AttackSectionOptions:
    assert isinstance(section.options, AttackSectionOptions)
    return section.options


class AttackSection(SectionKind):
    name = "attack"
    description = "an attack per timestep over an ε grid (targeted success rate or untargeted robust accuracy)"
    options = AttackSectionOptions

    def label(self, options: SectionOptions) -> str:
        assert isinstance(options, AttackSectionOptions)
        return f"attack {options.attack}"

    def title(self, options: SectionOptions) -> str:
        assert isinstance(options, AttackSectionOptions)
        return f"{options.criterion} {options.attack} ({NORM_SYMBOLS[options.norm or 'linf']})"

    def complete(self, options: SectionOptions, registries: Registries) -> SectionOptions:
        assert isinstance(options, AttackSectionOptions)
        entry = registries.attacks.get(options.attack)
        norm = options.norm or entry.norms[0]
        if norm not in entry.norms:
            raise PcrobustError(f"norm {norm!r} is not offered by {entry.name}; choose from {', '.join(entry.norms)}")
        epsilons = options.epsilons or entry.default_epsilons[norm]
        for epsilon in epsilons:
            problem = epsilon_problem(norm, epsilon)
            if problem:
                raise PcrobustError(problem)
        if options.criterion not in entry.criteria:
            raise PcrobustError(f"{entry.name} does not run {options.criterion}; it runs {', '.join(entry.criteria)}")
        given = options.model_fields_set & {"target_mode", "target_shift"}
        if options.criterion == "untargeted" and given:
            raise PcrobustError(f"{sorted(given)[0]} applies to targeted attacks only")
        attack_options = validated(entry.options, options.options, "options")
        builder = entry.builder(attack_options)
        update: dict[str, Any] = {"norm": norm, "epsilons": tuple(epsilons),
                                  "options": attack_options.model_dump(mode="json", exclude_none=True)}
        if options.surrogate is not None:
            if "readout" in options.model_fields_set and options.readout == "t":
                raise PcrobustError("readout: 't' cannot be combined with surrogate; the surrogate's readout is "
                                    "surrogate.readout (avg, last or first)")
            if getattr(builder, "needs_starts", False):
                raise PcrobustError(f"surrogate: {entry.name} starts from images the attacked model classifies "
                                    "as the goal, so it cannot run as a transfer attack")
            model = surrogate_entry(options.surrogate, registries)
            update["surrogate"] = options.surrogate.model_copy(update={"name": model.name})
        return options.model_copy(update=update)

    def check(self, options: SectionOptions, context: RunContext) -> None:
        assert isinstance(options, AttackSectionOptions)
        if options.gradient_mode and options.gradient_mode not in context.model.gradient_modes:
            raise PcrobustError(f"gradient mode {options.gradient_mode!r} not offered; choose from "
                                f"{', '.join(context.model.gradient_modes)}")
        classes = context.data.num_classes
        if options.criterion == "targeted" and options.target_mode == "shift" and options.target_shift % classes == 0:
            raise PcrobustError(f"target shift {options.target_shift} maps every label onto itself with "
                                f"{classes} classes")
        if options.surrogate is not None:
            self._surrogate(options.surrogate, context)  # built and checked before any work

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        options = _options(section)
        chosen = torch.tensor(chosen_images(context, options.n, options.selection), dtype=torch.long)
        return chunk_units(list(chosen.split(context.run.images_per_unit)) if len(chosen) else [])

    def _entry(self, context: RunContext, options: AttackSectionOptions) -> AttackEntry:
        return context.registries.attacks.get(options.attack)

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        options = _options(section)
        entry = self._entry(context, options)
        assert options.norm is not None and options.epsilons is not None
        attack = entry.make(entry.options.model_validate(options.options), options.norm)
        indices = list(unit.indices)
        labels = context.data.labels[indices]
        targeted = options.criterion == "targeted"
        targets = None
        if targeted:
            feedforward = context.clean_logits_of(indices)[0] if options.target_mode == "least-likely" else None
            targets = choose_targets(options.target_mode, labels, context.data.num_classes, image_indices=indices,
                                     shift=options.target_shift, seed=context.seed, feedforward_logits=feedforward)
        goal = targets if targets is not None else labels
        extra: dict[str, Any] = {}
        if options.surrogate is not None:
            outcome, mode, extra = self._transfer(options, attack, indices, goal, context)
        else:
            starts = self._starts(options, attack, indices, labels, goal, context)
            if starts is not None:
                extra["starts"] = [[int(starts.ids[c]) if c >= 0 else None for c in row]
                                   for row in starts.points.choice.T.tolist()]
            model = context.model
            previous = model.gradient_mode
            model.set_gradient_mode(options.gradient_mode or previous)
            try:
                outcome = attack_per_timestep(model, attack, context.data.images[indices], goal, options.epsilons,
                                              context.timesteps, options.readout, context.batch_size,
                                              context.device, context.seed, indices, targeted=targeted,
                                              starts=starts.points if starts is not None else None,
                                              progress=context.progress)
                mode = model.gradient_mode
            finally:
                model.set_gradient_mode(previous)
        return {**extra, "indices": indices, "labels": labels.tolist(),
                "targets": targets.tolist() if targets is not None else None,
                "success": outcome.success.permute(0, 2, 1).int().tolist(),
                "margin": outcome.margin.permute(0, 2, 1).tolist(),
                "queries": outcome.queries.permute(0, 2, 1).tolist(),
                "records": {name: values.permute(0, 2, 1).tolist() for name, values in outcome.records.items()},
                "attack": {"plugin": entry.plugin, **attack.describe()}, "gradient_mode": mode}

    def _starts(self, options: AttackSectionOptions, attack: Attack, indices: list[int], labels: torch.Tensor,
                goal: torch.Tensor, context: RunContext) -> ChosenStarts | None:
        """Starting points for an attack that needs them, taken from the evaluated images."""
        if not attack.needs_starts:
            return None
        assert options.norm is not None
        pool_ids = context.evaluated.tolist()
        pool_logits = torch.cat([context.clean_logits(number) for number in range(len(context.chunks()))], dim=1)
        points = nearest_starts(context.data.images[indices], indices, labels, goal,
                                options.criterion == "targeted", context.data.images[pool_ids], pool_ids,
                                context.data.labels[pool_ids], pool_logits, options.readout, context.timesteps,
                                options.norm)
        return ChosenStarts(points, pool_ids)

    def _surrogate(self, surrogate: SurrogateOptions,
                   context: RunContext) -> tuple[TimestepModel, int, ContractCheck]:
        """A surrogate and its timesteps, built and checked against the timestep contract once per run."""
        key = surrogate.model_dump_json()
        if key not in context.surrogates:
            entry = surrogate_entry(surrogate, context.registries)
            who = f"surrogate {entry.name!r} of plugin {entry.plugin!r}"
            model = entry.build(None, option_strings(surrogate.options))
            if not isinstance(model, TimestepModel):
                raise PcrobustError(f"{who} built a {type(model).__name__}, not a pcrobust.models.TimestepModel")
            steps = model.default_timesteps if surrogate.timesteps is None else surrogate.timesteps
            with evaluation_mode(model.to(context.device)):
                check = check_timestep_contract(model, context.data.images, context.data.num_classes, steps,
                                                context.device, who)
            context.surrogates[key] = (model, steps, check)
        return context.surrogates[key]

    def _transfer(self, options: AttackSectionOptions, attack: Any, indices: list[int], goal: torch.Tensor,
                  context: RunContext) -> tuple[AttackOutcome, str, dict[str, Any]]:
        surrogate = options.surrogate
        assert surrogate is not None and options.epsilons is not None
        model, steps, check = self._surrogate(surrogate, context)
        with evaluation_mode(model):
            outcome = transfer_per_timestep(model, steps, surrogate.readout, context.model, attack,
                                            context.data.images[indices], goal, options.epsilons,
                                            context.timesteps, context.batch_size, context.device, context.seed,
                                            indices, targeted=options.criterion == "targeted",
                                            progress=context.progress)
        described = {"plugin": surrogate.plugin, "name": surrogate.name, "readout": surrogate.readout,
                     "timesteps": steps, "contract_check": check.describe()}
        return outcome, model.gradient_mode, {"surrogate": described}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        options = _options(section)
        assert options.epsilons is not None
        targeted = options.criterion == "targeted"
        fields: dict[str, Any] = {
            "criterion": options.criterion, "attacked_readout": options.readout, "scored_readout": "t",
            "selection": SELECTION_RULES[options.selection], "n_requested": options.n,
            "protocol": ("one target per image for all timesteps; success = argmax of the scored readout equals "
                         "the target" if targeted else "success = argmax of the scored readout differs from "
                         "the label; robust accuracy = 1 − success rate") + "; epsilons in pixel units of images "
                        "in [0, 1]",
        }
        if targeted:
            fields.update(target_mode=options.target_mode, target_shift=options.target_shift)
        if options.surrogate is not None:
            fields["surrogate"] = options.surrogate.model_dump(mode="json", exclude={"options"})
            fields["attacked_readout"] = f"surrogate {options.surrogate.readout}"
        if not outcomes:
            fields["note"] = f"no evaluated image met the selection rule ({SELECTION_RULES[options.selection]})"
            return SectionResult(fields, [])
        first = outcomes[0][1]
        fields.update(attack={"name": options.attack, "targeted": targeted, **first["attack"]},
                      gradient_mode=first["gradient_mode"])
        if "surrogate" in first:
            fields["surrogate"] = first["surrogate"]
        indices = [i for _, outcome in outcomes for i in outcome["indices"]]
        fields["queries"] = _per_timestep_means(options.epsilons, [o["queries"] for _, o in outcomes])
        names = sorted({name for _, outcome in outcomes for name in outcome.get("records", {})})
        if names:
            fields["records"] = {name: _per_timestep_means(options.epsilons, [o["records"][name] for _, o in outcomes])
                                 for name in names}
        if "starts" in first:
            fields["starts"] = {"rule": "the nearest evaluated image (in the attack's norm) that the model puts in "
                                        "the goal class at the attacked readout"
                                        + (", of the target class" if targeted else "")
                                        + "; none: the image was not attacked",
                                "per_image": {str(i): start for _, outcome in outcomes
                                              for i, start in zip(outcome["indices"], outcome["starts"],
                                                                  strict=True)}}
        series = []
        for row, epsilon in enumerate(options.epsilons):
            success = np.asarray([r for _, outcome in outcomes for r in outcome["success"][row]], dtype=bool)
            threat = {"norm": options.norm, "epsilon": epsilon, "criterion": options.criterion}
            label = f"ε={epsilon:g}"
            if targeted:
                series.append(Series(label, {"epsilon": epsilon}, "success_rate", False, indices, success,
                                     threat, success))
            else:
                series.append(Series(label, {"epsilon": epsilon}, "robust_accuracy", True, indices, ~success,
                                     threat, success))
        return SectionResult(fields, series)


def _per_timestep_means(epsilons: Sequence[float], units: Sequence[Sequence[Sequence[Sequence[float]]]]
                        ) -> list[dict[str, Any]]:
    """Per ε, the mean and the maximum over images at each timestep of the units' per-image values
    ``[E][N][T+1]`` (NaN values, of copies never attacked, left out)."""
    summary = []
    for row, epsilon in enumerate(epsilons):
        table = np.asarray([r for values in units for r in values[row]], dtype=float)
        summary.append({"epsilon": epsilon,
                        "mean": [None if np.isnan(c).all() else float(np.nanmean(c)) for c in table.T],
                        "max": [None if np.isnan(c).all() else float(np.nanmax(c)) for c in table.T]})
    return summary
