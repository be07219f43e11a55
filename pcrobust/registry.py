"""Registries of named entries that plugins fill through their hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from pcrobust.errors import PcrobustError, UnknownNameError

if TYPE_CHECKING:
    from pcrobust.attacks import Attack, AttackSettings
    from pcrobust.datasets import LabeledImages
    from pcrobust.models import TimestepModel

Options = Mapping[str, str]


@dataclass(frozen=True)
class TrainingRequest:
    """What ``pcrobust train`` hands a model's trainer: where to write, the seed, options, the datasets."""

    out: Path
    seed: int
    options: Options
    datasets: DatasetRegistry


@dataclass(frozen=True)
class ModelEntry:
    """A model a plugin offers.

    ``build(weights, options)`` returns a ready model (weights ``None`` = the entry's own);
    ``weight_files(weights, options)`` lists the files whose checksums go into results;
    ``train(request)``, when given, trains the entry's weights (and reproduces shipped ones).
    """

    name: str
    description: str
    build: Callable[[Path | None, Options], TimestepModel]
    dataset: str
    weight_files: Callable[[Path | None, Options], list[Path]]
    train: Callable[[TrainingRequest], Path] | None = None
    default: bool = False
    plugin: str = ""


@dataclass(frozen=True)
class AttackEntry:
    """An attack a plugin offers: ``build(settings)`` returns an :class:`~pcrobust.attacks.Attack`."""

    name: str
    description: str
    build: Callable[[AttackSettings], Attack]
    plugin: str = ""


@dataclass(frozen=True)
class DatasetEntry:
    """A labelled image set: ``load(split)`` returns images in [0, 1] with labels."""

    name: str
    description: str
    splits: tuple[str, ...]
    load: Callable[[str], LabeledImages]
    plugin: str = ""


class _Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=_Named)


@dataclass
class Registry(Generic[E]):
    """Named entries of one kind; the plugin host stamps each with the plugin that added it."""

    kind: str
    entries: dict[str, E] = field(default_factory=dict)
    current_plugin: str = ""

    def add(self, entry: E) -> None:
        """Register ``entry``; a second entry with the same name is an error."""
        if entry.name in self.entries:
            owner = getattr(self.entries[entry.name], "plugin", "")
            raise PcrobustError(f"{self.kind} {entry.name!r} is registered twice (first by plugin {owner!r})")
        if self.current_plugin:
            entry = replace(entry, plugin=self.current_plugin)  # type: ignore[type-var]
        self.entries[entry.name] = entry

    def get(self, name: str) -> E:
        """The entry called ``name``, or a one-line error listing what exists."""
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self.entries)) from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __iter__(self) -> Iterator[E]:
        return iter(self.entries.values())


ModelRegistry = Registry[ModelEntry]
AttackRegistry = Registry[AttackEntry]
DatasetRegistry = Registry[DatasetEntry]
