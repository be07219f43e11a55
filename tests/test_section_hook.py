"""A third-party plugin adds a section kind through ``pcrobust_register_sections``; the core runs it from a plan
and gives it what built-in kinds get: statistics, CSV rows, plots, the HTML report and the regression check."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import tomli_w
from pydantic import Field

from pcrobust import hookimpl
from pcrobust.cli import main
from pcrobust.plugins import ALLOW_LIST_VARIABLE
from pcrobust.run.context import RunContext
from pcrobust.run.store import RunFolder
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit
from pcrobust.stats import annotate_series

PLUGIN_NAME = "mirror"
DISTRIBUTION = "pcrobust-mirror"


class FlipOptions(SectionOptions):
    axis: Literal["horizontal", "vertical"] = Field("horizontal", description="the axis images are mirrored along")


class Flip(SectionKind):
    """Accuracy per timestep on mirrored images: a measurement the core knows nothing about."""

    name = "flip"
    description = "accuracy per timestep on mirrored images"
    options = FlipOptions

    def title(self, options: SectionOptions) -> str:
        assert isinstance(options, FlipOptions)
        return f"{options.axis}ly flipped images"

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        return [Unit(f"images-{number:04d}", tuple(int(i) for i in chunk.tolist()))
                for number, chunk in enumerate(context.chunks())]

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        assert isinstance(section.options, FlipOptions)
        indices = list(unit.indices)
        dim = -1 if section.options.axis == "horizontal" else -2
        logits = context.logits(context.data.images[indices].flip(dim), unit.key)
        correct = logits.argmax(2) == context.data.labels[indices]
        return {"indices": indices, "correct": correct.T.int().tolist()}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        assert isinstance(section.options, FlipOptions)
        indices = [i for _, outcome in outcomes for i in outcome["indices"]]
        correct = np.asarray([row for _, outcome in outcomes for row in outcome["correct"]], dtype=bool)
        return SectionResult({"protocol": f"argmax of the logits of the {section.options.axis}ly mirrored image "
                                          "equals the label"},
                             [Series("flipped", {"axis": section.options.axis}, "accuracy", True, indices, correct)])


class MirrorPlugin:
    @hookimpl
    def pcrobust_register_sections(self, registry):
        registry.add(Flip())


PLUGIN = MirrorPlugin()

PLAN = {
    "model": {"plugin": "predify"},
    "data": {"n": 24},
    "run": {"timesteps": 1, "device": "cpu"},
    "sections": [{"kind": "clean"}, {"kind": "flip"}],
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin installed as any distribution is: metadata with an entry point in the ``pcrobust`` group."""
    site = tmp_path_factory.mktemp("site")
    info = site / "pcrobust_mirror-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[pcrobust]\n{PLUGIN_NAME} = {__name__}:PLUGIN\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ALLOW_LIST_VARIABLE, raising=False)
        patch.syspath_prepend(str(site))
        yield site


