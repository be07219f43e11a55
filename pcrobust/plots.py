"""PNG plots derived from a results document."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _line_plot(path: Path, timesteps: Sequence[int], curves: list[tuple[str, Sequence[float]]], title: str,
               ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves:
        ax.plot(timesteps, values, marker="o", label=label)
    ax.set_xlabel("timestep")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xticks(list(timesteps))
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = results["timesteps"]
    model = results.get("model", {}).get("name", "model")
    written = [_line_plot(out_dir / "clean_accuracy.png", ts, [("clean", results["clean"]["accuracy"])],
                          f"{model}: clean accuracy (n={results['clean'].get('n')})", "accuracy")]
    by_attack: dict[str, list[dict[str, Any]]] = {}
    for entry in results["attacks"]:
        by_attack.setdefault(entry["attack"], []).append(entry)
    for name, entries in by_attack.items():
        readouts = f"attacked {entries[0]['attacked_readout']}, scored {entries[0]['scored_readout']}"
        raw = [(f"ε={e['epsilon']:g}", e["success_rate"]) for e in entries]
        corrected = [(f"ε={e['epsilon']:g}", e["success_rate_change_from_t0"]) for e in entries]
        written.append(_line_plot(out_dir / f"{name}_success_rate.png", ts, raw,
                                  f"{model}: targeted {name} ({readouts}, n={entries[0]['n']})", "success rate"))
        written.append(_line_plot(out_dir / f"{name}_success_rate_change.png", ts, corrected,
                                  f"{model}: targeted {name}, relative to t=0", "success rate − success rate at t=0"))
    if results["noise"]:
        curves = [(f"σ={n['sigma']:g}", n["accuracy"]) for n in results["noise"]]
        written.append(_line_plot(out_dir / "noise_accuracy.png", ts, curves,
                                  f"{model}: Gaussian noise (pixel σ, clipped)", "accuracy"))
    return written
