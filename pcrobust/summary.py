"""The terminal summary of a results document: one table per section, its verdicts, and where the report is.

:func:`render_summary` is pure: it reads the document and returns plain text (no colour, no terminal codes), so
the same text goes to a terminal, a log file or a test. Tables are laid out by ``rich``, which sizes the columns
to the width and wraps long titles and verdicts with a hanging indent instead of letting them run off the line.

Per section: a heading (title, id, metric and its direction, n), then rows = series and columns = timesteps,
each cell the value with 3 decimals. A ``*`` follows a value whose Holm-adjusted p against t = 0 is below
``1 - level`` (``statistics.level``, 0.95 when absent). Under each series a second row gives its confidence
interval at t = 0 and at the last timestep. Then each series' one-line verdict, for an attack the model
queries it spent per image, for a section with checks (diagnostics) one line per check: pass or FAIL, its
name and its reason, and for a section with the model's measures (clean) their means per timestep. A section with
analysis measures (continuous values such as distances) gets a table of their means divided by the value at t = 0.
Documents without the
statistics fields (older files) get the values alone; a section without series shows its ``note``.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pcrobust.document import as_dict, as_list, is_number, level_of

DEFAULT_WIDTH = 120
MARK = "*"
INTERVAL_NAMES = {"wilson": "Wilson", "clopper-pearson": "Clopper-Pearson", "bootstrap": "percentile bootstrap"}


def _at(values: Any, position: int) -> Any:
    return values[position] if isinstance(values, list) and 0 <= position < len(values) else None


def _percent(level: float) -> str:
    return f"{level * 100:.4g}%"


def _rate(value: Any) -> str:
    return f"{value:.3f}" if is_number(value) else "–"


def _significant(series: dict[str, Any], position: int, alpha: float) -> bool:
    """Whether timestep ``position`` (> 0) differs from t = 0: Holm-adjusted p below ``alpha``."""
    p = _at(as_dict(series.get("vs_t0")).get("p_adjusted"), position)
    return position > 0 and is_number(p) and p < alpha


def _interval(series: dict[str, Any], position: int) -> str:
    interval = as_dict(series.get("interval"))
    low, high = _at(interval.get("low"), position), _at(interval.get("high"), position)
    return f"{low:.3f}–{high:.3f}" if is_number(low) and is_number(high) else ""


def _n_text(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _heading(entry: dict[str, Any], series: list[dict[str, Any]], shared_n: Any) -> Text:
    title = str(entry.get("title") or entry.get("id") or entry.get("kind") or "section")
    parts = [title if entry.get("id") in (None, title) else f"{title} [{entry['id']}]"]
    metrics = {str(s.get("metric")) for s in series if s.get("metric")}
    if len(metrics) == 1:
        metric = metrics.pop().replace("_", " ")
        better = {s.get("higher_is_better") for s in series}
        if better == {True}:
            metric += ", higher is more robust"
        elif better == {False}:
            metric += ", lower is more robust"
        parts.append(metric)
    if shared_n is not None:
        parts.append(f"n={_n_text(shared_n)}")
    return Text(" · ".join(parts), style="bold")


def _section_table(series: list[dict[str, Any]], timesteps: list[Any], positions: list[int], level: float,
                   per_series_n: bool) -> Table:
    """The rows of ``series`` over the timesteps at ``positions`` (all of them, or one block of a wide table)."""
    alpha = 1 - level
    last = len(timesteps) - 1
    interval_label = f"  {_percent(level)} CI"
    labels = [str(item.get("label", "")) for item in series]
    has_intervals = any(as_dict(item.get("interval")) for item in series)
    widest = max([len(label) for label in labels] + [len(interval_label) if has_intervals else 0, len("series")])
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), expand=False)
    table.add_column("series", justify="left", no_wrap=True, min_width=widest)
    if per_series_n:
        table.add_column("n", justify="right", no_wrap=True)
    for position in positions:
        table.add_column(f"t={timesteps[position]}", justify="right", no_wrap=True)
    for label, item in zip(labels, series, strict=True):
        values = as_list(item.get("values"))
        cells = [f"{_rate(_at(values, p))}{MARK if _significant(item, p, alpha) else ' '}" for p in positions]
        table.add_row(label, *([_n_text(item.get("n"))] if per_series_n else []), *cells)
        if as_dict(item.get("interval")):
            bands = [f"{_interval(item, p)} " if p in (0, last) and _interval(item, p) else "" for p in positions]
            table.add_row(Text(interval_label, style="dim"), *([""] if per_series_n else []), *bands)
    return table


def _section_tables(console: Console, series: list[dict[str, Any]], timesteps: list[Any], level: float,
                    per_series_n: bool) -> list[Table]:
    """One table over all timesteps when it fits the console, else blocks of consecutive timesteps that do."""
    everything = list(range(len(timesteps)))
    unlimited = console.options.update_width(10_000)
    for count in range(1, len(everything) + 1):
        size = -(-len(everything) // count)  # as even blocks as the count allows: 9 timesteps in 2 are 5 + 4
        blocks = [everything[start:start + size] for start in range(0, len(everything), size)]
        tables = [_section_table(series, timesteps, block, level, per_series_n) for block in blocks]
        if size == 1 or all(console.measure(t, options=unlimited).maximum <= console.width for t in tables):
            return tables
    return [_section_table(series, timesteps, everything, level, per_series_n)]


def _verdicts(series: list[dict[str, Any]]) -> Table | None:
    lines = [(str(item.get("label", "")), str(item["verdict"])) for item in series if item.get("verdict")]
    if not lines:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in lines:
        grid.add_row(f"  {label}:", text)
    return grid


def _queries(entry: dict[str, Any]) -> Text | None:
    """One line of an attack section's model queries per image, per ε, at the last timestep."""
    parts = []
    for row in as_list(entry.get("queries")):
        row = as_dict(row)
        mean, most = (_at(values, len(values) - 1) for values in (as_list(row.get("mean")), as_list(row.get("max"))))
        if is_number(row.get("epsilon")) and is_number(mean) and is_number(most):
            parts.append(f"ε={row['epsilon']:g} {mean:.4g} (max {most:.4g})")
    return Text("  model queries per image at the last timestep: " + ", ".join(parts)) if parts else None


