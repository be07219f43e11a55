"""One self-contained HTML page that a researcher reads instead of ``results.json``.

The page is built from a ``pcrobust.results/2`` document alone: plots are embedded as base64 PNG data URIs,
the style sheet is inline, and there are no scripts and no references to anything outside the file. Every piece
of text from the document is escaped.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import tomli_w

from pcrobust import plots
from pcrobust.document import as_dict, as_list, is_number, level_of
from pcrobust.gradcam_report import gradcam_html
from pcrobust.html_parts import escaped, facts, interval_bounds, measure_table, rate_text, value_at

SCHEMA2 = "pcrobust.results/2"
FEW_IMAGES = 100
WIDE_INTERVAL = 0.2

CSS = """
:root { --ink: #1b1f24; --muted: #5b6470; --rule: #d8dde3; --band: #f5f7f9; --sig: #fff1b8; --warn: #fff4e5;
        --warn-rule: #e8a33d; --accent: #1f5f9e; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 6px; padding-top: 10px; border-top: 2px solid var(--rule); }
h3 { font-size: 15px; margin: 18px 0 4px; }
p { margin: 4px 0 8px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
            font-size: 13px; }
pre { background: var(--band); border: 1px solid var(--rule); border-radius: 4px; padding: 10px 12px;
      overflow-x: auto; white-space: pre; }
.sub, .meta { color: var(--muted); }
.meta { font-size: 13px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 12px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
nav ol { columns: 2; margin: 8px 0; padding-left: 20px; }
nav a, a { color: var(--accent); text-decoration: none; }
.warnings { background: var(--warn); border-left: 4px solid var(--warn-rule); padding: 8px 14px 8px 30px;
            margin: 12px 0; }
.warnings li { margin: 2px 0; }
.verdicts { list-style: none; padding: 0; margin: 10px 0; }
.verdicts li { background: var(--band); border-left: 4px solid var(--accent); padding: 6px 12px; margin: 4px 0; }
.verdicts li.rises { border-left-color: #2e8b57; }
.verdicts li.falls { border-left-color: #c0392b; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.plots figure { margin: 0; flex: 1 1 460px; max-width: 560px; }
.plots img { width: 100%; height: auto; border: 1px solid var(--rule); border-radius: 4px; }
.tables { display: flex; flex-wrap: wrap; gap: 4px 28px; }
.tables > div { flex: 0 1 auto; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; font-size: 13.5px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
th { background: var(--band); font-weight: 600; }
td:first-child, th:first-child { text-align: center; }
td.sig { background: var(--sig); font-weight: 600; }
tr.pass td.result { color: #2e7d32; font-weight: 600; }
tr.fail td.result { color: #c0392b; font-weight: 600; }
table.checks td { white-space: normal; text-align: left; }
.note { font-size: 12.5px; color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
"""


def _minus(text: str) -> str:
    return text.replace("-", "\u2212")


def _signed(value: Any) -> str:
    return _minus(f"{value:+.3f}") if is_number(value) else "–"


def _p(value: Any) -> str:
    if not is_number(value):
        return "–"
    return "< 0.0001" if value < 1e-4 else f"{value:.2g}"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def plan_text(plan: Any) -> tuple[str, str]:
    """The plan as ``("toml", text)``, or ``("json", text)`` when TOML cannot express it (e.g. a null)."""
    if isinstance(plan, dict):
        try:
            return "toml", tomli_w.dumps(plan)
        except (TypeError, ValueError):
            pass
    return "json", _json(plan)


# --- warnings --------------------------------------------------------------------------------------------------

def _entry_name(entry: dict[str, Any]) -> str:
    return str(entry.get("title") or entry.get("id") or entry.get("kind") or "section")


def warnings(results: dict[str, Any]) -> list[str]:
    """What a reader should know before trusting the numbers, computed from the document alone.

    Flags a schema other than ``pcrobust.results/2``; a model whose float32 logits change with the batching
    (``provenance.contract_check.warning``); sections with no series or no images; series with fewer
    than :data:`FEW_IMAGES` images; intervals wider than :data:`WIDE_INTERVAL` at some timestep; series without
    intervals or paired tests; series whose ``values`` do not have one number per timestep.
    """
    found: list[str] = []
    if results.get("schema") != SCHEMA2:
        found.append(f"the document declares schema {results.get('schema')!r}, not {SCHEMA2}; "
                     "this page may be incomplete")
    if warning := (as_dict(as_dict(results.get("provenance")).get("contract_check")).get("warning")):
        found.append(f"model: {warning}")
    timesteps = as_list(results.get("timesteps"))
    level = level_of(results)
    unqualified: list[str] = []
    for entry in plots.entries(results):
        name = _entry_name(entry)
        found.extend(f"{name}: {warning}" for warning in as_list(entry.get("warnings")))
        series = as_list(entry.get("series"))
        if not series:
            found.append(f"{name}: no series in this section")
            continue
        if all(s.get("n") == 0 for s in series):
            found.append(f"{name}: no images were scored, so nothing can be concluded")
            continue
        ns = sorted({s["n"] for s in series if is_number(s.get("n")) and s["n"] > 0})
        if ns and ns[0] < FEW_IMAGES:
            found.append(f"{name}: only n = {ns[0]} images (fewer than {FEW_IMAGES}); "
                         "differences between timesteps must be large to be detected")
        wide: list[tuple[float, int, str]] = []
        for item in series:
            label = plots.series_label(entry, item) or str(item.get("label", ""))
            values = item.get("values")
            if not (isinstance(values, list) and len(values) == len(timesteps)
                    and all(is_number(v) for v in values)):
                found.append(f"{name}, {label}: values do not hold one number per timestep")
                continue
            if item.get("n") == 0:
                found.append(f"{name}, {label}: no images were scored")
                continue
            low, high = interval_bounds(item.get("interval"))
            if isinstance(low, list) and isinstance(high, list) and low and len(low) == len(high):
                widths = [(h - lo, t) for t, (lo, h) in enumerate(zip(low, high, strict=True))
                          if is_number(lo) and is_number(h)]
                if widths and (widest := max(widths))[0] > WIDE_INTERVAL:
                    wide.append((*widest, label))
            else:
                unqualified.append(f"{name}, {label}")
            if "vs_t0" not in item and len(timesteps) > 1:
                unqualified.append(f"{name}, {label} (no paired test against t=0)")
        if wide:
            found.append(_wide_warning(name, wide, len(series), level))
    if unqualified:
        shown = "; ".join(dict.fromkeys(unqualified))
        found.append(f"no confidence intervals or paired tests for: {shown}; "
                     "differences between timesteps are unqualified")
    return found


def _wide_warning(name: str, wide: list[tuple[float, int, str]], series: int, level: float) -> str:
    """One line for a section's series whose interval is wider than :data:`WIDE_INTERVAL` somewhere."""
    width, t, label = max(wide)
    if len(wide) == 1:
        return (f"{name}, {label}: the {level:.0%} interval is {width:.2f} wide at t={t} "
                f"(more than {WIDE_INTERVAL:g}); too wide to conclude much")
    return (f"{name}: {len(wide)} of {series} series have a {level:.0%} interval wider than {WIDE_INTERVAL:g} "
            f"(widest {width:.2f}: {label} at t={t}); too wide to conclude much")


# --- the page --------------------------------------------------------------------------------------------------

def _anchor(stem: str) -> str:
    return f"s-{stem}"


def _inline(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"<code>{escaped(json.dumps(value, ensure_ascii=False))}</code>"
    return escaped(value)


def _header(results: dict[str, Any]) -> str:
    model = results.get("model") or {}
    dataset = results.get("dataset") or {}
    plan = results.get("plan") or {}
    stats = results.get("statistics") or {}
    timesteps = results.get("timesteps") or []
    model_name = model.get("name", "model")
    dataset_name = dataset.get("name", "dataset")
    model_bits = [f"{escaped(model.get('plugin', '?'))} / <b>{escaped(model_name)}</b>"]
    if model.get("gradient_mode"):
        model_bits.append(f"gradient mode {escaped(model['gradient_mode'])}")
    data_bits = [f"<b>{escaped(dataset_name)}</b>"]
    if dataset.get("split"):
        data_bits.append(f"split {escaped(dataset['split'])}")
    if is_number(dataset.get("n_evaluated")):
        of = f" of {escaped(dataset['size'])}" if is_number(dataset.get("size")) else ""
        data_bits.append(f"{escaped(dataset['n_evaluated'])}{of} images evaluated")
    sections = plots.entries(results)
    plan_sections = as_list(plan.get("sections"))
    plan_bits = [f"{len(plan_sections) or len(results.get('sections', []))} sections"]
    if results.get("plan_digest"):
        plan_bits.append(f"digest <code>{escaped(str(results['plan_digest'])[:16])}…</code>")
    if timesteps:
        span = f"t = {timesteps[0]}" if len(timesteps) == 1 else f"t = {timesteps[0]}…{timesteps[-1]}"
        plan_bits.append(f"timesteps {escaped(span)} ({len(timesteps)})")
    if stats:
        level = stats.get("level")
        level_text = f"{level:.0%}" if is_number(level) else "?"
        method = plots.INTERVAL_NAMES.get(str(stats.get("interval")), str(stats.get("interval", "?")))
        correction = str(stats.get("correction", "no"))
        correction = {"holm": "Holm"}.get(correction, correction)
        stats_text = (f"{escaped(level_text)} {escaped(method)} intervals; "
                      f"{escaped(stats.get('paired_test', 'paired test'))}, "
                      f"{escaped(correction)} correction over timesteps 1…T")
    else:
        stats_text = '<span class="empty">no statistics in this document</span>'
    toc = "".join(f'<li><a href="#{escaped(_anchor(stem))}">{escaped(_entry_name(entry))}</a></li>'
                  for entry, stem in plots.entry_slugs(results))
    return (f"<header><h1>{escaped(model_name)} on {escaped(dataset_name)}</h1>"
            f'<p class="sub">{escaped(results.get("schema", "unknown schema"))}'
            + (f" · created {escaped(results['created'])}" if results.get("created") else "") + "</p>"
            + facts([("model", ", ".join(model_bits)), ("dataset", ", ".join(data_bits)),
                     ("plan", ", ".join(plan_bits)), ("statistics", stats_text)])
            + "</header>"
            + (f'<nav><b>Sections</b><ol>{toc}</ol><a href="#provenance">provenance</a> · '
               f'<a href="#plan">plan</a></nav>' if sections else ""))


def _warnings_html(results: dict[str, Any]) -> str:
    items = warnings(results)
    if not items:
        return '<h2 id="warnings">Warnings</h2><p class="empty">none</p>'
    body = "".join(f"<li>{escaped(item)}</li>" for item in items)
    return f'<h2 id="warnings">Warnings</h2><ul class="warnings">{body}</ul>'


def _threat_model(entry: dict[str, Any]) -> str:
    attack = as_dict(entry.get("attack"))
    rows: list[tuple[str, str]] = []
    if attack.get("name"):
        kind = "targeted" if attack.get("targeted") else "untargeted" if "targeted" in attack else ""
        name = " ".join(x for x in (kind, str(attack.get("name", "")),
                                    f"({plots.norm_label(attack.get('norm'))})" if attack.get("norm") else "") if x)
        plugin = f" from plugin {escaped(attack['plugin'])}" if attack.get("plugin") else ""
        rows.append(("attack", escaped(name) + plugin))
        if attack.get("options"):
            rows.append(("options", _inline(attack["options"])))
    elif plots.entry_norm(entry):
        rows.append(("norm", escaped(plots.norm_label(plots.entry_norm(entry)))))
    epsilons = [plots.epsilon_label(float(s["key"]["epsilon"]), plots.entry_norm(entry))
                for s in entry.get("series", []) if isinstance(s.get("key"), dict)
                and is_number(s["key"].get("epsilon"))]
    if epsilons:
        rows.append(("ε (pixel units of [0, 1] images)", escaped(", ".join(epsilons))))
    readouts = [f"{what} {entry[key]}" for what, key in (("attacked", "attacked_readout"),
                                                         ("scored", "scored_readout")) if entry.get(key)]
    if readouts:
        rows.append(("readouts", escaped(", ".join(readouts))))
    if entry.get("gradient_mode"):
        rows.append(("gradient mode", escaped(entry["gradient_mode"])))
    if entry.get("target_mode"):
        target = str(entry["target_mode"])
        if entry.get("target_shift") is not None:
            target += f" (shift {entry['target_shift']})"
        rows.append(("targets", escaped(target)))
    if entry.get("sections"):
        rows.append(("over sections", escaped(", ".join(str(s) for s in entry["sections"]))))
    if entry.get("parameters"):
        rows.append(("parameters", _inline(entry["parameters"])))
    indices = entry.get("image_indices")
    if isinstance(indices, list):
        rows.append(("images", f"{len(indices)} dataset indices recorded"))
    return facts(rows)


def _verdict_class(text: str) -> str:
    if text.startswith("robustness rises"):
        return "rises"
    if text.startswith("robustness falls"):
        return "falls"
    return ""


def _series_table(entry: dict[str, Any], item: dict[str, Any], timesteps: list[Any], level: float) -> str:
    alpha = 1 - level
    vs_t0 = as_dict(item.get("vs_t0"))
    low, high = interval_bounds(item.get("interval"))
    change_low, change_high = interval_bounds(vs_t0.get("change_interval"))
    values = as_list(item.get("values"))
    counts = item.get("counts")
    n = item.get("n")
    has_interval = isinstance(low, list)
    has_test = bool(vs_t0)
    gained: list[Any] | None = vs_t0["gained"] if isinstance(vs_t0.get("gained"), list) else None
    lost: list[Any] | None = vs_t0["lost"] if isinstance(vs_t0.get("lost"), list) else None
    metric = str(item.get("metric", "value")).replace("_", " ")
    head = ["t", metric, "count / n"]
    if has_interval:
        head.append(f"{level:.0%} interval")
    head.append("change from t=0")
    if isinstance(change_low, list):
        head.append(f"paired {level:.0%} interval")
    if gained is not None and lost is not None:
        head.append("gained / lost")
    if has_test:
        head.append("adjusted p")
    rows = []
    for t, step in enumerate(timesteps):
        value = value_at(values, t)
        first = value_at(values, 0)
        p_adj = value_at(vs_t0.get("p_adjusted"), t)
        significant = t > 0 and is_number(p_adj) and p_adj < alpha
        mark = ' class="sig"' if significant else ""
        count = value_at(counts, t)
        cells = [f"<td>{escaped(step)}</td>", f"<td>{rate_text(value)}</td>",
                 f"<td>{escaped(count) if count is not None else '–'} / {escaped(n) if n is not None else '–'}</td>"]
        if has_interval:
            cells.append(f"<td>[{rate_text(value_at(low, t))}, {rate_text(value_at(high, t))}]</td>")
        change = value - first if is_number(value) and is_number(first) else None
        cells.append(f"<td{mark}>{_signed(change)}</td>")
        if isinstance(change_low, list):
            cells.append(f"<td>[{_signed(value_at(change_low, t))}, {_signed(value_at(change_high, t))}]</td>")
        if gained is not None and lost is not None:
            cells.append(f"<td>{escaped(value_at(gained, t))} / {escaped(value_at(lost, t))}</td>")
        if has_test:
            star = " *" if significant else ""
            cells.append(f"<td{mark}>{_p(p_adj)}{star}</td>" if t > 0 else "<td>–</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{escaped(h)}</th>" for h in head)
    label = plots.series_label(entry, item) or str(item.get("label", ""))
    better = item.get("higher_is_better")
    direction = "higher is more robust" if better is True else "lower is more robust" if better is False else ""
    note = f'<p class="note">{escaped(metric)}: {escaped(direction)}</p>' if direction else ""
    caption = f"<h3>{escaped(label)}</h3>" + note
    return f"<div>{caption}<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _spent_tables(entry: dict[str, Any], timesteps: list[Any]) -> str:
    """Per ε, the mean per image at each timestep of the attack's queries and of each per-copy record."""
    tables = [("model queries per image", entry.get("queries"))]
    tables += [(f"{name} (mean per image)", rows) for name, rows in as_dict(entry.get("records")).items()]
    parts = []
    for title, rows in tables:
        rows = [row for row in as_list(rows) if isinstance(row, dict)]
        if not rows:
            continue
        head = "".join(f"<th>t={escaped(t)}</th>" for t in timesteps)
        body = "".join(f"<tr><th>ε={escaped(row.get('epsilon'))}</th>"
                       + "".join(f"<td>{escaped(_count(value_at(row.get('mean'), i)))}</td>"
                                 for i in range(len(timesteps)))
                       + "</tr>" for row in rows)
        parts.append(f'<table class="spent"><caption>{escaped(title)}</caption><tr><th></th>{head}</tr>{body}</table>')
    return "".join(parts)


def _checks_html(entry: dict[str, Any]) -> str:
    """The table of a section's checks (diagnostics): name, pass or FAIL, and the reason."""
    checks = [item for item in as_list(entry.get("checks")) if isinstance(item, dict)]
    if not checks:
        return ""
    rows = "".join(f'<tr class="{"pass" if item.get("passed") is True else "fail"}"><td>{escaped(item.get("name", ""))}'
                   f'</td><td class="result">{"pass" if item.get("passed") is True else "FAIL"}</td>'
                   f'<td>{escaped(item.get("reason", ""))}</td><td>{_check_numbers(item.get("numbers"))}</td></tr>'
                   for item in checks)
    failed = sum(item.get("passed") is not True for item in checks)
    summary = f"{failed} of {len(checks)} checks failed" if failed else f"all {len(checks)} checks passed"
    skipped = "".join(f"<li>{escaped(name)}: skipped, {escaped(why)}</li>"
                      for name, why in as_dict(entry.get("skipped")).items())
    return (f'<h3>Checks: {escaped(summary)}</h3><table class="checks"><thead><tr><th>check</th><th>result</th>'
            f"<th>reason</th><th>numbers (lists: per timestep)</th></tr></thead><tbody>{rows}</tbody></table>"
            + (f'<ul class="note">{skipped}</ul>' if skipped else ""))


def _check_numbers(numbers: Any) -> str:
    """A check's numbers, one line per key; lists (per timestep, or per ε then timestep) with 3 decimals."""

    def shown(value: Any) -> str:
        if isinstance(value, list):
            inner = ", ".join(shown(v) for v in value)
            return f"[{inner}]"
        return f"{value:.3g}" if is_number(value) and not isinstance(value, int) else str(value)

    return "<br>".join(f"<code>{escaped(key)}: {escaped(shown(value))}</code>"
                       for key, value in as_dict(numbers).items())


def _measures_html(measures: dict[str, Any], timesteps: list[Any]) -> str:
    """The model's measures (clean section): the mean over the images at each timestep."""
    head = "".join(f"<th>t={escaped(t)}</th>" for t in timesteps)
    body = []
    for name, item in measures.items():
        values = as_list(as_dict(item).get("mean"))
        cells = "".join(f"<td>{escaped(f'{value_at(values, t):.4g}') if is_number(value_at(values, t)) else '–'}</td>"
                        for t in range(len(timesteps)))
        body.append(f"<tr><th>{escaped(name)}</th>{cells}</tr>")
    return (f'<h3>Measures the model reports</h3><table class="measures"><caption>mean over the images per '
            f'timestep</caption><tr><th></th>{head}</tr>{"".join(body)}</table>')


def _corruption_html(entry: dict[str, Any], timesteps: list[Any]) -> str:
    """A corruption section's CE, mCE and relative mCE per timestep, and how the images were corrupted."""
    from pcrobust.corruption_metrics import headline, per_corruption

    metrics = entry["metrics"]
    library = as_dict(entry.get("library"))
    rows = [("corruptions", escaped(", ".join(str(c) for c in as_list(entry.get("corruptions"))))),
            ("severities", escaped(", ".join(str(s) for s in as_list(entry.get("severities"))))),
            ("strength", escaped(f"{entry.get('strength')}: {entry.get('strength_table')}")),
            ("library", escaped(f"{library.get('name')} {library.get('version')}")),
            ("mCE over", escaped(", ".join(str(c) for c in as_list(metrics.get("mce_over")))
                                 or "no standard corruption")),
            ("AlexNet normalisation", escaped(entry.get("alexnet_normalisation", "")))]
    if entry.get("strength_parameters"):
        rows.append(("parameters per severity", _inline(entry["strength_parameters"])))
    rows += [(key.replace("_", " "), escaped(text)) for key, text in as_dict(entry.get("handling")).items()]
    bootstrap = as_dict(entry.get("bootstrap"))
    if bootstrap:
        rows.append(("intervals", escaped(f"{bootstrap.get('method')} bootstrap over {bootstrap.get('over')}, "
                                          f"{bootstrap.get('resamples')} resamples, seed {bootstrap.get('seed')}")))
    tables = [measure_table("corruption error per timestep", headline(metrics), timesteps)]
    tables += [measure_table(title, table, timesteps) for title, table in per_corruption(metrics)]
    return "<h3>Corruption error</h3>" + facts(rows) + "".join(tables)


def _count(value: Any) -> str:
    return f"{float(value):,.1f}" if is_number(value) else "–"


def _png_uri(fig: Any) -> str:
    return "data:image/png;base64," + base64.b64encode(plots.figure_png(fig)).decode("ascii")


def _entry_html(results: dict[str, Any], entry: dict[str, Any], stem: str, timesteps: list[Any]) -> str:
    level = level_of(results)
    name = _entry_name(entry)
    meta = " · ".join(f"{label} {escaped(entry[key])}"
                      for label, key in (("id", "id"), ("kind", "kind"), ("plugin", "plugin")) if entry.get(key))
    parts = [f'<section id="{escaped(_anchor(stem))}"><h2>{escaped(name)}</h2>', f'<p class="meta">{meta}</p>']
    if entry.get("protocol"):
        parts.append(f"<p>{escaped(entry['protocol'])}</p>")
    parts.append(_threat_model(entry))
    parts.append(_checks_html(entry))
    series = as_list(entry.get("series"))
    if not series:
        parts.append('<p class="empty">This section has no series.</p></section>')
        return "".join(parts)
    verdicts = []
    for item in series:
        label = plots.series_label(entry, item) or str(item.get("label", ""))
        text = item.get("verdict")
        if text:
            verdicts.append(f'<li class="{_verdict_class(str(text))}"><b>{escaped(label)}</b>: {escaped(text)}</li>')
        else:
            verdicts.append(f'<li><b>{escaped(label)}</b>: <span class="empty">no verdict in the document</span></li>')
    parts.append(f'<ul class="verdicts">{"".join(verdicts)}</ul>')
    model = (results.get("model") or {}).get("name")
    ints = [int(t) for t in timesteps if is_number(t)]
    if len(ints) == len(timesteps) and ints:
        figures = plots.section_figures(entry, ints, model, level, plots.interval_name(results))
        images = "".join(f'<figure><img alt="{escaped(name)}: '
                         f'{"change from t=0" if kind == "change" else "per timestep"}"'
                         f' src="{_png_uri(fig)}"></figure>' for kind, fig in figures)
        parts.append(f'<div class="plots">{images}</div>')
    tables = "".join(_series_table(entry, item, timesteps, level) for item in series)
    parts.append(f'<div class="tables">{tables}</div>')
    parts.append(_spent_tables(entry, timesteps))
    if entry.get("kind") == "gradcam":
        parts.append(gradcam_html(entry, timesteps))
    if isinstance(entry.get("metrics"), dict):
        parts.append(_corruption_html(entry, timesteps))
    if isinstance(entry.get("model_measures"), dict) and entry["model_measures"]:
        parts.append(_measures_html(entry["model_measures"], timesteps))
    if any(isinstance(item.get("vs_t0"), dict) for item in series):
        stats = results.get("statistics") or {}
        parts.append(f'<p class="note">Highlighted, *: Holm-adjusted p &lt; {1 - level:.2g} '
                     f"({escaped(stats.get('paired_test', 'paired test against t=0'))}). "
                     "gained / lost: images with the event at t but not at t=0 / at t=0 but not at t.</p>")
    parts.append("</section>")
    return "".join(parts)


def _provenance_html(results: dict[str, Any]) -> str:
    provenance = results.get("provenance") or {}
    model = results.get("model") or {}
    rows: list[tuple[str, str]] = []
    versions = [f"pcrobust {provenance['pcrobust']}"] if provenance.get("pcrobust") else []
    if isinstance(provenance.get("plugins"), dict):
        versions += [f"{name} {version}" for name, version in provenance["plugins"].items()]
    if provenance.get("torch"):
        versions.append(f"torch {provenance['torch']}")
    rows.append(("versions", escaped(", ".join(versions))))
    for label, key in (("device", "device"), ("seed", "seed")):
        if key in provenance:
            rows.append((label, escaped(provenance[key])))
    modes = dict.fromkeys(str(x) for x in (provenance.get("gradient_mode"), model.get("gradient_mode"),
                                           *(e.get("gradient_mode") for e in results.get("sections", [])))
                          if x)
    if modes:
        rows.append(("gradient mode", escaped(", ".join(modes))))
    readouts = dict.fromkeys(f"{e.get('id')}: attacked {e.get('attacked_readout')}, scored {e.get('scored_readout')}"
                             for e in results.get("sections", []) if e.get("attacked_readout"))
    if readouts:
        rows.append(("readouts", "<br>".join(escaped(r) for r in readouts)))
    if model.get("normalization") is not None:
        rows.append(("normalisation", _inline(model["normalization"])))
    weights = provenance.get("weights")
    if isinstance(weights, dict) and weights:
        rows.append(("weights (sha256)", "<br>".join(f"{escaped(name)}: <code>{escaped(digest)}</code>"
                                                     for name, digest in weights.items())))
    other_model = {k: v for k, v in model.items() if k not in ("name", "plugin", "gradient_mode", "normalization")}
    return (f'<h2 id="provenance">Provenance</h2>{facts(rows)}'
            + (f"<h3>model</h3><pre>{escaped(_json(other_model))}</pre>" if other_model else "")
            + f"<h3>full provenance</h3><pre>{escaped(_json(provenance))}</pre>")


def _plan_html(results: dict[str, Any]) -> str:
    if "plan" not in results:
        return '<h2 id="plan">Plan</h2><p class="empty">The document records no plan.</p>'
    language, text = plan_text(results["plan"])
    digest = f" (sha256 <code>{escaped(results['plan_digest'])}</code>)" if results.get("plan_digest") else ""
    return f'<h2 id="plan">Plan</h2><p class="note">as {language}{digest}</p><pre>{escaped(text)}</pre>'


def render_html(results: dict[str, Any]) -> str:
    """The report page for a schema-2 document, as one self-contained HTML string.

    Reads ``schema``, ``created``, ``timesteps``, ``model``, ``dataset``, ``plan``, ``plan_digest``,
    ``statistics``, ``sections``, ``worst_case`` and ``provenance``; series fields ``label``, ``key``,
    ``metric``, ``higher_is_better``, ``n``, ``counts``, ``values``, and when present ``interval``, ``vs_t0``
    and ``verdict``; a section's ``checks`` and ``skipped`` (diagnostics) when present.
    """
    timesteps = as_list(results.get("timesteps"))
    model = (results.get("model") or {}).get("name", "model")
    dataset = (results.get("dataset") or {}).get("name", "dataset")
    body = [_header(results), _warnings_html(results)]
    named = plots.entry_slugs(results)
    worst = {id(entry) for entry in results.get("worst_case", [])}
    for entry, stem in named:
        if id(entry) in worst:
            continue
        body.append(_entry_html(results, entry, stem, timesteps))
    if results.get("worst_case"):
        body.append('<h2 id="worst-case">Worst case over attacks</h2>'
                    '<p class="note">Per image, the strongest of the attacks that share a threat model.</p>')
        for entry, stem in named:
            if id(entry) in worst:
                body.append(_entry_html(results, entry, stem, timesteps))
    body += [_provenance_html(results), _plan_html(results)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escaped(model)} on {escaped(dataset)}: pcrobust report</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def write_html(results: dict[str, Any], path: Path) -> Path:
    """Write :func:`render_html` to ``path`` (parents created); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(results), encoding="utf-8")
    return path
