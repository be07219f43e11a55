"""The results document: JSON is the source of truth; CSV, plots and the HTML report are derived from it.

Schema ``pcrobust.results/2`` holds a list of sections, each with series indexed by timestep. Documents of
schema 1 (flat ``clean``/``noise``/``attacks``) are read too, converted to sections on load.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pcrobust.document import is_number
from pcrobust.errors import PcrobustError
from pcrobust.files import atomic_write_json, atomic_write_text

SCHEMA = "pcrobust.results/2"
SCHEMA_1 = "pcrobust.results/1"
CSV_COLUMNS = ("section", "kind", "series", "parameters", "metric", "timestep", "n", "count", "value",
               "change_from_t0", "ci_low", "ci_high", "p_adjusted")


def _series(label: str, key: dict[str, Any], metric: str, higher: bool, n: int | None,
            counts: list[int] | None, values: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"label": label, "key": key, "metric": metric, "higher_is_better": higher,
                             "values": values, "change_from_t0": [v - values[0] for v in values]}
    if n is not None:
        entry["n"] = n
    if counts is not None:
        entry["counts"] = counts
    return entry


def upgrade_schema_1(old: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 document as schema 2: clean, noise and one section per attack name (ids as today's)."""
    clean = old.get("clean", {})
    sections: list[dict[str, Any]] = [{"id": "clean", "kind": "clean", "title": "clean accuracy", "n": clean.get("n"),
                                       "series": [_series("clean", {}, "accuracy", True, clean.get("n"),
                                                          clean.get("correct"), clean.get("accuracy"))]}]
    if old.get("noise"):
        sections.append({"id": "noise", "kind": "noise", "title": "Gaussian noise (pixel σ, clipped)",
                         "series": [_series(f"σ={n['sigma']:g}", {"sigma": n["sigma"]}, "accuracy", True, n.get("n"),
                                            n.get("correct"), n.get("accuracy")) for n in old["noise"]]})
    by_attack: dict[str, list[dict[str, Any]]] = {}
    for attack in old.get("attacks", []):
        by_attack.setdefault(attack.get("attack", "?"), []).append(attack)
    for name, entries in by_attack.items():
        first = entries[0]
        sections.append({"id": f"attack {name}", "kind": "attack", "title": f"targeted {name}",
                         "attack": {"name": name, "norm": first.get("norm"), "targeted": True},
                         "attacked_readout": first.get("attacked_readout"),
                         "scored_readout": first.get("scored_readout"), "n": first.get("n"),
                         "series": [_series(f"ε={a['epsilon']:g}", {"epsilon": a["epsilon"]}, "success_rate", False,
                                            a.get("n"), a.get("successes"), a.get("success_rate"))
                                    for a in entries]})
    upgraded = {key: value for key, value in old.items() if key not in ("clean", "noise", "attacks")}
    return {**upgraded, "schema": SCHEMA, "upgraded_from": SCHEMA_1, "sections": sections, "worst_case": []}


def validate_results(results: Any, where: str) -> dict[str, Any]:
    """Check the shape a reader relies on; any problem is a one-line :class:`PcrobustError`."""
    if not isinstance(results, dict) or results.get("schema") not in (SCHEMA, SCHEMA_1):
        raise PcrobustError(f"{where} is not a {SCHEMA} (or {SCHEMA_1}) document")
    timesteps = results.get("timesteps")
    if not isinstance(timesteps, list) or not timesteps:
        raise PcrobustError(f"{where}: 'timesteps' must be a non-empty list")
    try:
        document = upgrade_schema_1(results) if results["schema"] == SCHEMA_1 else results
    except (KeyError, TypeError, AttributeError) as exc:
        raise PcrobustError(f"{where}: malformed schema-1 document ({exc})") from None
    entries = document.get("sections")
    if not isinstance(entries, list):
        raise PcrobustError(f"{where}: 'sections' must be a list")
    for entry in [*entries, *document.get("worst_case", [])]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or \
                not isinstance(entry.get("series"), list):
            raise PcrobustError(f"{where}: every section needs an 'id' and a list of 'series'")
        for series in entry["series"]:
            values = series.get("values") if isinstance(series, dict) else None
            if not (isinstance(values, list) and len(values) == len(timesteps) and all(map(is_number, values))):
                raise PcrobustError(f"{where}: {entry['id']}: series {series.get('label', '?')!r} must hold one "
                                    "number per timestep")
    return document


def load_results(path: Path) -> dict[str, Any]:
    """Read and check a results file (schema 2, or schema 1 converted to 2)."""
    try:
        results = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PcrobustError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PcrobustError(f"cannot read results file {path}: {exc}") from None
    return validate_results(results, str(path))


def all_sections(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The sections and the worst-case entries, in that order."""
    return [*results["sections"], *results.get("worst_case", [])]


def write_json(results: dict[str, Any], path: Path) -> Path:
    return atomic_write_json(path, results)


def csv_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per section, series and timestep, in long format."""
    rows: list[dict[str, Any]] = []
    for section in all_sections(results):
        for series in section["series"]:
            interval = series.get("interval", {})
            adjusted = series.get("vs_t0", {}).get("p_adjusted")
            parameters = ";".join(f"{k}={v}" for k, v in series.get("key", {}).items())
            for position, t in enumerate(results["timesteps"]):
                counts = series.get("counts")
                rows.append({
                    "section": section["id"], "kind": section.get("kind", ""), "series": series["label"],
                    "parameters": parameters, "metric": series["metric"], "timestep": t, "n": series.get("n", ""),
                    "count": counts[position] if counts else "", "value": series["values"][position],
                    "change_from_t0": series["change_from_t0"][position],
                    "ci_low": interval["low"][position] if interval else "",
                    "ci_high": interval["high"][position] if interval else "",
                    "p_adjusted": adjusted[position] if adjusted else "",
                })
    return rows


def write_csv(results: dict[str, Any], path: Path) -> Path:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(results))
    return atomic_write_text(path, text.getvalue())


def write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``results.csv``, the PNG plots, the maps of gradcam sections (``.npz``) and ``report.html`` into
    ``out_dir``; returns the files written."""
    from pcrobust.gradcam_report import write_maps
    from pcrobust.html_report import write_html
    from pcrobust.plots import write_plots

    return [write_csv(results, out_dir / "results.csv"), *write_plots(results, out_dir),
            *write_maps(results, out_dir), write_html(results, out_dir / "report.html")]
