"""Tolerant readers of a results document's fields: documents from disk may hold anything."""

from __future__ import annotations

import math
from typing import Any

DEFAULT_LEVEL = 0.95


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def level_of(results: dict[str, Any]) -> float:
    """``statistics.level`` when it is usable, else 0.95."""
    level = as_dict(results.get("statistics")).get("level", DEFAULT_LEVEL)
    return float(level) if is_number(level) and 0 < level < 1 else DEFAULT_LEVEL
