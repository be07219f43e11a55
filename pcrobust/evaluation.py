"""One evaluation run of a plan: resolve its entries, execute its units into the output folder, assemble."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcrobust import __version__
from pcrobust.contract import check_timestep_contract
from pcrobust.datasets import sha256_of
from pcrobust.engine import precision_scope, resolve_device
from pcrobust.errors import PcrobustError
from pcrobust.models import TimestepModel, evaluation_mode
from pcrobust.plan import Plan
from pcrobust.plugins import PluginHost
from pcrobust.run.assemble import assemble
from pcrobust.run.context import RunContext
from pcrobust.run.execute import Shard, execute, plan_units
from pcrobust.run.ranks import Ranks, process_group, wait_for_all
from pcrobust.run.store import RunFolder
from pcrobust.sections import Section, Unit

SELECTION_RULE = "images in the order of a permutation of the split seeded by data.seed (data.n keeps the first n)"


def resolve(host: PluginHost, plan: Plan, progress: bool = True, ranks: Ranks | None = None) -> RunContext:
    """Build the model, load the data and run every section's checks; raises :class:`PcrobustError`."""
    entry = host.model(plan.model.plugin, plan.model.name)
    dataset_name = plan.data.dataset or entry.dataset
    if not dataset_name:
        raise PcrobustError(f"model {entry.name!r} has no default dataset; name one with --dataset")
    dataset_entry = host.registries.datasets.get(dataset_name)
    if plan.data.path is not None and dataset_entry.read_folder is None:
        readers = [entry.name for entry in host.registries.datasets if entry.read_folder is not None]
        raise PcrobustError(f"dataset {dataset_entry.name!r} reads no folder of images; those that do: "
                            f"{', '.join(readers) or 'none'}")
    if plan.data.masks is not None and plan.data.path is None:
        raise PcrobustError("--masks (data.masks) needs --data (data.path): the masks of a folder of images")
    if plan.data.path is None and plan.data.split not in dataset_entry.splits:
        raise PcrobustError(f"unknown split {plan.data.split!r} of {dataset_entry.name}; "
                            f"available: {', '.join(dataset_entry.splits)}")
    try:
        device = resolve_device(plan.run.device)
    except ValueError as exc:
        raise PcrobustError(str(exc)) from None
    if ranks is not None:
        device = ranks.device(device)
    weights = Path(plan.model.weights) if plan.model.weights else None
    model = entry.build(weights, plan.model_options())
    if not isinstance(model, TimestepModel):
        raise PcrobustError(f"model {entry.name!r} of plugin {entry.plugin!r} built a {type(model).__name__}, "
                            "not a pcrobust.models.TimestepModel")
    if plan.model.gradient_mode is not None:
        try:
            model.set_gradient_mode(plan.model.gradient_mode)
        except ValueError as exc:
            raise PcrobustError(str(exc)) from None
    try:
        model.set_checkpointing(plan.run.checkpoint_timesteps)
    except ValueError as exc:
        raise PcrobustError(f"run.checkpoint_timesteps: {exc}") from None
    if plan.data.path is not None:
        data = dataset_entry.read(Path(plan.data.path), Path(plan.data.masks) if plan.data.masks else None)
    else:
        data = dataset_entry.load(plan.data.split)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(plan.data.seed))
    timesteps = model.default_timesteps if plan.run.timesteps is None else plan.run.timesteps
    with evaluation_mode(model.to(device)):
        contract = check_timestep_contract(model, data.images, data.num_classes, timesteps, device,
                                           f"model {entry.name!r} of plugin {entry.plugin!r}")
    context = RunContext(plan.run, host.registries, model, data, device, timesteps,
                         order[: plan.data.n] if plan.data.n else order, progress, contract)
    for section in plan.sections:
        try:
            section.kind.check(section.options, context)
        except PcrobustError as exc:
            raise PcrobustError(f"{section.where()}: {exc}") from None
    return context


