"""A grid of model options (``--grid beta=0.2,0.4 --grid lambda=0.1,0.2``) and its points.

Each axis is a model option the model declares (``pcrobust models`` lists them) with numeric values; a point
takes one value per axis and is named by its values (``beta=0.2,lambda=0.1``), so its folder and seeds do not
depend on where it sits in the grid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from pcrobust.errors import PcrobustError
from pcrobust.schema import Schema

MAX_AXES = 2
GridValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def canonical_number(value: float) -> str:
    """The shortest text that reads back as ``value`` (``0.2``, ``1``, ``0.001``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Axis:
    """One model option and the values it takes, in the order given."""

    key: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Point:
    """One value per axis, in axis order."""

    values: tuple[tuple[str, float], ...]

    @property
    def name(self) -> str:
        return ",".join(f"{key}={canonical_number(value)}" for key, value in self.values)

    def options(self) -> dict[str, str]:
        """The model options of this point, as ``-o`` would give them."""
        return {key: canonical_number(value) for key, value in self.values}


@dataclass(frozen=True)
class Grid:
    axes: tuple[Axis, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(axis.key for axis in self.axes)

    def points(self) -> list[Point]:
        """Every combination, the first axis varying slowest."""
        return [Point(tuple(zip(self.keys, combination, strict=True)))
                for combination in itertools.product(*(axis.values for axis in self.axes))]

    def to_dict(self) -> dict[str, list[float]]:
        return {axis.key: list(axis.values) for axis in self.axes}


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PcrobustError(f"--grid {key}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PcrobustError(f"--grid {key}: {text!r} is not a finite number")
    return value


def parse_axis(text: str) -> Axis:
    """``KEY=V1,V2,...`` into an :class:`Axis`; empty or non-numeric values are errors."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise PcrobustError(f"--grid takes KEY=V1,V2,... (e.g. beta=0.2,0.4), got {text!r}")
    items = [item.strip() for item in values.split(",")]
    if not values.strip() or any(not item for item in items):
        raise PcrobustError(f"--grid {key}: empty value in {values!r}; give numbers separated by commas")
    return Axis(key, tuple(_number(key, item) for item in items))


class SweepSpec(Schema):
    """A plan's ``[sweep]`` table: ``grid = { beta = [0.2, 0.4], lambda = [0.1, 0.2] }``."""

    grid: dict[str, list[GridValue]] = Field(min_length=1, description="model option → its values, one or two "
                                             "axes (rows, then columns of the heat maps)")


def check_grid(axes: Sequence[Axis], option_help: Mapping[str, str], model_options: Mapping[str, str],
               model: str, where: str = "--grid ") -> Grid:
    """The grid of ``axes`` for a model whose options are ``option_help``: an axis must be one of them, must not
    also be fixed in ``model_options``, and needs distinct values."""
    if not axes:
        raise PcrobustError("name at least one grid axis: --grid KEY=V1,V2,... (e.g. --grid beta=0.2,0.4) or a "
                            "[sweep] table in the plan")
    if len(axes) > MAX_AXES:
        raise PcrobustError(f"a grid has at most {MAX_AXES} axes, got {len(axes)}")
    keys = [axis.key for axis in axes]
    for axis in axes:
        if axis.key not in option_help:
            available = ", ".join(option_help) or "none"
            raise PcrobustError(f"{where}{axis.key}: model {model!r} has no option {axis.key!r}; "
                                f"its options: {available}")
        if keys.count(axis.key) > 1:
            raise PcrobustError(f"{where}{axis.key}: axis given twice")
        if axis.key in model_options:
            raise PcrobustError(f"{where}{axis.key}: the option is also fixed in the plan's model options; "
                                "drop one of them")
        if not axis.values:
            raise PcrobustError(f"{where}{axis.key}: no values")
        repeated = [value for value in axis.values if axis.values.count(value) > 1]
        if repeated:
            raise PcrobustError(f"{where}{axis.key}: value {canonical_number(repeated[0])} is given twice")
    return Grid(tuple(axes))


def parse_grid(texts: Sequence[str], option_help: Mapping[str, str], model_options: Mapping[str, str],
               model: str) -> Grid:
    """The grid of ``--grid`` texts (see :func:`check_grid`)."""
    return check_grid([parse_axis(text) for text in texts], option_help, model_options, model)


def spec_grid(spec: SweepSpec, option_help: Mapping[str, str], model_options: Mapping[str, str],
              model: str) -> Grid:
    """The grid of a plan's ``[sweep]`` table (see :func:`check_grid`)."""
    axes = [Axis(key, tuple(float(v) for v in values)) for key, values in spec.grid.items()]
    return check_grid(axes, option_help, model_options, model, "sweep.grid.")
