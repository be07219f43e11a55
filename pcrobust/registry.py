"""Registries of named entries, and the registrars through which each plugin fills them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from pcrobust.errors import PcrobustError, UnknownNameError, first_line

if TYPE_CHECKING:
    from pcrobust.attacks import Attack, AttackOptions, Norm
    from pcrobust.datasets import LabeledImages
    from pcrobust.models import TimestepModel

Options = Mapping[str, str]
DEFAULT_BACKEND = "pcrobust"  # the attack's own implementation, AttackEntry.build


@dataclass(frozen=True)
class TrainingRequest:
    """What ``pcrobust train`` hands a model's trainer: where to write, the seed, options, the datasets.

    ``state_dir``: where a resumable trainer keeps its state after every epoch; ``resume``: continue from it
    (from ``out`` for a trainer that keeps its state in the checkpoint itself)."""

    out: Path
    seed: int
    options: Options
    datasets: DatasetRegistry
    state_dir: Path | None = None
    resume: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """A model a plugin offers.

    ``build(weights, options)`` returns a ready model (weights ``None`` = the entry's own);
    ``weight_files(weights, options)`` lists the files whose checksums go into results;
    ``train(request)``, when given, trains the entry's weights (and reproduces shipped ones);
    ``option_help`` documents each option ``build`` accepts (``-o KEY=VALUE``), as ``pcrobust models`` shows;
    ``resumable``: ``train`` honours ``TrainingRequest.state_dir`` and ``resume``.
    """

    name: str
    description: str
    build: Callable[[Path | None, Options], TimestepModel]
    dataset: str
    weight_files: Callable[[Path | None, Options], list[Path]]
    train: Callable[[TrainingRequest], Path] | None = None
    default: bool = False
    option_help: Mapping[str, str] = field(default_factory=dict)
    plugin: str = ""
    resumable: bool = False


@dataclass(frozen=True)
class AttackEntry:
    """An attack a plugin offers.

    ``build(options, norm)`` returns an :class:`~pcrobust.attacks.Attack`; ``options`` is the attack's own
    typed schema (defaults included); ``norms`` are the threat models it supports, the first being its
    default; ``default_epsilons`` gives a grid per norm (pixel units of images in [0, 1]); ``criteria``
    says whether it runs targeted, untargeted or both. ``backends`` names other implementations of the same
    attack (e.g. a library's), built like ``build``; an options field ``backend`` picks one, and its default,
    :data:`DEFAULT_BACKEND`, is ``build``.
    """

    name: str
    description: str
    build: Callable[[AttackOptions, Norm], Attack]
    options: type[AttackOptions]
    norms: tuple[Norm, ...]
    default_epsilons: Mapping[Norm, tuple[float, ...]]
    criteria: tuple[str, ...] = ("targeted", "untargeted")
    backends: Mapping[str, Callable[[AttackOptions, Norm], Attack]] = field(default_factory=dict)
    plugin: str = ""

    def builder(self, options: AttackOptions) -> Callable[[AttackOptions, Norm], Attack]:
        """What builds the attack of ``options``: the builder of its ``backend``, or ``build``."""
        backend = getattr(options, "backend", DEFAULT_BACKEND)
        if backend == DEFAULT_BACKEND:
            return self.build
        if backend not in self.backends:
            choices = ", ".join([DEFAULT_BACKEND, *sorted(self.backends)])
            raise PcrobustError(f"options.backend: {self.name} has no backend {backend!r}; choose from {choices}")
        return self.backends[backend]

    def make(self, options: AttackOptions, norm: Norm) -> Attack:
        """The attack of ``options`` (validated by :attr:`options`) under ``norm``, from its backend's builder."""
        return self.builder(options)(options, norm)


@dataclass(frozen=True)
class PresetEntry:
    """A named plan shipped in a package: ``plan()`` returns its tables (as read from TOML)."""

    name: str
    description: str
    plan: Callable[[], dict[str, Any]]
    plugin: str = ""


@dataclass(frozen=True)
class DatasetEntry:
    """A labelled image set: ``load(split)`` returns images in [0, 1] with labels; ``read_folder(path)``, when
    given, reads a user's own folder of such images (``--data DIR``) with the same classes and preprocessing, and
    ``read_folder(path, masks=DIR)`` their segmentation masks where it takes ``masks``."""

    name: str
    description: str
    splits: tuple[str, ...]
    load: Callable[[str], LabeledImages]
    read_folder: Callable[[Path], LabeledImages] | None = None
    plugin: str = ""

    def read(self, root: Path, masks: Path | None = None) -> LabeledImages:
        """The folder ``root`` by ``read_folder``, with the segmentation masks of folder ``masks`` when given."""
        if self.read_folder is None:
            raise PcrobustError(f"dataset {self.name!r} reads no folder of images")
        if masks is None:
            return self.read_folder(root)
        if "masks" not in inspect.signature(self.read_folder).parameters:
            raise PcrobustError(f"dataset {self.name!r} reads no folder of masks")
        reader: Callable[..., LabeledImages] = self.read_folder
        return reader(root, masks=masks)


class Entry(Protocol):
    """What every registry entry offers: its name and the plugin that registered it."""

    @property
    def name(self) -> str: ...

    @property
    def plugin(self) -> str: ...


class SectionEntry(Entry, Protocol):
    """A section kind as the registry sees it; the plan checks that it is a :class:`~pcrobust.sections.SectionKind`."""


E = TypeVar("E", bound=Entry)


@dataclass
class Registry(Generic[E]):
    """Named entries of one kind, each carrying the plugin that added it."""

    kind: str
    entries: dict[str, E] = field(default_factory=dict)

    def add(self, entry: E) -> None:
        """Register ``entry``; a second entry with the same name is an error."""
        if entry.name in self.entries:
            owner = self.entries[entry.name].plugin
            raise PcrobustError(f"{self.kind} {entry.name!r} is registered twice (first by plugin {owner!r})")
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


@dataclass(frozen=True)
class Registrar(Generic[E]):
    """What a registration hook receives: adds entries to one registry on behalf of one plugin."""

    registry: Registry[E]
    plugin: str

    def add(self, entry: E) -> None:
        """Register ``entry`` as this plugin's (see :meth:`attributed`); duplicate names are an error."""
        self.registry.add(self.attributed(entry))

    def attributed(self, entry: E) -> E:
        """``entry`` with its ``plugin`` field set to this plugin.

        A dataclass entry is copied with ``dataclasses.replace(entry, plugin=...)``; any other entry must offer
        ``with_plugin(name)`` returning the attributed entry.
        """
        where = f"{self.registry.kind} {entry.name!r} of plugin {self.plugin!r}"
        if is_dataclass(entry) and not isinstance(entry, type):
            try:
                return cast(E, replace(entry, plugin=self.plugin))
            except TypeError as exc:
                raise PcrobustError(f"{where} cannot record its plugin: {first_line(exc)}") from None
        with_plugin = getattr(entry, "with_plugin", None)
        if not callable(with_plugin):
            raise PcrobustError(f"{where} is neither a dataclass nor offers with_plugin(name)")
        return cast(E, with_plugin(self.plugin))

    def names(self) -> list[str]:
        """Names of the entries this plugin has registered here so far."""
        return sorted(e.name for e in self.registry if e.plugin == self.plugin)


ModelRegistry = Registry[ModelEntry]
AttackRegistry = Registry[AttackEntry]
DatasetRegistry = Registry[DatasetEntry]
SectionRegistry = Registry[SectionEntry]
ModelRegistrar = Registrar[ModelEntry]
AttackRegistrar = Registrar[AttackEntry]
DatasetRegistrar = Registrar[DatasetEntry]
SectionRegistrar = Registrar[SectionEntry]
PresetRegistry = Registry[PresetEntry]
PresetRegistrar = Registrar[PresetEntry]


KINDS = ("datasets", "models", "attacks", "sections", "presets")  # the order in which registries are filled


def hook_name(kind: str) -> str:
    """The hook that fills the registry of ``kind`` (one of :data:`KINDS`)."""
    return f"pcrobust_register_{kind}"


@dataclass
class Registries:
    """One registry per kind of entry, filled by the hook of the same name."""

    datasets: DatasetRegistry = field(default_factory=lambda: Registry("dataset"))
    models: ModelRegistry = field(default_factory=lambda: Registry("model"))
    attacks: AttackRegistry = field(default_factory=lambda: Registry("attack"))
    sections: SectionRegistry = field(default_factory=lambda: Registry("section kind"))
    presets: PresetRegistry = field(default_factory=lambda: Registry("preset"))

    def by_kind(self) -> dict[str, Registry[Any]]:
        return {kind: getattr(self, kind) for kind in KINDS}