def software_provenance(host: PluginHost) -> dict[str, Any]:
    """The versions of pcrobust, its plugins (and those left out), torch, numpy and Python."""
    return {
        "pcrobust": __version__,
        "plugins": {name: info.version for name, info in host.info.items() if name not in host.broken},
        "plugins_left_out": dict(host.broken),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def facts(host: PluginHost, plan: Plan, context: RunContext) -> dict[str, Any]:
    """What results record about the model, the data and the software, fixed before any unit runs."""
    entry = host.model(plan.model.plugin, plan.model.name)
    weights = Path(plan.model.weights) if plan.model.weights else None
    model = context.model
    return {
        "timesteps": list(range(context.timesteps + 1)),
        "model": {"plugin": plan.model.plugin, "name": entry.name, **model.describe()},
        "dataset": {**context.data.describe(), "n_evaluated": len(context.evaluated), "selection": SELECTION_RULE},
        "provenance": {
            **software_provenance(host),
            "device": str(context.device),
            "seed": plan.run.seed,
            "data_seed": plan.data.seed,
            "gradient_mode": model.gradient_mode,
            "precision": plan.run.precision,
            "checkpoint_timesteps": plan.run.checkpoint_timesteps,
            "contract_check": context.contract.describe() if context.contract else None,
            "weights": {str(path.name): sha256_of(path) for path in entry.weight_files(weights, plan.model_options())},
        },
    }


def _described(units: Sequence[tuple[Section, Unit]], plan: Plan) -> dict[str, list[dict[str, Any]]]:
    described: dict[str, list[dict[str, Any]]] = {section.id: [] for section in plan.sections}
    for section, unit in units:
        described[section.id].append({"key": unit.key, "indices": list(unit.indices), "params": dict(unit.params)})
    return described


def run(host: PluginHost, plan: Plan, folder: RunFolder, *, resume: bool = False, shard: Shard | None = None,
        progress: bool = True, ranks: Ranks | None = None) -> dict[str, Any] | None:
    """Execute ``plan`` into ``folder``; returns the results document, or ``None`` for a shard (merge later) and
    on every rank of a ``torchrun`` world but rank 0 (which assembles what all ranks stored)."""
    if ranks is not None and shard is not None:
        raise PcrobustError("--shard cannot be combined with torchrun: the ranks share the units among themselves")
    context = resolve(host, plan, progress and (ranks is None or ranks.leader), ranks)
    if ranks is None:
        return _execute(host, plan, folder, context, resume, shard, None)
    with process_group(ranks, context.device):
        return _execute(host, plan, folder, context, resume, ranks.shard, ranks)


def run_resolved(host: PluginHost, plan: Plan, folder: RunFolder, context: RunContext, *,
                 resume: bool = False) -> dict[str, Any]:
    """Execute ``plan`` into ``folder`` in this process with a context :func:`resolve` built; returns the results
    document."""
    results = _execute(host, plan, folder, context, resume, None, None)
    assert results is not None  # a whole run in one process always assembles
    return results


def _execute(host: PluginHost, plan: Plan, folder: RunFolder, context: RunContext, resume: bool,
             shard: Shard | None, ranks: Ranks | None) -> dict[str, Any] | None:
    """Prepare the folder (rank 0), run this process's units, and assemble (a whole run, or rank 0 of ranks)."""
    digest = plan.digest()
    leader = ranks is None or ranks.leader
    previous = None
    if leader and folder.prepare(digest, resume, __version__):
        previous = folder.record()
    model = context.model.to(context.device)
    with evaluation_mode(model), precision_scope(plan.run.precision, context.device):
        units = plan_units(plan.sections, context)
        record = {"plan_digest": digest, "shard": str(shard) if shard and ranks is None else None,
                  "units": _described(units, plan), "facts": facts(host, plan, context),
                  "outputs": previous.get("outputs", []) if previous else []}
        if leader:
            folder.write_record(record, plan.to_toml())
        wait_for_all()
        execute(context, folder, units, digest, shard)
        wait_for_all()
    if not leader or (shard is not None and ranks is None):
        return None
    return assemble(plan, folder, record)