@pytest.fixture(scope="module")
def flip_run(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flip")
    (root / "plan.toml").write_text(tomli_w.dumps(PLAN))
    with redirect_stdout(io.StringIO()):
        assert main(["evaluate", "--plan", str(root / "plan.toml"), "--quiet", "--out", str(root / "run")]) == 0
    return root / "run"


def flip_entry(results: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in results["sections"] if s["kind"] == "flip")


def test_the_plugin_lists_its_section_kind(installed, cli):
    code, out, _ = cli("plugins", "--json")
    mirror = next(item for item in json.loads(out) if item["name"] == PLUGIN_NAME)
    assert code == 0 and mirror["distribution"] == DISTRIBUTION and mirror["version"] == "1.2"
    assert mirror["sections"] == ["flip"] and mirror["models"] == mirror["attacks"] == []
    code, out, _ = cli("plan", "--plan", str(write_plan(installed, PLAN)))
    assert code == 0 and tomllib.loads(out)["sections"][1] == {"kind": "flip", "axis": "horizontal"}  # defaults


def write_plan(folder: Path, plan: dict[str, Any], name: str = "plan.toml") -> Path:
    path = folder / name
    path.write_text(tomli_w.dumps(plan))
    return path


def test_a_plugin_section_runs_from_a_plan(flip_run: Path):
    results = json.loads((flip_run / "results.json").read_text())
    assert [s["id"] for s in results["sections"]] == ["clean", "flip"]
    clean, flip = results["sections"]
    assert flip["plugin"] == PLUGIN_NAME and clean["plugin"] == "builtin"
    assert flip["title"] == "horizontally flipped images" and flip["parameters"] == {"axis": "horizontal"}
    assert "mirrored image" in flip["protocol"]
    assert flip["n"] == 24 and flip["image_indices"] == clean["image_indices"]
    assert results["provenance"]["plugins"][PLUGIN_NAME] == "1.2"
    assert results["plan"]["sections"][1] == {"kind": "flip", "axis": "horizontal"}
    (series,) = flip["series"]
    assert set(series) == set(clean["series"][0])  # the same fields as a built-in kind's series
    assert series["metric"] == "accuracy" and series["higher_is_better"] is True and series["key"] == {
        "axis": "horizontal"}
    assert series["values"][0] < clean["series"][0]["values"][0], "mirrored digits are harder to read"
    for t, value in enumerate(series["values"]):
        assert series["interval"]["low"][t] <= value <= series["interval"]["high"][t]
    assert isinstance(series["verdict"], str) and series["vs_t0"]["p_adjusted"][0] == 1.0
    store = RunFolder(flip_run)
    record = store.record()
    assert record is not None
    (unit,) = record["units"]["flip"]
    outcome = store.load_unit("flip", unit["key"], results["plan_digest"])
    assert outcome is not None
    expected = annotate_series(np.asarray(outcome["correct"], dtype=bool), True, results["statistics"]["level"],
                               results["statistics"]["interval"], "accuracy")
    assert {key: series[key] for key in expected} == expected  # statistics come from the core, as for built-ins


def test_a_plugin_section_is_in_the_csv_plots_and_report(flip_run: Path):
    rows = list(csv.DictReader(io.StringIO((flip_run / "results.csv").read_text())))
    mine = [row for row in rows if row["section"] == "flip"]
    assert [row["timestep"] for row in mine] == ["0", "1"]
    assert all(row["kind"] == "flip" and row["series"] == "flipped" and row["parameters"] == "axis=horizontal"
               and row["ci_low"] and row["p_adjusted"] for row in mine)
    for name in ("flip.png", "flip_change.png"):
        assert (flip_run / name).read_bytes().startswith(b"\x89PNG"), name
    html = (flip_run / "report.html").read_text()
    assert "horizontally flipped images" in html and f"plugin {PLUGIN_NAME}" in html
    assert "mirrored image equals the label" in html
    record = RunFolder(flip_run).record()
    assert record is not None
    assert {"flip.png", "flip_change.png", "report.html", "results.csv"} <= set(record["outputs"])


def test_check_compares_a_plugin_section(flip_run: Path, tmp_path: Path, cli):
    path = flip_run / "results.json"
    code, out, _ = cli("check", str(path), "--baseline", str(path))
    assert code == 0 and out.startswith("ok: 4 shared metrics")  # clean and flip, two timesteps each
    worse = json.loads(path.read_text())
    flip_entry(worse)["series"][0]["values"][1] -= 0.25
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    code, out, _ = cli("check", str(tmp_path / "worse.json"), "--baseline", str(path))
    assert code == 1
    assert "1 of 4 shared metrics regressed" in out and "flip: flipped accuracy t=1" in out


@pytest.mark.parametrize("keys,message", [
    ({"axes": "vertical"}, "section 2 (flip): unknown key 'axes'"),
    ({"axis": "diagonal"}, "section 2 (flip): axis: input should be 'horizontal' or 'vertical'"),
])
def test_bad_options_of_a_plugin_section_name_the_section(installed, cli, tmp_path: Path, keys, message):
    plan = {**PLAN, "sections": [{"kind": "clean"}, {"kind": "flip", **keys}]}
    code, _, err = cli("evaluate", "--plan", str(write_plan(tmp_path, plan)), "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r").exists()
