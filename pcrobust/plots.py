"""PNG plots of a ``pcrobust.results/2`` document, one per section and worst-case entry.

Each plot is drawn on its own :class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no backend
switch, nothing process-wide. Rates sit on a fixed [0, 1] axis, so plots of different runs compare by eye; the
change-from-t=0 plot shows the detail, with the paired confidence interval as a band on a symmetric axis.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pcrobust.document import as_dict, is_number, level_of
from pcrobust.errors import PcrobustError
from pcrobust.gradcam_plots import gradcam_figures
from pcrobust.names import slug
from pcrobust.vocabulary import NORM_SYMBOLS

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
NORMS = {**NORM_SYMBOLS, "l1": "L1", "l0": "L0"}  # documents may name norms of third-party attacks
FIGSIZE = (6.4, 4.4)
DPI = 120
_MAX_TICKS = 16


def norm_label(norm: str | None) -> str:
    """``"linf"`` → ``"L∞"``; unknown norms are shown as given."""
    if not norm:
        return ""
    return NORMS.get(norm.lower(), norm)


def _trim(number: float, digits: int) -> str:
    text = f"{number:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def epsilon_label(epsilon: float, norm: str | None) -> str:
    """``ε`` in pixel units of [0, 1] images, and for L∞ also as k/255: ``"ε=0.1 (25.5/255)"``."""
    text = f"ε={epsilon:.4g}"
    if norm and norm.lower() == "linf":
        text += f" ({_trim(epsilon * 255, 2)}/255)"
    return text


def entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The plotted entries of a document: its ``sections``, then its ``worst_case`` entries."""
    return [*results.get("sections", []), *results.get("worst_case", [])]


