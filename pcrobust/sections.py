"""The section contract: a kind of measurement a plan can hold (clean, noise, attack, ...).

A section kind declares its typed options, expands a section into independent :class:`Unit` s (one
parameter value × one chunk of images, or whatever split suits it), runs one unit into a JSON-ready
outcome, and assembles the stored outcomes into per-image :class:`Series`. The core turns series into
counts, rates, intervals and tests, so every kind gets them alike. Kinds are registered through the
``pcrobust_register_sections`` hook, the built-in ones too.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from pcrobust.schema import Schema

if TYPE_CHECKING:
    from pcrobust.registry import Registries
    from pcrobust.run.context import RunContext


class SectionOptions(Schema):
    """Options every section accepts; kinds subclass this with their own typed fields."""

    name: str | None = Field(None, min_length=1, description="the section's id in results (default: derived)")


@dataclass(frozen=True)
class Unit:
    """One independent piece of a section's work; ``key`` is unique within its section and stable."""

    key: str
    indices: tuple[int, ...]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    """One curve over timesteps: per image (rows, dataset ``indices``) and timestep (columns), whether the
    counted event happened (an image was right; an attack succeeded).

    ``higher_is_better`` says whether more events mean a more robust model. Attack series also say which
    images were ``broken`` (so sections can be combined into a worst case) under which ``threat``."""

    label: str
    key: Mapping[str, Any]
    metric: str
    higher_is_better: bool
    indices: Sequence[int]
    events: np.ndarray
    threat: Mapping[str, Any] | None = None
    broken: np.ndarray | None = None


@dataclass(frozen=True)
class Measure:
    """One continuous quantity per image (rows, dataset ``indices``) and timestep (columns): a distance or an
    error, NaN where it is undefined for an image. The core reports its mean per timestep, the mean divided by
    its value at t = 0, bootstrap intervals of both and a paired sign test against t = 0. Measures of one
    ``panel`` (e.g. a layer) are plotted together."""

    label: str
    key: Mapping[str, Any]
    metric: str
    panel: str
    indices: Sequence[int]
    values: np.ndarray
    higher_is_better: bool = False


@dataclass(frozen=True)
class SectionResult:
    """What a kind assembles from its stored units: its own fields for the results entry, its series (counted
    events) and its measures (continuous values)."""

    fields: Mapping[str, Any]
    series: Sequence[Series]
    measures: Sequence[Measure] = ()


@dataclass(frozen=True)
class Section:
    """A validated section of a plan: its position (1-based), id, kind and options."""

    number: int
    id: str
    kind: SectionKind
    options: SectionOptions

    def where(self) -> str:
        """How errors name this section, e.g. ``section 3 (attack bim)``."""
        return f"section {self.number} ({self.kind.label(self.options)})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.name, **self.options.model_dump(mode="json", exclude_none=True)}


class SectionKind(ABC):
    """A kind of section. Subclasses set ``name``, ``description`` and ``options`` and implement the rest."""

    name: str
    description: str
    options: type[SectionOptions] = SectionOptions
    plugin: str = ""

    def with_plugin(self, plugin: str) -> SectionKind:
        """A copy attributed to ``plugin`` (the plugin host calls this when the kind is registered)."""
        attributed = copy.copy(self)
        attributed.plugin = plugin
        return attributed

    def complete(self, options: SectionOptions, registries: Registries) -> SectionOptions:
        """Check names against the registries and fill defaults that depend on them; raise
        :class:`~pcrobust.errors.PcrobustError` naming the key. Default: nothing to do."""
        return options

    def check(self, options: SectionOptions, context: RunContext) -> None:
        """Checks that need the built model or the loaded data, before any work. Default: none."""
        return None

    def label(self, options: SectionOptions) -> str:
        """A short human name, e.g. ``attack bim``; also the default id."""
        return self.name

    @abstractmethod
    def title(self, options: SectionOptions) -> str:
        """The heading of the section in reports, e.g. ``targeted bim (L∞)``."""

    @abstractmethod
    def units(self, section: Section, context: RunContext) -> list[Unit]:
        """The section's units, in a deterministic order."""

    @abstractmethod
    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        """Run one unit; the outcome must be JSON-serialisable and hold per-image results."""

    @abstractmethod
    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        """Per-image series from the stored outcomes of all the section's units (in unit order)."""
