"""Section kind ``corruption``: accuracy per timestep under the ImageNet-C corruptions, with CE and mCE.

Each corrupted image is generated once per (corruption, severity) and scored at every timestep; its random draws
are seeded by (run seed, dataset index, corruption, severity), so no number depends on batching or chunking.
"""

from __future__ import annotations

import hashlib
import weakref
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import click
import numpy as np
from pydantic import Field
from torch import Tensor

from pcrobust import corrupt, corrupt_torch
from pcrobust.corrupt_cifar import CIFAR_TABLE, NOT_OFFERED
from pcrobust.corrupt_workers import Ahead, Corrupted, corrupt_here, default_workers, submit
from pcrobust.corruption_metrics import ALEXNET_SOURCE, RESAMPLES, alexnet_applies, corruption_summary
from pcrobust.errors import PcrobustError
from pcrobust.kinds.common import chunk_units, correct_per_image, stacked
from pcrobust.rendered import ReadFolder, Rendered, open_rendered
from pcrobust.run.context import RunContext
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit
from pcrobust.seeding import derived_seed

if TYPE_CHECKING:
    from pcrobust.registry import Registries

STRENGTHS = {"imagenet": "the ImageNet-C parameters built into imagecorruptions, at every image size",
             "cifar": "the CIFAR-10-C parameters of Hendrycks' make_cifar_c.py (for 32 px images), per severity"}
PROTOCOL = ("each image corrupted once per (corruption, severity) and scored at every timestep; accuracy = argmax "
            "of the logits at t equals the label")


class CorruptionOptions(SectionOptions):
    corruptions: Literal["all"] | tuple[str, ...] = Field(
        "all", description="ImageNet-C corruptions, or 'all' (the 15 standard ones and the 4 extra ones)")
    severities: tuple[Annotated[int, Field(ge=1, le=5)], ...] = Field(
        (1, 2, 3, 4, 5), min_length=1, description="severities, 1 to 5")
    strength: corrupt.Strength = Field("imagenet", description="parameter table: imagenet (the package's ImageNet-C "
                                       "parameters) or cifar (CIFAR-10-C's, milder, for small images)")
    n: int | None = Field(None, ge=1, description="images corrupted: the first n evaluated (default: all)")
    backend: Literal["library", "torch"] = Field("library", description="library (imagecorruptions, per image on "
                                                 "the CPU) or torch (batched on the run's device; noise matched in "
                                                 "distribution, not draw for draw)")
    path: str | None = Field(None, min_length=1, description="a folder of pre-rendered corrupted images, scored "
                             "instead of corrupting: ImageNet-C folders <corruption>/<severity>/<class>/<image> or "
                             "CIFAR-10-C arrays <corruption>.npy with labels.npy (default: corrupt on the fly)")
    workers: int | None = Field(None, ge=0, description="worker processes that corrupt the next unit's images "
                                "while the model scores (0: corrupt in this process; default: the CPU count − 1, "
                                "at most 4)")


def _options(section: Section) -> CorruptionOptions:
    assert isinstance(section.options, CorruptionOptions)
    return section.options


def names_of(options: CorruptionOptions) -> tuple[str, ...]:
    return corrupt.ALL if options.corruptions == "all" else options.corruptions


def _reader(context: RunContext) -> ReadFolder | None:
    """The folder reader of the run's dataset, if it has one."""
    try:
        return context.registries.datasets.get(context.data.name).read_folder
    except (AttributeError, PcrobustError):  # no registries (a bare context), or a dataset made by hand
        return None


def _rendered(options: CorruptionOptions, context: RunContext) -> Rendered | None:
    return None if options.path is None else open_rendered(Path(options.path), context.data, _reader(context))


def image_seeds(seed: int, name: str, severity: int, indices: Sequence[int]) -> list[int]:
    """Each image's seed, from (run seed, corruption, severity, dataset index): never from its position."""
    key = zlib.crc32(name.encode())  # a stable integer identity of the name
    return [derived_seed(seed, key, severity, int(index)) for index in indices]