def entry_slugs(results: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every entry with a unique file stem derived from its ``id`` (``worst-case-N`` when it has none)."""
    seen: set[str] = set()
    named = []
    for index, entry in enumerate(entries(results)):
        base = slug(str(entry.get("id") or f"{entry.get('kind', 'section')} {index}"))
        stem, extra = base, 2
        while stem in seen:
            stem, extra = f"{base}-{extra}", extra + 1
        seen.add(stem)
        named.append((entry, stem))
    return named


def _is_attack(entry: dict[str, Any]) -> bool:
    return entry.get("kind") in ("attack", "worst-case") or isinstance(entry.get("attack"), dict)


def entry_norm(entry: dict[str, Any]) -> str | None:
    attack = entry.get("attack")
    norm = attack.get("norm") if isinstance(attack, dict) else None
    norm = norm or entry.get("norm")
    return str(norm) if norm else None


def series_label(entry: dict[str, Any], series: dict[str, Any]) -> str:
    """The legend text of a series; for attacks the threat model: ``"L∞ ε=0.1 (25.5/255)"``."""
    label = str(series.get("label", ""))
    if not _is_attack(entry):
        return label
    epsilon = as_dict(series.get("key")).get("epsilon", entry.get("epsilon"))
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool):
        return label
    norm = entry_norm(entry)
    return f"{norm_label(norm)} {epsilon_label(float(epsilon), norm)}".strip()


def _numbers(values: Any, width: int) -> list[float] | None:
    if isinstance(values, list) and len(values) == width and all(is_number(v) for v in values):
        return [float(v) for v in values]
    return None


def _band(interval: Any, width: int) -> tuple[list[float], list[float]] | None:
    if not isinstance(interval, dict):
        return None
    low, high = _numbers(interval.get("low"), width), _numbers(interval.get("high"), width)
    return (low, high) if low is not None and high is not None else None


def _n_text(entry: dict[str, Any]) -> str:
    ns = sorted({int(s["n"]) for s in [*entry.get("series", []), *entry.get("measures", [])] if is_number(s.get("n"))})
    if not ns:
        return "n not recorded"
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"


def _metric_text(entry: dict[str, Any]) -> str:
    names = []
    for item in entry.get("series", []):
        name = str(item.get("metric", "value")).replace("_", " ")
        if name == "success rate" and _is_attack(entry):
            name = "attack success rate"
        if name not in names:
            names.append(name)
    return " / ".join(names) or "value"


def _direction_text(entry: dict[str, Any]) -> str:
    flags = {item.get("higher_is_better") for item in entry.get("series", [])}
    if flags == {True}:
        return "higher is more robust"
    if flags == {False}:
        return "lower is more robust"
    return ""


def _title(entry: dict[str, Any], model: str | None, suffix: str = "") -> str:
    title = str(entry.get("title") or entry.get("id") or "section")
    head = f"{model}: {title}" if model else title
    details = [_n_text(entry)]
    if entry.get("kind") == "attack":
        readouts = [f"{what} {entry[key]}" for what, key in (("attacked", "attacked_readout"),
                                                               ("scored", "scored_readout")) if entry.get(key)]
        details.extend(readouts)
    return f"{head}{suffix}\n({', '.join(details)})"


INTERVAL_NAMES = {"wilson": "Wilson", "clopper-pearson": "Clopper–Pearson", "bootstrap": "percentile bootstrap"}


def interval_name(results: dict[str, Any]) -> str:
    """The interval method of ``statistics.interval`` for display (``"Wilson"``), or ``""``."""
    method = (results.get("statistics") or {}).get("interval")
    if not isinstance(method, str) or not method:
        return ""
    return INTERVAL_NAMES.get(method, method)


def _new_figure() -> Figure:
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _timestep_axis(ax: Any, timesteps: Sequence[int]) -> None:
    ax.set_xlabel("timestep t (0 = feedforward pass)")
    if len(timesteps) <= _MAX_TICKS:
        ax.set_xticks(list(timesteps))
    if len(timesteps) == 1:
        ax.set_xlim(timesteps[0] - 0.5, timesteps[0] + 0.5)
    else:
        ax.set_xlim(timesteps[0] - 0.2, timesteps[-1] + 0.2)
    ax.grid(alpha=0.3, linewidth=0.6)


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#666666")


def values_figure(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None,
                  level: float = 0.95, method_name: str = "") -> Figure:
    """Every series of ``entry`` as a curve of ``values`` on a fixed [0, 1] axis, ``interval`` as a band."""
    fig = _new_figure()
    ax = fig.add_subplot()
    width = len(timesteps)
    drawn, banded = 0, False
    for index, item in enumerate(entry.get("series", [])):
        values = _numbers(item.get("values"), width)
        if values is None or item.get("n") == 0:
            continue
        colour = COLOURS[index % len(COLOURS)]
        band = _band(item.get("interval"), width)
        if band is not None:
            # a lone timestep gets a narrow box, since a band over one x has no area
            xs = list(timesteps) if width > 1 else [timesteps[0] - 0.12, timesteps[0] + 0.12]
            lows, highs = (band[0], band[1]) if width > 1 else (band[0] * 2, band[1] * 2)
            ax.fill_between(xs, lows, highs, color=colour, alpha=0.18, linewidth=0)
            banded = True
        ax.plot(timesteps, values, marker="o", markersize=4, color=colour, label=series_label(entry, item))
        drawn += 1
    ax.set_ylim(0, 1)
    direction = _direction_text(entry)
    ax.set_ylabel(_metric_text(entry) + (f" ({direction})" if direction else ""), fontsize=9)
    ax.set_title(_title(entry, model), fontsize=10)
    _timestep_axis(ax, timesteps)
    if drawn == 0:
        _no_data(ax, "no images scored")
    else:
        handles, labels = ax.get_legend_handles_labels()
        if banded:
            handles.append(Patch(color="#000000", alpha=0.18, linewidth=0))
            labels.append(f"shaded: {level:.0%} {method_name} interval".replace("  ", " "))
        ax.legend(handles, labels, fontsize="small", framealpha=0.9, loc="best")
    return fig


def _has_change_interval(item: dict[str, Any], width: int) -> bool:
    vs_t0 = item.get("vs_t0")
    return isinstance(vs_t0, dict) and _band(vs_t0.get("change_interval"), width) is not None


def change_figure(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None,
                  level: float = 0.95) -> Figure | None:
    """``values[t] - values[0]`` of every series with ``vs_t0.change_interval``, the paired interval as a band.

    Filled markers are timesteps whose Holm-adjusted p (``vs_t0.p_adjusted``) is below ``1 - level``. The y-axis
    is symmetric about 0. ``None`` when no series carries a change interval, or with a single timestep.
    """
    width = len(timesteps)
    if width < 2:
        return None
    usable = [(i, s) for i, s in enumerate(entry.get("series", []))
              if _has_change_interval(s, width) and _numbers(s.get("values"), width) is not None and s.get("n") != 0]
    if not usable:
        return None
    fig = _new_figure()
    ax = fig.add_subplot()
    alpha = 1 - level
    extent = 0.0
    for index, item in usable:
        colour = COLOURS[index % len(COLOURS)]
        values = _numbers(item.get("values"), width) or []
        changes = [v - values[0] for v in values]
        low, high = _band(item["vs_t0"]["change_interval"], width) or ([], [])
        ax.fill_between(timesteps, low, high, color=colour, alpha=0.18, linewidth=0)
        ax.plot(timesteps, changes, marker="o", markersize=5, color=colour, markerfacecolor="white",
                label=series_label(entry, item))
        p_adjusted = _numbers(item["vs_t0"].get("p_adjusted"), width)
        if p_adjusted is not None:
            hits = [t for t, p in zip(range(width), p_adjusted, strict=True) if t > 0 and p < alpha]
            ax.plot([timesteps[t] for t in hits], [changes[t] for t in hits], linestyle="none", marker="o",
                    markersize=5, color=colour)
        extent = max(extent, *(abs(v) for v in (*low, *high, *changes)))
    limit = max(0.02, extent * 1.15)
    ax.set_ylim(-limit, limit)
    ax.axhline(0, color="#444444", linewidth=0.8)
    metric = _metric_text(entry)
    direction = _direction_text(entry)
    ax.set_ylabel(f"change from t=0: value[t] − value[0]\n({metric}" + (f"; {direction})" if direction else ")"),
                  fontsize=9)
    ax.set_title(_title(entry, model, " – change from t=0"), fontsize=10)
    _timestep_axis(ax, timesteps)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Patch(color="#000000", alpha=0.18, linewidth=0),
                Line2D([], [], linestyle="none", marker="o", color="#444444")]
    labels += [f"shaded: paired {level:.0%} interval", f"filled: Holm-adjusted p < {alpha:.2g}"]
    ax.legend(handles, labels, fontsize="small", framealpha=0.9, loc="best")
    return fig


def corruption_figure(entry: dict[str, Any], normalisation: str, timesteps: Sequence[int],
                      model: str | None = None, level: float = 0.95) -> Figure | None:
    """CE per corruption (thin) and mCE (bold, bootstrap interval as a band) of a corruption section, per timestep,
    under one normalisation (``t0`` or ``alexnet``); ``None`` when the section has no such numbers."""
    block = as_dict(as_dict(as_dict(entry.get("metrics")).get("normalised")).get(normalisation))
    if not block:
        return None
    fig = Figure(figsize=(FIGSIZE[0] * 1.45, FIGSIZE[1]), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = len(timesteps)
    for index, (name, item) in enumerate(as_dict(block.get("ce")).items()):
        values = _numbers(item.get("values"), width)
        if values is not None:
            ax.plot(timesteps, values, linewidth=1, alpha=0.8, color=COLOURS[index % len(COLOURS)],
                    linestyle="-" if index < len(COLOURS) else "--", label=name)
    mce = as_dict(block.get("mce"))
    values = _numbers(mce.get("values"), width)
    if values is not None:
        band = _band(mce.get("interval"), width)
        if band is not None:
            ax.fill_between(timesteps, band[0], band[1], color="#000000", alpha=0.15, linewidth=0)
        ax.plot(timesteps, values, color="#000000", linewidth=2.5, marker="o", markersize=4,
                label=f"mCE ({level:.0%} bootstrap interval shaded)")
    if normalisation == "t0":
        ax.axhline(1, color="#444444", linewidth=0.8)
    names = {"t0": "normalised by the same model at t=0", "alexnet": "normalised by AlexNet"}
    ax.set_ylabel(f"corruption error, {names.get(normalisation, normalisation)}", fontsize=9)
    ax.set_title(_title(entry, model, f" – CE {names.get(normalisation, normalisation)}"), fontsize=10)
    _timestep_axis(ax, timesteps)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.9)
    return fig


def _measure_legend(item: dict[str, Any]) -> str:
    sigma = as_dict(item.get("key")).get("sigma")
    return f"σ={sigma:g}" if is_number(sigma) else str(item.get("label", ""))


NO_NOISE_COLOUR = "#555555"


def _measure_colours(items: Sequence[dict[str, Any]]) -> dict[str, str]:
    """A colour per legend entry, the same in every panel; σ = 0 in grey, so each noisy σ has the same colour in
    the reconstruction and the representation figures (which has no σ = 0)."""
    clean = {_measure_legend(item) for item in items if as_dict(item.get("key")).get("sigma") == 0}
    noisy = [label for label in dict.fromkeys(_measure_legend(item) for item in items) if label not in clean]
    return {**{label: COLOURS[k % len(COLOURS)] for k, label in enumerate(noisy)},
            **dict.fromkeys(clean, NO_NOISE_COLOUR)}


def measures_figure(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None,
                    level: float = 0.95, normalised: bool = True) -> Figure:
    """One panel per ``panel`` of a section's measures (a layer, the image), a curve per measure: its mean divided
    by its value at t=0 (``normalised``, with a line at 1) or its mean, the bootstrap interval as a band."""
    panels: dict[str, list[dict[str, Any]]] = {}
    for item in entry.get("measures", []):
        panels.setdefault(str(item.get("panel", "")), []).append(item)
    columns = min(3, max(1, len(panels)))
    rows = -(-len(panels) // columns) or 1
    fig = Figure(figsize=(4.2 * columns, 3.3 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    width = len(timesteps)
    colours = _measure_colours(entry.get("measures", []))
    for ax, (panel, items) in zip(axes, panels.items(), strict=False):
        for item in items:
            block = as_dict(item.get("normalised")) if normalised else item
            values = _numbers(block.get("values"), width)
            if values is None:
                continue
            colour = colours[_measure_legend(item)]
            band = _band(block.get("interval"), width)
            if band is not None and width > 1:
                ax.fill_between(timesteps, band[0], band[1], color=colour, alpha=0.18, linewidth=0)
            ax.plot(timesteps, values, marker="o", markersize=3, color=colour, label=_measure_legend(item))
        if normalised:
            ax.axhline(1, color="#444444", linewidth=0.8)
        ax.set_title(panel, fontsize=9)
        metric = str(items[0].get("metric", "value")).replace("_", " ")
        ax.set_ylabel(f"{metric} / its value at t=0" if normalised else f"{metric} (mean)", fontsize=8)
        _timestep_axis(ax, timesteps)
        ax.xaxis.label.set_fontsize(8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", framealpha=0.9, loc="best")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    what = "normalised by t=0" if normalised else "mean over images"
    fig.suptitle(_title(entry, model, f" – {what}, {level:.0%} bootstrap interval shaded"), fontsize=10)
    return fig


def section_figures(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None,
                    level: float = 0.95, method_name: str = "") -> list[tuple[str, Figure]]:
    """The figures of one entry: ``("values", fig)`` and, when there are change intervals, ``("change", fig)``;
    for a corruption section, whose series are too many for one plot, its CE per normalisation instead; for a section
    of measures alone, their panels normalised by t=0 (``values``) and their means (``absolute``)."""
    if entry.get("measures") and not entry.get("series"):
        return [("values", measures_figure(entry, timesteps, model, level)),
                ("absolute", measures_figure(entry, timesteps, model, level, normalised=False))]
    if entry.get("kind") == "corruption":
        found = [(f"ce-{name}", corruption_figure(entry, name, timesteps, model, level)) for name in ("t0", "alexnet")]
        return [(kind, fig) for kind, fig in found if fig is not None]
    figures = [("values", values_figure(entry, timesteps, model, level, method_name))]
    if entry.get("kind") == "gradcam":
        figures = [*gradcam_figures(entry, timesteps, model, level), *figures]
    change = change_figure(entry, timesteps, model, level)
    if change is not None:
        figures.append(("change", change))
    return figures


def plot_figures(results: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Every figure of a schema-2 document with its file name: ``clean.png``, ``attack-bim_change.png``, ..."""
    timesteps = [int(t) for t in results["timesteps"]]
    model = (results.get("model") or {}).get("name")
    level, method = level_of(results), interval_name(results)
    named = []
    for entry, stem in entry_slugs(results):
        for kind, fig in section_figures(entry, timesteps, model, level, method):
            named.append((f"{stem}.png" if kind == "values" else f"{stem}_{kind}.png", fig))
    return named


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no software tag in the metadata, so the bytes depend on the picture alone)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write every figure of :func:`plot_figures` into ``out_dir``; returns the files written."""
    if "sections" not in results:
        raise PcrobustError(f"plots are drawn from pcrobust.results/2 documents, not {results.get('schema')!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in plot_figures(results):
        path = out_dir / name
        path.write_bytes(figure_png(fig))
        written.append(path)
    return written

