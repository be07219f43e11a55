"""Plots of schema-2 documents: fixed axes, confidence bands, n in titles, threat models in legends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from pcrobust.errors import PcrobustError
from pcrobust.plots import epsilon_label, figure_png, plot_figures, slug, write_plots
from tests.schema2 import build_document, without_statistics

NAMES = ["clean.png", "clean_change.png", "noise.png", "noise_change.png", "attack-bim.png",
         "attack-bim_change.png", "attack-pgd.png", "attack-pgd_change.png", "attack-cw.png",
         "attack-cw_change.png", "worst-case-linf-eps-0-1.png", "worst-case-linf-eps-0-1_change.png"]


@pytest.fixture(scope="module")
def figures() -> dict[str, Figure]:
    return dict(plot_figures(build_document()))


def legend_texts(fig: Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend else []


def bands(fig: Figure) -> list[PolyCollection]:
    return [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]


def test_one_plot_per_section_and_a_change_plot_with_intervals(figures):
    assert list(figures) == NAMES


def test_values_on_a_fixed_unit_axis_with_bands(figures):
    for name in NAMES:
        if name.endswith("_change.png"):
            continue
        ax = figures[name].axes[0]
        assert ax.get_ylim() == (0.0, 1.0), name
        assert len(bands(figures[name])) == len(ax.get_lines()), name
        assert list(ax.get_xticks()) == [0, 1, 2, 3, 4]
        assert "timestep" in ax.get_xlabel()
    assert len(bands(figures["noise.png"])) == 2


def test_titles_carry_n_and_readouts(figures):
    assert "(n=400)" in figures["clean.png"].axes[0].get_title()
    title = figures["attack-bim.png"].axes[0].get_title()
    assert "mnist-pnet: targeted bim (L∞)" in title and "n=60" in title and "attacked t, scored t" in title
    assert "n=60" in figures["attack-bim_change.png"].axes[0].get_title()


def test_attack_legends_name_the_threat_model(figures):
    texts = legend_texts(figures["attack-bim.png"])
    assert texts[:2] == ["L∞ ε=0.1 (25.5/255)", "L∞ ε=0.2 (51/255)"]
    assert "shaded: 95% Wilson interval" in texts
    assert legend_texts(figures["attack-cw.png"])[0] == "L2 ε=1"          # no k/255 outside L∞
    assert legend_texts(figures["worst-case-linf-eps-0-1.png"])[0] == "L∞ ε=0.1 (25.5/255)"
    assert legend_texts(figures["noise.png"])[:2] == ["σ=0.1", "σ=0.3"]
    assert "attack success rate" in figures["attack-bim.png"].axes[0].get_ylabel()
    assert "lower is more robust" in figures["attack-bim.png"].axes[0].get_ylabel()


def test_change_plot_is_symmetric_with_paired_bands(figures):
    document = build_document()
    ax = figures["attack-bim_change.png"].axes[0]
    low, high = ax.get_ylim()
    assert low == pytest.approx(-high) and high > 0
    assert "change from t=0" in ax.get_ylabel()
    assert len(bands(figures["attack-bim_change.png"])) == 2
    series = document["sections"][2]["series"][1]
    [curve] = [line for line in ax.get_lines() if line.get_label() == "L∞ ε=0.2 (51/255)"]
    assert list(curve.get_ydata()) == pytest.approx([v - series["values"][0] for v in series["values"]])
    assert high >= max(abs(v) for v in series["vs_t0"]["change_interval"]["low"])


def test_without_statistics_no_bands_and_no_change_plot():
    named = dict(plot_figures(without_statistics(build_document())))
    assert list(named) == [n for n in NAMES if not n.endswith("_change.png")]
    for name, fig in named.items():
        assert bands(fig) == [] and fig.axes[0].get_ylim() == (0.0, 1.0), name
        assert not any(text.startswith("shaded") for text in legend_texts(fig))


def test_single_timestep_and_empty_section_draw():
    document = build_document(timesteps=0)
    document["sections"][0]["series"][0].update(n=0, counts=[0], values=[0.0])
    named = dict(plot_figures(document))
    texts = [t.get_text() for t in named["clean.png"].axes[0].texts]
    assert texts == ["no images scored"]
    assert all(len(fig.axes) == 1 for fig in named.values())
    assert not any(name.endswith("_change.png") for name in named)    # nothing to compare with one timestep
    assert len(bands(named["noise.png"])) == 2                           # a box per series at the lone timestep
    assert figure_png(named["noise.png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_plots_names_files_from_section_ids(tmp_path: Path):
    written = write_plots(build_document(), tmp_path / "plots")
    assert [p.name for p in written] == NAMES
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_write_plots_refuses_schema_1(tmp_path: Path):
    with pytest.raises(PcrobustError, match="pcrobust.results/2"):
        write_plots({"schema": "pcrobust.results/1", "timesteps": [0], "clean": {}}, tmp_path)


def test_slugs_and_epsilon_labels():
    assert slug("attack bim") == "attack-bim" and slug("Clean") == "clean" and slug("σ=0.1") == "sigma-0-1"
    assert slug("///") == "section"
    document = build_document()
    document["sections"][3]["id"] = "attack-bim"       # same slug as "attack bim": made unique
    assert "attack-bim-2.png" in dict(plot_figures(document))
    assert epsilon_label(8 / 255, "linf") == "ε=0.03137 (8/255)"
    assert epsilon_label(0.1, "linf") == "ε=0.1 (25.5/255)"
    assert epsilon_label(0.5, "l2") == "ε=0.5"


def test_plots_leave_no_process_wide_matplotlib_state(tmp_path: Path):
    code = ("import sys; "
            "from pathlib import Path; from tests.schema2 import build_document; "
            "from pcrobust.plots import write_plots; "
            f"write_plots(build_document(timesteps=1, n_clean=50, n_attack=20), Path({str(tmp_path)!r})); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'")
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def _measure(panel: str, sigma: float) -> dict:
    values = {"values": [1.0, 0.9], "interval": {"low": [1.0, 0.8], "high": [1.0, 1.0]}}
    return {"panel": panel, "key": {"sigma": sigma}, "label": f"sigma={sigma}", "metric": "value",
            "values": [0.2, 0.1], "normalised": values}


def test_each_noise_level_has_one_colour_in_both_analysis_figures():
    from pcrobust.plots import NO_NOISE_COLOUR, measures_figure

    reconstruction = {"title": "reconstruction", "measures": [_measure("image", 0.0), _measure("image", 0.1),
                                                               _measure("layer 1", 0.0), _measure("layer 1", 0.1)]}
    representation = {"title": "representation", "measures": [_measure("layer 1", 0.1), _measure("layer 1", 0.2)]}

    def colours(entry: dict) -> dict[str, str]:
        fig = measures_figure(entry, [0, 1])
        return {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines()
                if not line.get_label().startswith("_")}

    rec, rep = colours(reconstruction), colours(representation)
    assert rec["σ=0"] == NO_NOISE_COLOUR and rec["σ=0.1"] == rep["σ=0.1"] != rep["σ=0.2"]
