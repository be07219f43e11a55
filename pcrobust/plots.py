"""PNG plots derived from a results document, one per section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pcrobust.results import all_sections
from pcrobust.run.store import slug


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for section in all_sections(results):
        if not section["series"]:
            continue
        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        for series in section["series"]:
            ax.plot(results["timesteps"], series["values"], marker="o", label=series["label"])
        ax.set_ylim(0, 1)
        ax.set_xlabel("timestep")
        ax.set_ylabel(section["series"][0]["metric"].replace("_", " "))
        ax.set_title(f"{section.get('title', section['id'])} (n={section.get('n')})")
        ax.legend(fontsize="small")
        path = out_dir / f"{slug(section['id'])}.png"
        figure.savefig(path, dpi=120)
        written.append(path)
    return written
