"""Plans: the model and data once, then a list of sections, each with its own typed options.

A plan is read from TOML (``pcrobust evaluate --plan``), built from the CLI's shorthand flags, or shipped
as a preset; all three go through :func:`parse_plan`, which validates every name, number and conflicting
option before any work and names the section and key of the first problem. A plan may also hold a
``[sweep]`` table: the grid of model options ``pcrobust sweep`` runs it over.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from pcrobust.errors import PcrobustError
from pcrobust.names import slug
from pcrobust.schema import validated
from pcrobust.sections import Section, SectionKind
from pcrobust.specs import DataSpec, ModelSpec, RunSpec, option_strings
from pcrobust.sweep.grid import SweepSpec

if TYPE_CHECKING:
    from pcrobust.registry import Registries

PLAN_KEYS = ("model", "data", "run", "sections", "sweep")


@dataclass(frozen=True)
class Plan:
    """A validated plan; :meth:`to_dict` is its canonical form (defaults filled in)."""

    model: ModelSpec
    data: DataSpec
    run: RunSpec
    sections: tuple[Section, ...]
    sweep: SweepSpec | None = None
    """The grid of model options ``pcrobust sweep`` runs the plan over; absent for a single run."""

    def model_options(self) -> dict[str, str]:
        """Model options as the strings a model's ``build`` receives."""
        return option_strings(self.model.options)

    def to_dict(self) -> dict[str, Any]:
        model = self.model.model_dump(mode="json", exclude_none=True)
        if not model["options"]:
            del model["options"]
        return {
            "model": model,
            "data": self.data.model_dump(mode="json", exclude_none=True),
            "run": self.run.model_dump(mode="json", exclude_none=True),
            "sections": [section.to_dict() for section in self.sections],
            **({"sweep": self.sweep.model_dump(mode="json")} if self.sweep is not None else {}),
        }

    def digest(self) -> str:
        """sha256 of the canonical plan: two plans with the same digest do the same work."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_toml(self) -> str:
        """The canonical plan as TOML, each section as its own ``[[sections]]`` table."""
        plan = self.to_dict()
        if any(isinstance(value, dict) for section in plan["sections"] for table in section.values()
               if isinstance(table, dict) for value in table.values()):
            return tomli_w.dumps(plan)  # deeper nesting than one table per section: TOML's general form
        sections, sweep = plan.pop("sections"), plan.pop("sweep", None)
        text = tomli_w.dumps(plan)
        for section in sections:
            flat = {key: value for key, value in section.items() if not isinstance(value, dict)}
            text += "\n[[sections]]\n" + tomli_w.dumps(flat)
            for key, table in section.items():
                if isinstance(table, dict):
                    text += f"\n[sections.{key}]\n" + tomli_w.dumps(table)
        return text + ("\n" + tomli_w.dumps({"sweep": sweep}) if sweep is not None else "")


def _section_label(kind: Any, raw: Mapping[str, Any]) -> str:
    try:
        return str(kind.label(kind.options.model_construct(**raw)))
    except Exception:  # a label built from unvalidated input is best effort only
        return str(kind.name)


def _section(number: int, raw: Any, registries: Registries) -> Section:
    if not isinstance(raw, dict):
        raise PcrobustError(f"section {number}: expected a table, got {type(raw).__name__}")
    body = dict(raw)
    kind_name = body.pop("kind", None)
    if not isinstance(kind_name, str):
        raise PcrobustError(f"section {number}: missing key 'kind'; available kinds: "
                            f"{', '.join(registries.sections.names())}")
    try:
        kind = registries.sections.get(kind_name)
    except PcrobustError as exc:
        raise PcrobustError(f"section {number}: {exc}") from None
    if not isinstance(kind, SectionKind):
        raise PcrobustError(f"section {number}: kind {kind_name!r} of plugin {kind.plugin!r} is not a "
                            "pcrobust.sections.SectionKind")
    where = f"section {number} ({_section_label(kind, body)})"
    options = validated(kind.options, body, where)
    try:
        options = kind.complete(options, registries)
    except PcrobustError as exc:
        raise PcrobustError(f"{where}: {exc}") from None
    return Section(number, options.name or kind.label(options), kind, options)


def _unique_ids(sections: list[Section]) -> tuple[Section, ...]:
    """Derived ids that repeat get ``#2``, ``#3``...; an explicit ``name`` that repeats is an error.

    Ids are compared as the file names their units are stored under, so two sections never share files."""
    taken: dict[str, str] = {}  # slug of an id → the id
    unique = []
    for section in sections:
        section_id, count = section.id, 1
        if section.options.name and slug(section_id) in taken:
            earlier = taken[slug(section_id)]
            clash = "" if earlier == section_id else f" (stored under the same name as {earlier!r})"
            raise PcrobustError(f"{section.where()}: name {section_id!r} is used by an earlier section{clash}")
        while slug(section_id) in taken:
            count += 1
            section_id = f"{section.id} #{count}"
        taken[slug(section_id)] = section_id
        unique.append(section if section_id == section.id else Section(section.number, section_id, section.kind,
                                                                      section.options))
    return tuple(unique)


def parse_plan(raw: Mapping[str, Any], registries: Registries) -> Plan:
    """Validate a plan given as nested tables; raises a one-line :class:`PcrobustError` on the first problem."""
    unknown = sorted(set(raw) - set(PLAN_KEYS))
    if unknown:
        raise PcrobustError(f"plan: unknown key {unknown[0]!r}; a plan holds {', '.join(PLAN_KEYS)}")
    if "model" not in raw:
        raise PcrobustError("plan: missing table 'model' (at least: plugin = \"...\")")
    model = validated(ModelSpec, raw["model"], "model")
    data = validated(DataSpec, raw.get("data", {}), "data")
    run = validated(RunSpec, raw.get("run", {}), "run")
    sections = raw.get("sections")
    if not isinstance(sections, list) or not sections:
        raise PcrobustError("plan: 'sections' must be a non-empty list of tables ([[sections]] in TOML)")
    parsed = [_section(number, section, registries) for number, section in enumerate(sections, start=1)]
    sweep = validated(SweepSpec, raw["sweep"], "sweep") if "sweep" in raw else None
    return Plan(model, data, run, _unique_ids(parsed), sweep)


def read_plan_file(path: Path) -> dict[str, Any]:
    """The tables of a TOML plan file; unreadable or malformed files are one-line errors."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PcrobustError(f"plan file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PcrobustError(f"cannot read plan file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PcrobustError(f"plan file {path} is not valid TOML: {exc}") from None