def _checks(entry: dict[str, Any]) -> Table | None:
    """One line per check of a section that holds ``checks`` (diagnostics): pass or FAIL, name and reason."""
    checks = [item for item in as_list(entry.get("checks")) if isinstance(item, dict)]
    if not checks:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for item in checks:
        grid.add_row(f"  {'pass' if item.get('passed') is True else 'FAIL'}", f"{item.get('name', '')}:",
                     str(item.get("reason", "")))
    return grid


def _model_measures_table(measures: dict[str, Any], timesteps: list[Any]) -> Table | None:
    """The model's measures (clean section): the mean over the images at each timestep."""
    rows = [(str(name), as_list(as_dict(item).get("mean"))) for name, item in measures.items()]
    if not rows:
        return None
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), expand=False)
    table.add_column("measure (mean)", justify="left", no_wrap=True)
    for step in timesteps:
        table.add_column(f"t={step}", justify="right", no_wrap=True)
    for name, values in rows:
        table.add_row(name, *(f"{_at(values, p):.4g}" if is_number(_at(values, p)) else "–"
                              for p in range(len(timesteps))))
    return table


def _corruption_table(metrics: dict[str, Any], timesteps: list[Any], level: float) -> Table:
    """A corruption section's errors, mCE and relative mCE per timestep, with bootstrap intervals at the ends."""
    from pcrobust.corruption_metrics import headline

    last = len(timesteps) - 1
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), expand=False)
    table.add_column("corruption error", justify="left", no_wrap=True)
    for step in timesteps:
        table.add_column(f"t={step}", justify="right", no_wrap=True)
    for label, values, interval in headline(metrics):
        table.add_row(label, *(_rate(_at(values, p)) for p in range(len(timesteps))))
        low, high = as_list(interval.get("low")), as_list(interval.get("high"))
        if low and high:
            bands = [f"{_at(low, p):.3f}–{_at(high, p):.3f}" if p in (0, last) and is_number(_at(low, p))
                     and is_number(_at(high, p)) else "" for p in range(len(timesteps))]
            table.add_row(Text(f"  {_percent(level)} bootstrap CI", style="dim"), *bands)
    return table


def _measures_table(measures: list[dict[str, Any]], timesteps: list[Any], level: float) -> Table:
    """A section's measures: the mean at t=0, then per timestep the mean divided by it (``*``: sign test against
    t=0, Holm-adjusted p below ``1 - level``), with the bootstrap interval at the last timestep."""
    last = len(timesteps) - 1
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), expand=False)
    table.add_column("measure", justify="left", no_wrap=True)
    table.add_column("mean at t=0", justify="right", no_wrap=True)
    for step in timesteps:
        table.add_column(f"t={step}", justify="right", no_wrap=True)
    for item in measures:
        normalised = as_dict(item.get("normalised"))
        values = as_list(normalised.get("values"))
        adjusted = as_list(as_dict(item.get("vs_t0")).get("p_adjusted"))
        marks = [MARK if p > 0 and is_number(_at(adjusted, p)) and _at(adjusted, p) < 1 - level else " "
                 for p in range(len(timesteps))]
        first = _at(as_list(item.get("values")), 0)
        table.add_row(str(item.get("label", "")), f"{first:.4g}" if is_number(first) else "–",
                      *(f"{_rate(_at(values, p))}{marks[p]}" for p in range(len(timesteps))))
        interval = as_dict(normalised.get("interval"))
        low, high = _at(as_list(interval.get("low")), last), _at(as_list(interval.get("high")), last)
        if last > 0 and is_number(low) and is_number(high):
            table.add_row(Text(f"  {_percent(level)} bootstrap CI", style="dim"), "",
                          *([""] * last), f"{low:.3f}–{high:.3f}")
    return table


