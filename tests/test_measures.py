"""Per-timestep measures of the model contract: the clean section averages them, the summary and the report show
them, the conformance kit checks their shape and finiteness."""

from __future__ import annotations

import torch

from pcrobust.engine import predict_measures
from pcrobust.html_report import render_html
from pcrobust.kinds.clean import Clean
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.sections import Section, SectionOptions, Unit
from pcrobust.summary import render_summary

pytest_plugins = ("pytester",)

BAD_MEASURES = '''
import torch
from pcrobust import hookimpl
from pcrobust.models import TimestepModel, TimestepOutput
from pcrobust.registry import ModelEntry


class Linear(TimestepModel):
    num_classes = 10
    default_timesteps = 1
    measure_names = ("energy",)

    def __init__(self, measure):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(784, 10, generator=torch.Generator().manual_seed(0)) / 10)
        self.measure = measure

    def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
        logits = (x.flatten(1) @ self.weight).expand(timesteps + 1, -1, -1)
        return TimestepOutput(logits, measures=self.measure(logits) if errors else None)


MEASURES = {
    "good": lambda logits: {"energy": logits.pow(2).sum(-1)},
    "per-layer": lambda logits: {"energy": logits},
    "infinite": lambda logits: {"energy": logits.sum(-1) * float("inf")},
    "undeclared": lambda logits: {},
}


@hookimpl
def pcrobust_register_models(registry):
    for name, measure in MEASURES.items():
        registry.add(ModelEntry(name=name, description="a test model", dataset="mnist-5k",
                                build=lambda w, o, measure=measure: Linear(measure).eval(),
                                weight_files=lambda w, o: []))
'''


def test_the_kit_checks_the_shape_finiteness_and_presence_of_measures(pytester):
    (pytester.path / "measureplug.py").write_text(BAD_MEASURES)
    info = pytester.path / "measureplug-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: measureplug\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pcrobust]\nmeasured = measureplug\n")
    pytester.syspathinsert()
    recorder = pytester.inline_run("-p", "no:cacheprovider", "--pcrobust-conformance=measured",
                                   "-k", "test_extras_have_their_shapes")
    passed, _, failed = recorder.listoutcomes()
    names = {report.nodeid.split("[", 1)[1].rstrip("]"): outcome
             for outcome, reports in (("passed", passed), ("failed", failed)) for report in reports}
    assert names == {"measured/good": "passed", "measured/per-layer": "failed", "measured/infinite": "failed",
                     "measured/undeclared": "failed"}


def outcome(indices: list[int], energies: list[list[float]] | None) -> tuple[Unit, dict]:
    stored: dict = {"indices": indices, "correct": [[True, False]] * len(indices)}
    if energies is not None:
        stored["measures"] = {"energy": energies}
    return Unit(f"chunk {indices[0]}", tuple(indices)), stored


def test_the_clean_section_reports_each_measures_mean_per_timestep_and_nothing_without_them():
    clean = Clean()
    section = Section(1, "clean", clean, SectionOptions())
    result = clean.assemble(section, [outcome([0, 1], [[4.0, 2.0], [6.0, 3.0]]), outcome([5], [[2.0, 1.0]])], 1)
    assert result.fields["model_measures"] == {"energy": {"mean": [4.0, 2.0], "n": 3}}
    plain = clean.assemble(section, [outcome([0, 1], None)], 1)
    assert "model_measures" not in plain.fields


def document(measures: dict | None) -> dict:
    entry = {"id": "clean", "kind": "clean", "title": "clean accuracy", "n": 3,
             "series": [{"label": "clean", "metric": "accuracy", "higher_is_better": True, "n": 3,
                         "counts": [2, 3], "values": [2 / 3, 1.0]}]}
    if measures is not None:
        entry["model_measures"] = measures
    return {"schema": "pcrobust.results/2", "timesteps": [0, 1], "sections": [entry]}


def test_summary_and_report_show_the_measures_beside_accuracy():
    doc = document({"energy": {"mean": [12.3456, 6.5], "n": 3}})
    text = render_summary(doc, None, width=100)
    row = next(line for line in text.splitlines() if line.strip().startswith("energy"))
    assert "measure (mean)" in text and "12.35" in row and "6.5" in row
    html = render_html(doc)
    assert "Measures the model reports" in html and "<td>12.35</td>" in html
    bare = document(None)
    assert "measure (mean)" not in render_summary(bare, None, width=100)
    assert "Measures the model reports" not in render_html(bare)


def test_a_model_without_measures_is_not_unrolled_again_for_them():
    calls: list[int] = []

    class Plain(TimestepModel):
        num_classes = 2
        default_timesteps = 1

        def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
            calls.append(len(x))
            return TimestepOutput(x.new_zeros(timesteps + 1, len(x), 2))

    assert predict_measures(Plain(), torch.rand(4, 1, 2, 2), 1, 2, torch.device("cpu"), progress=False) == {}
    assert calls == []
