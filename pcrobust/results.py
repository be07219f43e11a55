"""The results document: JSON is the source of truth; CSV and plots are derived from it."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pcrobust.errors import PcrobustError

SCHEMA = "pcrobust.results/1"
CSV_COLUMNS = ("section", "attack", "epsilon", "sigma", "timestep", "n", "value")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def write_json(results: dict[str, Any], path: Path) -> Path:
    _atomic_write(path, json.dumps(results, indent=2) + "\n")
    return path


def load_results(path: Path) -> dict[str, Any]:
    """Read and check a results file; any problem is a one-line :class:`PcrobustError`."""
    try:
        results = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PcrobustError(f"results file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise PcrobustError(f"cannot read results file {path}: {exc}") from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise PcrobustError(f"{path} is not a {SCHEMA} document")
    timesteps = results.get("timesteps")
    if not isinstance(timesteps, list) or not timesteps:
        raise PcrobustError(f"{path}: 'timesteps' must be a non-empty list")
    width = len(timesteps)
    series = [("clean", results.get("clean", {}).get("accuracy"))]
    series += [(f"attacks[{i}]", a.get("success_rate")) for i, a in enumerate(results.get("attacks", []))]
    series += [(f"noise[{i}]", n.get("accuracy")) for i, n in enumerate(results.get("noise", []))]
    for where, values in series:
        if not (isinstance(values, list) and len(values) == width
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise PcrobustError(f"{path}: {where} must hold one number per timestep")
    return results


def csv_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric and timestep, in long format."""
    rows: list[dict[str, Any]] = []
    clean = results["clean"]
    for t, value in zip(results["timesteps"], clean["accuracy"], strict=True):
        rows.append({"section": "clean_accuracy", "timestep": t, "n": clean.get("n"), "value": value})
    for attack in results["attacks"]:
        for key in ("success_rate", "success_rate_change_from_t0"):
            for t, value in zip(results["timesteps"], attack[key], strict=True):
                rows.append({"section": f"attack_{key}", "attack": attack["attack"], "epsilon": attack["epsilon"],
                             "timestep": t, "n": attack["n"], "value": value})
    for noise in results["noise"]:
        for t, value in zip(results["timesteps"], noise["accuracy"], strict=True):
            rows.append({"section": "noise_accuracy", "sigma": noise["sigma"], "timestep": t, "n": noise.get("n"),
                         "value": value})
    return rows


def write_csv(results: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(csv_rows(results))
    return path


def write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``results.csv`` and the PNG plots into ``out_dir``; returns the files written."""
    from pcrobust.plots import write_plots

    return [write_csv(results, out_dir / "results.csv"), *write_plots(results, out_dir)]