def _measures_note(level: float) -> Text:
    return Text(f"  value at t / value at t=0 (mean over images); {MARK} sign test against t=0, Holm-adjusted "
                f"p < {1 - level:.2g}", style="dim")


def _shared_n(entry: dict[str, Any], series: list[dict[str, Any]]) -> tuple[Any, bool]:
    """The n to print in the heading (or None), and whether each series needs its own n column."""
    ns = {item.get("n") for item in series}
    if len(ns) > 1:
        return entry.get("n"), True
    (only,) = ns if ns else (None,)
    return (only if only is not None else entry.get("n")), False


def _footnote(results: dict[str, Any], level: float, tested: bool, with_intervals: bool,
              measured: bool = False) -> list[str]:
    stats = as_dict(results.get("statistics"))
    lines = []
    if tested:
        test = stats.get("paired_test") or "paired test against t=0"
        correction = "Holm-adjusted" if stats.get("correction", "holm") == "holm" else f"{stats['correction']}-adjusted"
        lines.append(f"{MARK} differs from t=0: {correction} p < {1 - level:.2g} over timesteps 1..T ({test}, "
                     "paired on the same images)")
    if with_intervals:
        method = stats.get("interval")
        name = INTERVAL_NAMES.get(method, str(method)) + " " if isinstance(method, str) and method else ""
        lines.append(f"{_percent(level)} CI: {name}confidence interval of the value at the first and last timestep")
    if not tested and not with_intervals and not measured:
        lines.append("this document holds no intervals or tests against t=0 (written before statistics)")
    return lines


def render_summary(results: dict[str, Any], report_path: Path | None, width: int | None = None) -> str:
    """The summary of a schema-2 ``results`` document as plain text, ``width`` columns wide at most.

    ``width`` defaults to the terminal's (120 when the output is not a terminal). ``report_path`` is the HTML
    report to point at; ``None`` leaves the line out. Missing statistics fields (documents from before
    statistics) only leave out what they would have shown.
    """
    if width is None:
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 20), force_terminal=False, color_system=None,
                      highlight=False, emoji=False, markup=False)
    timesteps = as_list(results.get("timesteps"))
    level = level_of(results)
    tested = with_intervals = measured = False
    entries = [*as_list(results.get("sections")), *as_list(results.get("worst_case"))]
    for index, entry in enumerate(entries):
        entry = as_dict(entry)
        series = [s for s in as_list(entry.get("series")) if isinstance(s, dict)]
        shared_n, per_series_n = _shared_n(entry, series)
        if index:
            console.print()
        console.print(_heading(entry, series, shared_n))
        measures = [m for m in as_list(entry.get("measures")) if isinstance(m, dict)]
        if measures:
            measured = True
            console.print(_measures_table(measures, timesteps, level))
            console.print(_measures_note(level))
        if not series and measures:
            continue
        if not series:
            console.print(Text(f"  {entry.get('note') or 'no series'}"))
            continue
        tested = tested or any(as_dict(s.get("vs_t0")).get("p_adjusted") for s in series)
        with_intervals = with_intervals or any(as_dict(s.get("interval")) for s in series)
        for block, table in enumerate(_section_tables(console, series, timesteps, level, per_series_n)):
            if block:
                console.print()
            console.print(table)
        for lines in (_verdicts(series), _queries(entry), _checks(entry)):
            if lines is not None:
                console.print(lines)
        if isinstance(entry.get("metrics"), dict):
            console.print(_corruption_table(entry["metrics"], timesteps, level))
        model_measures = entry.get("model_measures")
        model_table = _model_measures_table(model_measures, timesteps) if isinstance(model_measures, dict) else None
        if model_table is not None:
            console.print(model_table)
    console.print()
    for line in _footnote(results, level, tested, with_intervals, measured):
        console.print(Text(line))
    if report_path is not None:
        console.print(Text(f"report: {report_path}"))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
