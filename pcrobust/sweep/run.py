"""Running a sweep: one full run of the plan per grid point, each in its own folder, and ``sweep.json``.

Every point runs the same plan (same images, same seeds) with its model options, so points are paired. A point
the model rejects (say β + λ > 1) is skipped with one line and recorded with the reason; the others still run.
With ``resume``, a point whose ``results.json`` belongs to its plan is skipped and an unfinished one continues
from its stored units.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pcrobust import __version__
from pcrobust.errors import PcrobustError, first_line
from pcrobust.evaluation import resolve, run_resolved, software_provenance
from pcrobust.files import atomic_write_json, read_schema_json
from pcrobust.plan import Plan
from pcrobust.plugins import PluginHost
from pcrobust.results import write_json, write_report
from pcrobust.run.store import LOCK_FILE, RunFolder
from pcrobust.sweep.grid import Grid, Point
from pcrobust.sweep.plots import write_sweep_plots

SWEEP_SCHEMA = "pcrobust.sweep/1"
SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.json"


def point_plan(plan: Plan, point: Point) -> Plan:
    """``plan`` with the point's values added to its model options (and no grid: a point is a single run)."""
    options = {**plan.model.options, **point.options()}
    return replace(plan, model=plan.model.model_copy(update={"options": options}), sweep=None)


def read_sweep(out: Path) -> dict[str, Any] | None:
    """The sweep document in ``out``, or ``None`` when there is none."""
    return read_schema_json(out / SWEEP_FILE, SWEEP_SCHEMA, "document")


def _finished(folder: Path, digest: str) -> dict[str, Any] | None:
    """The results of a finished run of the plan with ``digest`` in ``folder``, by this version of pcrobust."""
    file = folder / RESULTS_FILE
    if not file.is_file():
        return None
    try:
        results = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    same = (isinstance(results, dict) and results.get("plan_digest") == digest
            and results.get("provenance", {}).get("pcrobust") == __version__)
    return results if same else None


def point_sections(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per section and series, the value at every timestep and its change from t = 0."""
    return [{"id": section["id"], "kind": section["kind"], "title": section.get("title", section["id"]),
             "series": [{"label": series["label"], "key": series.get("key", {}), "metric": series.get("metric"),
                         "higher_is_better": series.get("higher_is_better"), "n": series.get("n"),
                         "values": series.get("values"), "change_from_t0": series.get("change_from_t0")}
                        for series in section.get("series", [])]}
            for section in results["sections"]]


def _clear_earlier(out: Path, earlier: dict[str, Any]) -> None:
    """Remove what an earlier sweep in ``out`` wrote besides its plots: its document and its points' runs."""
    for point in earlier.get("points", []):
        folder = out / str(point.get("folder", ""))
        if folder != out and folder.is_dir():
            RunFolder(folder).clear()
            if [path.name for path in folder.iterdir()] == [LOCK_FILE]:
                (folder / LOCK_FILE).unlink()
                folder.rmdir()
    (out / SWEEP_FILE).unlink(missing_ok=True)


class Sweep:
    """The sweep of ``plan`` over ``grid`` into ``out``; :meth:`run` runs every point and returns the document."""

    def __init__(self, host: PluginHost, plan: Plan, grid: Grid, out: Path, echo: Callable[[str], None],
                 warn: Callable[[str], None]) -> None:
        plan = replace(plan, sweep=None)  # the grid is recorded on its own, so a grid may grow on resume
        self.host, self.plan, self.grid, self.out, self.echo, self.warn = host, plan, grid, out, echo, warn
        self.document: dict[str, Any] = {
            "schema": SWEEP_SCHEMA,
            "grid": grid.to_dict(),
            "plan": plan.to_dict(),
            "plan_digest": plan.digest(),
            "timesteps": None,
            "model": None,
            "points": [{"values": dict(point.values), "folder": point.name, "status": "pending"}
                       for point in grid.points()],
            "provenance": {**software_provenance(host), "seed": plan.run.seed, "data_seed": plan.data.seed},
            "outputs": [],
        }

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        earlier = read_sweep(self.out)
        if earlier is not None and resume and earlier.get("plan_digest") != self.plan.digest():
            raise PcrobustError(f"{self.out} holds a sweep of another plan; resume needs the same plan (the grid "
                                "may change), or use another --out")
        if earlier is not None:
            for name in earlier.get("outputs", []):
                (self.out / name).unlink(missing_ok=True)
            if not resume:
                _clear_earlier(self.out, earlier)
        self.save()
        for position, point in enumerate(self.grid.points()):
            self.document["points"][position] = self._run_point(point, resume, progress)
            self.save()
        if not any(point["status"] == "done" for point in self.document["points"]):
            raise PcrobustError(f"every grid point was skipped; the first: {self.document['points'][0]['reason']}")
        self.document["outputs"] = [path.name for path in write_sweep_plots(self.document, self.out)]
        self.save()
        return self.document

    def save(self) -> None:
        atomic_write_json(self.out / SWEEP_FILE, self.document)

    def _run_point(self, point: Point, resume: bool, progress: bool) -> dict[str, Any]:
        plan = point_plan(self.plan, point)
        record = {"values": dict(point.values), "folder": point.name, "plan_digest": plan.digest()}
        folder = RunFolder(self.out / point.name)
        finished = _finished(folder.path, plan.digest()) if resume else None
        if finished is not None:
            self.echo(f"{point.name}: finished earlier, skipped")
            return self._done(record, finished)
        with folder.locked():
            try:
                context = resolve(self.host, plan, progress)
            except PcrobustError as exc:
                reason = first_line(exc)
                self.warn(f"pcrobust: warning: grid point {point.name} skipped: {reason}")
                folder.clear()
                return {**record, "status": "skipped", "reason": reason}
            results = run_resolved(self.host, plan, folder, context, resume=resume)
            written = [write_json(results, folder.path / RESULTS_FILE), *write_report(results, folder.path)]
            folder.set_outputs([path.name for path in written])
        self.echo(f"{point.name}: done, results in {folder.path / RESULTS_FILE}")
        return self._done(record, results)

    def _done(self, record: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
        if self.document["timesteps"] is None:
            self.document["timesteps"] = results["timesteps"]
            self.document["model"] = {key: results["model"].get(key) for key in ("plugin", "name")}
            self.document["provenance"]["device"] = results["provenance"].get("device")
        return {**record, "status": "done", "sections": point_sections(results)}
