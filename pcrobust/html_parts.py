"""Small HTML pieces shared by the report page and the sections that add their own blocks to it."""

from __future__ import annotations

from html import escape
from typing import Any

from pcrobust.document import is_number


def escaped(value: Any) -> str:
    """``value`` as text, escaped for HTML (quotes included)."""
    return escape(str(value), quote=True)


def rate_text(value: Any) -> str:
    """A number with 3 decimals, or ``–`` for anything else."""
    return f"{value:.3f}" if is_number(value) else "–"


def value_at(values: Any, t: int) -> Any:
    """``values[t]`` when ``values`` is a list that long, else ``None``."""
    return values[t] if isinstance(values, list) and t < len(values) else None


def interval_bounds(interval: Any) -> tuple[Any, Any]:
    """An interval's ``(low, high)``, or ``(None, None)`` when it is not a mapping."""
    if isinstance(interval, dict):
        return interval.get("low"), interval.get("high")
    return None, None


def facts(rows: list[tuple[str, str]]) -> str:
    """A definition list; ``rows`` hold (label, already-escaped HTML)."""
    body = "".join(f"<dt>{escaped(label)}</dt><dd>{value}</dd>" for label, value in rows if value)
    return f'<dl class="facts">{body}</dl>' if body else ""


def measure_table(title: str, rows: list[tuple[str, list[Any], Any]], timesteps: list[Any]) -> str:
    """Rows of per-timestep values, each cell with its bootstrap interval where there is one."""
    head = "".join(f"<th>t={escaped(t)}</th>" for t in timesteps)
    body = []
    for label, values, interval in rows:
        low, high = interval_bounds(interval)
        cells = []
        for t in range(len(timesteps)):
            band = (f'<br><span class="note">[{rate_text(value_at(low, t))}, {rate_text(value_at(high, t))}]</span>'
                    if is_number(value_at(low, t)) and is_number(value_at(high, t)) else "")
            cells.append(f"<td>{rate_text(value_at(values, t))}{band}</td>")
        body.append(f"<tr><th>{escaped(label)}</th>{''.join(cells)}</tr>")
    return (f'<table class="measures"><caption>{escaped(title)}</caption><tr><th></th>{head}</tr>'
            f'{"".join(body)}</table>')
