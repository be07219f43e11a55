"""The self-contained HTML report: rendered from a stored results file alone, escaped, offline, and viewable."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from pcrobust.html_report import plan_text, render_html, warnings, write_html
from pcrobust.plots import plot_figures
from tests.schema2 import build_document, without_statistics


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("results") / "results.json"
    path.write_text(json.dumps(build_document(), indent=2, ensure_ascii=False))
    return path


@pytest.fixture(scope="module")
def page(stored: Path) -> str:
    return render_html(json.loads(stored.read_text()))


def test_renders_every_section_and_verdict_from_the_stored_file(stored: Path, page: str):
    document = json.loads(stored.read_text())
    for entry in [*document["sections"], *document["worst_case"]]:
        assert f"<h2>{html.escape(entry['title'])}</h2>" in page
        for series in entry["series"]:
            assert html.escape(series["verdict"]) in page
    assert "<h1>mnist-pnet on mnist-5k</h1>" in page
    assert "Worst case over attacks" in page and "Provenance" in page and "Plan" in page


def test_page_is_self_contained(page: str):
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == len(plot_figures(build_document()))
    hrefs = re.findall(r'\bhref="([^"]*)"', page)
    assert hrefs and all(h.startswith("#") for h in hrefs)
    anchors = set(re.findall(r'\bid="([^"]*)"', page))
    assert {h[1:] for h in hrefs} <= anchors


def test_tables_indexed_by_timestep_with_marked_significance(page: str):
    document = build_document()
    noise = document["sections"][1]["series"][1]                        # σ=0.3 rises clearly
    assert noise["vs_t0"]["p_adjusted"][4] < 0.05
    assert f"{noise['counts'][4]} / {noise['n']}" in page
    low, high = noise["interval"]["low"][4], noise["interval"]["high"][4]
    assert f"[{low:.3f}, {high:.3f}]" in page
    assert page.count('class="sig"') >= 8 and " *</td>" in page
    assert "<th>adjusted p</th>" in page and "<th>gained / lost</th>" in page
    assert "<th>paired 95% interval</th>" in page


def test_header_and_provenance(page: str):
    for text in ("predify / <b>mnist-pnet</b>", "split test", "400 of 1000 images evaluated",
                 "95% Wilson intervals; exact McNemar against t=0, Holm correction", "pcrobust 0.2.0",
                 "torch 2.13.0", "attack bim: attacked t, scored t", "mnist_pnet.pt: <code>" + "ab" * 32,
                 "&quot;mean&quot;: [0.1307]", "ε=0.1 (25.5/255), ε=0.2 (51/255)"):
        assert text in page, text


def test_plan_shown_as_toml_that_reads_back():
    document = build_document()
    language, text = plan_text(document["plan"])
    assert language == "toml" and tomllib.loads(text) == document["plan"]
    odd = {"a": 1, "b": [1, 2], "c": {"d e": "x\"y", "f": [{"g": 1}]}, "h": [{"i": True}, {"i": False}]}
    assert tomllib.loads(plan_text(odd)[1]) == odd
    assert plan_text({"a": None}) == ("json", '{\n  "a": null\n}')


def test_all_text_is_escaped():
    document = build_document(timesteps=1)
    document["sections"][0]["title"] = "<script>alert(1)</script>"
    document["sections"][0]["protocol"] = "a & b <i>"
    document["model"]["name"] = '"><img src=x>'
    page = render_html(document)
    assert "<script>" not in page and "<img src=x>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; b &lt;i&gt;" in page


def test_warnings_computed_from_the_document():
    document = build_document()
    found = warnings(document)
    assert any("targeted bim (L∞): only n = 60 images" in w for w in found)
    assert any("L∞ ε=0.2 (51/255): the 95% interval is" in w and "too wide" in w for w in found)
    assert not any(w.startswith("clean accuracy") for w in found)
    document["sections"][0]["series"][0].update(n=0, counts=[0] * 5, values=[0.0] * 5)
    document["sections"].append({"id": "empty", "kind": "noise", "title": "nothing here", "series": []})
    found = warnings(document)
    assert "clean accuracy: no images were scored, so nothing can be concluded" in found
    assert "nothing here: no series in this section" in found
    bare = warnings(without_statistics(build_document()))
    assert any(w.startswith("no confidence intervals or paired tests for:") for w in bare)
    assert any("not pcrobust.results/2" in w for w in warnings({**build_document(), "schema": "x"}))


def test_renders_without_statistics_and_with_one_timestep(tmp_path: Path):
    bare = render_html(without_statistics(build_document()))
    assert "no verdict in the document" in bare and "no statistics in this document" in bare
    assert "<th>adjusted p</th>" not in bare
    single = write_html(build_document(timesteps=0), tmp_path / "deep" / "report.html")
    text = single.read_text(encoding="utf-8")
    assert "nothing to compare over timesteps" in text and text.startswith("<!DOCTYPE html>")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def test_headless_chromium_screenshot(tmp_path: Path, stored: Path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed")
    page = write_html(json.loads(stored.read_text()), tmp_path / "report.html")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,3000",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=180)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 3000)
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels[:400].std() > 0.05          # the top of the page has text and plots on it, not a blank page


def test_wide_intervals_of_a_section_are_one_warning():
    document = build_document()
    attack = next(s for s in document["sections"] if s["kind"] == "attack")

    def wide_of_attack() -> list[str]:
        return [w for w in warnings(document) if "too wide" in w and w.startswith(attack["title"])]

    (alone,) = wide_of_attack()
    second = json.loads(json.dumps(next(s for s in attack["series"] if s["label"] in alone)))
    second["label"] = "copy"
    attack["series"].append(second)
    (together,) = wide_of_attack()
    assert together.startswith(f"{attack['title']}: 2 of {len(attack['series'])} series have a 95% interval wider "
                               "than 0.2 (widest")
