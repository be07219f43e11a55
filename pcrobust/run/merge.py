"""Merging shard folders of one plan into a single run folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pcrobust import __version__
from pcrobust.errors import PcrobustError
from pcrobust.plan import parse_plan, read_plan_file
from pcrobust.plugins import PluginHost
from pcrobust.run.assemble import assemble
from pcrobust.run.store import PLAN_FILE, RunFolder, written_by


def merge_shards(host: PluginHost, shards: list[Path], out: Path) -> tuple[dict[str, Any], RunFolder]:
    """Copy every stored unit of ``shards`` into ``out`` and assemble the results of the whole plan."""
    folders = [RunFolder(path) for path in shards]
    if any(folder.path.resolve() == out.resolve() for folder in folders):
        raise PcrobustError("--out must be a new folder, not one of the shards")
    records = []
    for folder in folders:
        record = folder.record()
        if record is None:
            raise PcrobustError(f"{folder.path} holds no pcrobust run")
        records.append(record)
    digests = {record["plan_digest"] for record in records}
    if len(digests) > 1:
        raise PcrobustError("the folders hold different plans; only shards of one plan merge")
    versions = {written_by(record) for record in records}
    if versions != {__version__}:
        raise PcrobustError(f"the shards were written by pcrobust {', '.join(sorted(map(str, versions)))}; "
                            f"this is {__version__}, and shards merge only with the version that wrote them")
    plan = parse_plan(read_plan_file(folders[0].path / PLAN_FILE), host.registries)
    digest = plan.digest()
    if digests != {digest}:
        raise PcrobustError(f"{folders[0].path / PLAN_FILE} does not match its run record")
    target = RunFolder(out)
    target.prepare(digest, resume=False, version=__version__)
    record = {**records[0], "shard": None, "outputs": [], "merged_from": len(folders)}
    for section in plan.sections:
        for unit in record["units"][section.id]:
            sources = [f.unit_file(section.id, unit["key"]) for f in folders]
            found = [source for source in sources if source.is_file()]
            if not found:
                raise PcrobustError(f"unit {unit['key']!r} of {section.where()} is in none of the shard folders")
            destination = target.unit_file(section.id, unit["key"])
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found[0], destination)
    target.write_record(record, plan.to_toml())
    return assemble(plan, target, record), target
