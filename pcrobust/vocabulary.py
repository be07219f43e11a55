"""The names a plan may use for norms, readouts and target modes (no torch needed to read or check a plan)."""

from __future__ import annotations

from typing import Literal, get_args

Norm = Literal["linf", "l2"]
NORMS: tuple[Norm, ...] = get_args(Norm)
NORM_SYMBOLS: dict[str, str] = {"linf": "L∞", "l2": "L2"}

Readout = Literal["t", "avg", "last", "first"]
READOUTS: tuple[Readout, ...] = get_args(Readout)

TargetMode = Literal["shift", "random", "least-likely"]
TARGET_MODES: tuple[TargetMode, ...] = get_args(TargetMode)
