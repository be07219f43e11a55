"""The reconstruction and representation section kinds: end to end through the CLI, and their pieces by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pcrobust.kinds.analysis import noisy_copies
from pcrobust.kinds.representation import correlation_distance

PLAN = """
[model]
plugin = "predify"

[data]
n = 8

[run]
timesteps = 2
device = "cpu"
batch_size = {batch_size}

[[sections]]
kind = "reconstruction"

[[sections]]
kind = "representation"
"""


def _run(cli, folder: Path, batch_size: int = 8) -> dict:
    folder.mkdir(parents=True)
    plan = folder / "plan.toml"
    plan.write_text(PLAN.format(batch_size=batch_size))
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(folder / "out"))
    assert code == 0, err
    return json.loads((folder / "out" / "results.json").read_text())


def test_both_kinds_run_normalised_by_t0_alike_across_runs_and_batch_sizes(cli, tmp_path: Path):
    first = _run(cli, tmp_path / "a")
    kinds = {section["kind"]: section for section in first["sections"]}
    assert {"reconstruction", "representation"} <= set(kinds)
    for kind in ("reconstruction", "representation"):
        measures = kinds[kind]["measures"]
        assert measures
        for measure in measures:
            assert measure["normalised"]["values"][0] == 1.0, (kind, measure["label"])
    again = _run(cli, tmp_path / "b")
    assert _measures(again) == _measures(first)
    # Another batch size may pick other float32 convolution algorithms: equal up to rounding.
    _assert_close(_measures(_run(cli, tmp_path / "c", batch_size=3)), _measures(first))


def _measures(results: dict) -> list:
    return [section.get("measures") for section in results["sections"]]


def _assert_close(actual: object, expected: object, where: str = "measures") -> None:
    """Equal structure and text; numbers equal to float32 rounding."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key in expected:
            _assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_close(a, e, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-4, abs=1e-6), where
    elif isinstance(expected, str) and isinstance(actual, str) and any(ch.isdigit() for ch in expected):
        assert actual.split("(")[0] == expected.split("(")[0], where
    else:
        assert actual == expected, where


def test_noise_is_drawn_per_image_and_reproducibly():
    images = torch.full((2, 1, 4, 4), 0.5)
    noisy = noisy_copies(images, 0.1, [0, 1], seed=7)
    assert not torch.equal(noisy[0], noisy[1])
    assert torch.equal(noisy, noisy_copies(images, 0.1, [0, 1], seed=7))
    assert torch.equal(noisy[1], noisy_copies(images[1:], 0.1, [1], seed=7)[0])


def test_correlation_distance_by_hand():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4)
    b = torch.tensor([1.0, 3.0, 2.0, 4.0]).reshape(1, 1, 4)
    # centred: (-1.5, -0.5, 0.5, 1.5) and (-1.5, 0.5, -0.5, 1.5); r = (2.25 - 0.25 - 0.25 + 2.25) / 5 = 0.8
    assert correlation_distance(a, b).item() == pytest.approx(0.2)
    assert correlation_distance(a, a).item() == pytest.approx(0.0)
    assert correlation_distance(a, -a).item() == pytest.approx(2.0)


ANALYSES = ["--plugin", "predify", "--n-clean", "6", "--timesteps", "2", "--attack", "none", "--noise-sigmas", "",
            "--quiet"]


def test_analyses_flag_writes_both_sections_per_layer_and_timestep_with_plots(cli, tmp_path: Path):
    code, out, _ = cli("plan", *ANALYSES[:-1], "--analyses", "all", "--analysis-sigmas", "0,0.2", "--analysis-n", "4")
    assert code == 0 and 'kind = "reconstruction"' in out and 'kind = "representation"' in out
    code, _, err = cli("evaluate", *ANALYSES, "--analyses", "all", "--analysis-sigmas", "0,0.2", "--analysis-n", "4",
                       "--out", str(tmp_path))
    assert code == 0, err
    kinds = {s["kind"]: s for s in json.loads((tmp_path / "results.json").read_text())["sections"]}
    assert kinds["reconstruction"]["sigmas"] == [0.0, 0.2] and kinds["representation"]["sigmas"] == [0.2]
    for kind in ("reconstruction", "representation"):
        measures = kinds[kind]["measures"]
        layers = {m["key"]["layer"] for m in measures}
        assert len(layers) >= 2, (kind, layers)  # per layer
        for measure in measures:
            assert measure["n"] == 4
            values, normalised = measure["values"], measure["normalised"]["values"]
            assert len(values) == 3 and normalised[0] == 1.0  # per timestep, ÷ t=0
            assert normalised[2] == pytest.approx(values[2] / values[0])
    for name in ("reconstruction", "representation"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (tmp_path / f"{name}_absolute.png").is_file()


@pytest.mark.parametrize("flags, named", [
    (["--analyses", "reconstruction,nope"], "nope"),
    (["--analyses", ""], "--analyses"),
    (["--analysis-sigmas", "0.1"], "--analyses"),
    (["--analyses", "all", "--analysis-sigmas", "a"], "--analysis-sigmas"),
    (["--analyses", "representation", "--analysis-sigmas", "0"], "representation no σ"),
])
def test_bad_analyses_flags_are_one_line_and_exit_2(cli, tmp_path: Path, flags: list[str], named: str):
    code, _, err = cli("evaluate", *ANALYSES, *flags, "--out", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err, err


@pytest.mark.parametrize("kind", ["representation"])
def test_a_model_without_representations_is_refused_in_one_line(kind, tmp_path: Path):
    from pcrobust.errors import PcrobustError
    from pcrobust.evaluation import run
    from pcrobust.plan import parse_plan
    from pcrobust.run.store import RunFolder
    from tests.test_contract import Linear, host_with

    host = host_with(Linear())
    plan = parse_plan({"model": {"plugin": "broken"}, "data": {"n": 4}, "run": {"device": "cpu"},
                       "sections": [{"kind": kind}]}, host.registries)
    with pytest.raises(PcrobustError, match="offers no per-layer representations") as caught:
        run(host, plan, RunFolder(tmp_path / "out"), progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
