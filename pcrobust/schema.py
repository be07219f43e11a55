"""Typed, strict option schemas (pydantic) and one-line messages for their validation errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pcrobust.errors import PcrobustError


class Schema(BaseModel):
    """A frozen options table: unknown keys are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _where(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def explain(exc: ValidationError) -> str:
    """The first validation error as one line naming the key, e.g. ``epsilons[0]: input should be > 0, got -0.1``."""
    first = exc.errors()[0]
    where = _where(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        text = f"unknown key {where!r}"
    elif first["type"] == "missing":
        text = f"missing key {where!r}"
    else:
        message = first["msg"]
        message = message[0].lower() + message[1:]
        text = f"{where}: {message}, got {first['input']!r}" if where else message
    return text


def validated(schema: type[Schema], data: Any, where: str) -> Any:
    """``schema`` validated from ``data``; a problem is a one-line :class:`PcrobustError` prefixed by ``where``."""
    if not isinstance(data, dict):
        raise PcrobustError(f"{where}: expected a table, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise PcrobustError(f"{where}: {explain(exc)}" if where else explain(exc)) from None
