"""The terminal summary: n, values, markers on the timesteps that differ from t=0, intervals, verdicts, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcrobust.results import SCHEMA_1, validate_results
from pcrobust.summary import MARK, render_summary
from tests.schema2 import build_document, without_statistics

REPORT = Path("out") / "report.html"
EMPTY = {"id": "attack none", "kind": "attack", "title": "targeted none (L∞)", "n": 0, "series": [],
         "note": "no evaluated image met the selection rule (correct at every timestep)"}


def _entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [*document["sections"], *document["worst_case"]]


def _blocks(text: str, document: dict[str, Any]) -> dict[str, list[str]]:
    """The lines of each section's part of the summary, keyed by section id (a part starts at its heading)."""
    lines = text.splitlines()
    starts = {entry["id"]: next(i for i, line in enumerate(lines) if line.startswith(entry["title"]))
              for entry in _entries(document)}
    ordered = sorted(starts.items(), key=lambda item: item[1])
    ends = [start for _, start in ordered[1:]] + [len(lines)]
    return {key: lines[start:end] for (key, start), end in zip(ordered, ends, strict=True)}


def _row(block: list[str], label: str) -> list[str]:
    """The cells of the series row ``label`` below the heading (labels in these documents hold no spaces)."""
    return next(line.split()[1:] for line in block[1:] if line.split()[:1] == [label])


def _flat(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def test_summary_holds_n_values_markers_intervals_verdicts_and_report():
    document = build_document()
    document["sections"].append(EMPTY)
    text = render_summary(document, REPORT, width=120)
    blocks = _blocks(text, document)
    marked = unmarked = 0
    for entry in document["sections"][:-1] + document["worst_case"]:
        block = blocks[entry["id"]]
        assert f"n={entry['series'][0]['n']}" in block[0], block[0]
        for series in entry["series"]:
            cells = _row(block, series["label"])
            assert len(cells) == len(document["timesteps"])
            for t, (cell, value) in enumerate(zip(cells, series["values"], strict=True)):
                assert cell.rstrip(MARK) == f"{value:.3f}"
                significant = t > 0 and series["vs_t0"]["p_adjusted"][t] < 0.05
                assert cell.endswith(MARK) == significant, (entry["id"], series["label"], t)
                marked += significant
                unmarked += t > 0 and not significant
            interval = series["interval"]
            for t in (0, -1):
                assert f"{interval['low'][t]:.3f}–{interval['high'][t]:.3f}" in "\n".join(block)
            assert _flat([f"{series['label']}: {series['verdict']}"]) in _flat(block)
    assert marked and unmarked, "the document must hold both kinds of cells for the test to mean anything"
    assert blocks["attack none"][:2] == ["targeted none (L∞) [attack none] · n=0",
                                         "  no evaluated image met the selection rule (correct at every timestep)"]
    lines = text.splitlines()
    assert lines[-1] == f"report: {REPORT}"
    assert any(line.startswith(f"{MARK} differs from t=0: Holm-adjusted p < 0.05") for line in lines)
    assert any(line.startswith("95% CI: Wilson") for line in lines)
    assert max(map(len, lines)) <= 120


def test_the_level_of_the_document_sets_the_threshold_of_the_marker():
    document = build_document()
    document["statistics"]["level"] = 0.999
    text = render_summary(document, None, width=120)
    noise = _blocks(text, document)["noise"]
    p_adjusted = document["sections"][1]["series"][0]["vs_t0"]["p_adjusted"]
    assert 0.001 <= p_adjusted[1] < 0.05 and p_adjusted[2] < 0.001, "marked at 95%, only t=2.. at 99.9%"
    cells = _row(noise, "σ=0.1")
    assert [c.endswith(MARK) for c in cells] == [t > 0 and p < 0.001 for t, p in enumerate(p_adjusted)]
    assert "99.9% CI" in text and "p < 0.001" in text and "report:" not in text


def test_ten_timesteps_fit_120_columns_in_one_table_and_narrow_widths_split_timesteps():
    document = build_document(timesteps=10)
    wide = render_summary(document, REPORT, width=120).splitlines()
    assert max(map(len, wide)) <= 120
    assert any(line.split()[:2] == ["series", "t=0"] and line.split()[-1] == "t=10" for line in wide)
    narrow = render_summary(document, REPORT, width=60)
    assert max(map(len, narrow.splitlines())) <= 60
    blocks = _blocks(narrow, document)
    for series in document["sections"][1]["series"]:
        rows = [line.split()[1:] for line in blocks["noise"] if line.split()[:1] == [series["label"]]]
        assert len(rows) > 1, "a narrow summary splits the timesteps into blocks"
        assert [c.rstrip(MARK) for row in rows for c in row] == [f"{v:.3f}" for v in series["values"]]


def test_series_of_different_sizes_get_an_n_column():
    document = build_document()
    noise = document["sections"][1]
    noise["series"][1]["n"] = 399
    block = _blocks(render_summary(document, None, width=120), document)["noise"]
    assert "n=" not in block[0]
    assert block[1].split()[:3] == ["series", "n", "t=0"]
    assert _row(block, "σ=0.1")[0] == "400" and _row(block, "σ=0.3")[0] == "399"


def test_documents_without_statistics_get_their_values_alone():
    document = without_statistics(build_document())
    document["sections"].append(EMPTY)
    text = render_summary(document, REPORT, width=120)
    blocks = _blocks(text, document)
    for entry in _entries(document):
        if entry["series"]:
            assert f"n={entry['series'][0]['n']}" in blocks[entry["id"]][0]
        for series in entry["series"]:
            assert _row(blocks[entry["id"]], series["label"]) == [f"{v:.3f}" for v in series["values"]]
    assert MARK not in text and "CI" not in text
    assert "no evaluated image met the selection rule" in text
    assert "holds no intervals or tests against t=0" in text and text.splitlines()[-1] == f"report: {REPORT}"


def test_a_schema_1_document_is_summarised_after_its_upgrade():
    old = {"schema": SCHEMA_1, "timesteps": [0, 1], "clean": {"n": 10, "correct": [9, 8], "accuracy": [0.9, 0.8]}}
    text = render_summary(validate_results(old, "old.json"), None, width=80)
    assert "clean accuracy [clean] · accuracy, higher is more robust · n=10" in text
    assert "0.900" in text and "0.800" in text


def test_evaluate_prints_the_summary_and_the_report_path(cli, tmp_path: Path):
    out = tmp_path / "r"
    code, stdout, _ = cli("evaluate", "--plugin", "predify", "--n-clean", "60", "--n-attack", "6", "--timesteps", "1",
                          "--epsilons", "0.3", "--noise-sigmas", "0.2", "--quiet", "--device", "cpu",
                          "--out", str(out))
    assert code == 0
    assert "n=60" in stdout and "n=6" in stdout
    assert f"report: {out / 'report.html'}" in stdout and (out / "report.html").stat().st_size > 0


def test_an_attack_section_shows_the_queries_it_spent_per_image():
    document = build_document()
    attack = next(entry for entry in document["sections"] if entry["kind"] == "attack")
    attack["queries"] = [{"epsilon": 0.1, "mean": [10.0, 12.5], "max": [10.0, 20.0]},
                         {"epsilon": 0.3, "mean": [None, None], "max": [None, None]}]
    block = _flat(_blocks(render_summary(document, None, width=120), document)[attack["id"]])
    assert "model queries per image at the last timestep: ε=0.1 12.5 (max 20)" in block
    assert "ε=0.3" not in block.split("queries")[1]