def fixed_warning(name: str, severity: int, images: Sequence[int]) -> str:
    return (f"{name} severity {severity}: the library returned NaN for {len(images)} image(s) (an empty liquid "
            "layer, 0 / 0); the image without liquid was scored instead")


class Corruption(SectionKind):
    name = "corruption"
    description = "accuracy per timestep under ImageNet-C corruptions, with CE, mCE and relative mCE"
    options = CorruptionOptions

    def __init__(self) -> None:
        self._ahead: dict[int, Ahead] = {}

    def _ahead_of(self, context: RunContext) -> Ahead:
        """The jobs a run started ahead, forgotten with its context (so a later run never takes them)."""
        if id(context) not in self._ahead:
            self._ahead[id(context)] = Ahead()
            weakref.finalize(context, self._ahead.pop, id(context), None)
        return self._ahead[id(context)]

    def title(self, options: SectionOptions) -> str:
        assert isinstance(options, CorruptionOptions)
        return f"ImageNet-C corruptions ({options.strength} strength)"

    def complete(self, options: SectionOptions, registries: Registries) -> SectionOptions:
        assert isinstance(options, CorruptionOptions)
        if options.corruptions != "all":
            if not options.corruptions:
                raise PcrobustError("corruptions: name at least one corruption, or 'all'")
            corrupt.check_names(options.corruptions)
            options = options.model_copy(update={"corruptions": tuple(dict.fromkeys(options.corruptions))})
        missing = [name for name in names_of(options) if name in NOT_OFFERED]
        if options.strength == "cifar" and missing:
            raise PcrobustError(f"strength 'cifar' does not offer {', '.join(missing)}; it offers "
                                f"{', '.join(CIFAR_TABLE)}")
        if options.backend == "torch":
            if options.strength != "imagenet":
                raise PcrobustError("backend 'torch' takes strength 'imagenet' only")
            corrupt_torch.check_offered(names_of(options))
        return options.model_copy(update={"severities": tuple(sorted(set(options.severities)))})

    def check(self, options: SectionOptions, context: RunContext) -> None:
        channels = context.data.images.shape[1]
        if channels not in (1, 3):
            raise PcrobustError(f"corruptions take images with 1 or 3 channels, not {channels}")
        assert isinstance(options, CorruptionOptions)
        rendered = _rendered(options, context)
        if rendered is not None:
            rendered.check(names_of(options), options.severities)

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        options = _options(section)
        chosen = context.evaluated[: options.n] if options.n else context.evaluated
        chunks = list(chosen.split(context.run.images_per_unit))
        return [unit for name in names_of(options) for severity in options.severities
                for unit in chunk_units(chunks, f"{name}/severity={severity}/",
                                        {"corruption": name, "severity": severity})]

    def _corrupted(self, section: Section, unit: Unit, context: RunContext) -> Corrupted:
        """The unit's images corrupted here or, with workers, in the pool, where the next unit's are started
        before this one is scored."""
        options = _options(section)
        workers = default_workers() if options.workers is None else options.workers

        def images_of(job: Unit) -> tuple[Tensor, str, int, list[int], corrupt.Strength]:
            name, severity = str(job.params["corruption"]), int(job.params["severity"])
            return (context.data.images[list(job.indices)], name, severity,
                    image_seeds(context.seed, name, severity, job.indices), options.strength)

        if workers == 0:
            return corrupt_here(*images_of(unit))
        ahead = self._ahead_of(context)
        started = ahead.take((section.id, unit.key)) or submit(*images_of(unit), workers)
        units = self.units(section, context)
        following = [later for earlier, later in zip(units[:-1], units[1:], strict=True) if earlier.key == unit.key]
        for later in following:
            ahead.put((section.id, later.key), submit(*images_of(later), workers))
        return started.result()

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        indices = list(unit.indices)
        name, severity = str(unit.params["corruption"]), int(unit.params["severity"])
        record: dict[str, Any] = {}
        rendered = _rendered(_options(section), context)
        if rendered is not None:
            corrupted, record["rendered_sha256"] = rendered.images(name, severity, indices)
        elif _options(section).backend == "torch":
            corrupted = corrupt_torch.corrupt_batch(context.data.images[indices].to(context.device), name, severity,
                                                    image_seeds(context.seed, name, severity, indices))
        else:
            done = self._corrupted(section, unit, context)
            corrupted, fixed = done.images, [i for i, f in zip(indices, done.fixed, strict=True) if f]
            if fixed:
                record["fixed"] = fixed
                click.echo(f"pcrobust: warning: {fixed_warning(name, severity, fixed)}", err=True)
        labels = context.data.labels[indices]
        return {"indices": indices, "correct": correct_per_image(context.logits(corrupted, unit.key), labels),
                "clean": correct_per_image(context.clean_logits_of(indices), labels),
                "image_shape": list(context.data.images.shape[1:]), "num_classes": context.data.num_classes,
                "seed": context.seed, "level": context.run.level, **record}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        options = _options(section)
        names = names_of(options)
        series: list[Series] = []
        for name in names:
            for severity in options.severities:
                mine = [o for o in outcomes if o[0].params["corruption"] == name
                        and o[0].params["severity"] == severity]
                indices, correct = stacked(mine, "correct")
                series.append(Series(f"{name} s{severity}", {"corruption": name, "severity": severity}, "accuracy",
                                     True, indices, correct))
        first = [o for o in outcomes if o[0].params["corruption"] == names[0]
                 and o[0].params["severity"] == options.severities[0]]
        _, clean = stacked(first, "clean")
        facts: Mapping[str, Any] = first[0][1] if first else {"image_shape": [], "num_classes": 0, "seed": 0,
                                                              "level": 0.95}
        alexnet = alexnet_applies(facts["image_shape"], int(facts["num_classes"]))
        wrong = ~np.stack([s.events for s in series], axis=1).reshape(len(clean), len(names),
                                                                      len(options.severities), timesteps + 1)
        fixed = {f"{o[0].params['corruption']} s{o[0].params['severity']}": o[1]["fixed"]
                 for o in outcomes if o[1].get("fixed")}
        fields: dict[str, Any] = {
            "protocol": PROTOCOL, "corruptions": list(names), "severities": list(options.severities),
            "strength": options.strength, "strength_table": STRENGTHS[options.strength],
            "library": {"name": corrupt.DISTRIBUTION, "version": corrupt.library_version()},
            "handling": corrupt.HANDLING,
            "backend": options.backend,
            "alexnet_normalisation": ALEXNET_SOURCE if alexnet else
            "not applied: AlexNet's errors are a reference for 224×224 RGB ImageNet images with 1000 classes only",
            "bootstrap": {"over": "images", "resamples": RESAMPLES, "seed": int(facts["seed"]),
                          "level": float(facts["level"]), "method": "percentile"},
        }
        if options.backend == "torch":
            fields["backend_tolerance"] = corrupt_torch.TOLERANCE
        if options.path is not None:
            digests = "".join(str(o[1].get("rendered_sha256", "")) for o in outcomes)
            fields["library"] = {"name": "pre-rendered", "path": options.path,
                                 "pixels_sha256": hashlib.sha256(digests.encode()).hexdigest()}
        if fixed:
            fields["fixed_outputs"] = {key: sorted(set(v)) for key, v in fixed.items()}
            fields["warnings"] = [fixed_warning(key.split(" s")[0], int(key.rsplit(" s", 1)[1]), v)
                                  for key, v in fixed.items()]
        if options.strength == "cifar":
            fields["strength_parameters"] = {name: list(CIFAR_TABLE[name]) for name in names}
        if len(clean):
            fields["metrics"] = corruption_summary(wrong, ~clean, names, options.severities, alexnet,
                                                   float(facts["level"]), int(facts["seed"]))
        return SectionResult(fields, series)

