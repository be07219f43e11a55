"""Hyperparameter sweeps through the CLI: points are full runs, paired with plain evaluations; invalid points are
skipped and recorded; heat maps; resume; grid specs refused with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pcrobust.errors import PcrobustError
from pcrobust.sweep.grid import Axis, Grid, parse_axis

BUDGET = ("--n-clean", "24", "--timesteps", "2", "--noise-sigmas", "0.3", "--n-attack", "4", "--epsilons", "0.3",
          "--steps", "2", "--device", "cpu", "--quiet")
GRID = ("--grid", "beta=0.4,0.8", "--grid", "lambda=0.1,0.3")
INVALID = "beta=0.8,lambda=0.3"  # β + λ > 1, which the model refuses


def _numbers(results: dict[str, Any]) -> list[tuple[str, str, list[Any], list[Any], list[Any]]]:
    return [(section["id"], series["label"], series["counts"], series["values"], series["change_from_t0"])
            for section in results["sections"] for series in section["series"]]


def _margins(run: Path) -> list[Any]:
    """The attacked images' margins per timestep, as the run stored them."""
    margin: list[Any] = _load(run / "units" / "attack-bim" / "images-0000.json")["outcome"]["margin"]
    return margin


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcrobust: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, str]:
    """One 2×2 β–λ sweep of the embedded default (one point invalid), run once for the tests below."""
    import contextlib
    import io

    from pcrobust.cli import main

    out = tmp_path_factory.mktemp("sweep") / "grid"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["sweep", "--plugin", "predify", *GRID, *BUDGET, "--out", str(out)])
    return out, code, stdout.getvalue(), stderr.getvalue()


def test_every_point_is_recorded_and_the_invalid_one_is_skipped_with_its_reason(swept):
    out, code, stdout, stderr = swept
    assert code == 0, stderr
    document = _load(out / "sweep.json")
    assert document["schema"] == "pcrobust.sweep/1"
    assert document["grid"] == {"beta": [0.4, 0.8], "lambda": [0.1, 0.3]}
    assert [p["folder"] for p in document["points"]] == ["beta=0.4,lambda=0.1", "beta=0.4,lambda=0.3",
                                                         "beta=0.8,lambda=0.1", INVALID]
    assert [p["status"] for p in document["points"]] == ["done", "done", "done", "skipped"]
    skipped = document["points"][3]
    assert skipped["values"] == {"beta": 0.8, "lambda": 0.3} and "β + λ" in skipped["reason"]
    assert not (out / INVALID).exists()
    assert [line for line in stderr.splitlines() if INVALID in line] == [
        f"pcrobust: warning: grid point {INVALID} skipped: {skipped['reason']}"]
    assert document["timesteps"] == [0, 1, 2]
    assert document["provenance"]["seed"] == 0 and document["provenance"]["pcrobust"]
    assert {"torch", "numpy", "plugins"} <= set(document["provenance"])
    for point in document["points"][:3]:
        results = _load(out / point["folder"] / "results.json")
        assert point["plan_digest"] == results["plan_digest"]
        pcoders = results["model"]["pcoders"]
        assert {pc["beta"] for pc in pcoders} == {point["values"]["beta"]}
        assert pcoders[0]["lambda"] == point["values"]["lambda"]
        recorded = [(s["id"], series["label"], series["values"], series["change_from_t0"])
                    for s in point["sections"] for series in s["series"]]
        assert recorded == [(i, label, values, change) for i, label, _, values, change in _numbers(results)]
        assert {s["id"] for s in point["sections"]} == {"clean", "noise", "attack bim"}
    assert "skipped beta=0.8,lambda=0.3" in stdout and "beta  lambda" in stdout


def test_each_point_equals_a_plain_evaluate_with_the_same_options(swept, cli, tmp_path):
    out, _, _, _ = swept
    for beta, lam in (("0.4", "0.1"), ("0.8", "0.1")):
        code, _, err = cli("evaluate", "--plugin", "predify", "-o", f"beta={beta}", "-o", f"lambda={lam}", *BUDGET,
                           "--out", str(tmp_path / f"{beta}-{lam}"))
        assert code == 0, err
        plain = _load(tmp_path / f"{beta}-{lam}" / "results.json")
        point = _load(out / f"beta={beta},lambda={lam}" / "results.json")
        assert point["plan_digest"] == plain["plan_digest"]
        assert _numbers(point) == _numbers(plain)
        assert [s["image_indices"] for s in point["sections"]] == [s["image_indices"] for s in plain["sections"]]
        assert _margins(out / f"beta={beta},lambda={lam}") == _margins(tmp_path / f"{beta}-{lam}")
    # the points differ from each other where the dynamics act (t > 0), not in the feedforward pass
    low, high = (_margins(out / name) for name in ("beta=0.4,lambda=0.1", "beta=0.8,lambda=0.1"))
    assert low != high
    assert [image[0] for image in low[0]] == [image[0] for image in high[0]]


def test_heat_maps_exist_for_every_section_series(swept):
    out, _, _, _ = swept
    document = _load(out / "sweep.json")
    names = sorted(document["outputs"])
    assert names == ["sweep-attack-bim-eps-0-3.png", "sweep-clean-clean.png", "sweep-noise-sigma-0-3.png"]
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / name).stat().st_size > 10_000


def test_resume_skips_finished_points_and_runs_new_ones(swept, cli, tmp_path):
    import shutil

    out = tmp_path / "grid"
    shutil.copytree(swept[0], out)
    before = {p.parent.name: p.read_bytes() for p in out.glob("*/results.json")}
    # a point whose assembly was lost continues from its stored units
    (out / "beta=0.4,lambda=0.3" / "results.json").unlink()
    code, stdout, err = cli("sweep", "--plugin", "predify", "--grid", "beta=0.4,0.8", "--grid", "lambda=0.1,0.2,0.3",
                            *BUDGET, "--out", str(out), "--resume")
    assert code == 0, err
    assert "beta=0.4,lambda=0.1: finished earlier, skipped" in stdout
    assert "beta=0.8,lambda=0.1: finished earlier, skipped" in stdout
    assert "beta=0.4,lambda=0.3: done" in stdout and "beta=0.4,lambda=0.2: done" in stdout
    for name in ("beta=0.4,lambda=0.1", "beta=0.8,lambda=0.1"):
        assert (out / name / "results.json").read_bytes() == before[name]
    resumed = _load(out / "beta=0.4,lambda=0.3" / "results.json")
    assert _numbers(resumed) == _numbers(json.loads(before["beta=0.4,lambda=0.3"]))
    document = _load(out / "sweep.json")
    assert len(document["points"]) == 6
    assert [p["status"] for p in document["points"]].count("skipped") == 1


def test_resume_refuses_a_sweep_of_another_plan(swept, cli, tmp_path):
    import shutil

    out = tmp_path / "grid"
    shutil.copytree(swept[0], out)
    before = (out / "sweep.json").read_bytes()
    code, _, err = cli("sweep", "--plugin", "predify", *GRID, *BUDGET, "--seed", "1", "--out", str(out), "--resume")
    assert "holds a sweep of another plan; resume needs the same plan" in _one_line_error(code, err)
    assert (out / "sweep.json").read_bytes() == before


def test_a_plan_files_sweep_table_sweeps_one_axis_and_a_new_sweep_replaces_the_earlier_one(swept, cli, tmp_path):
    import shutil

    out = tmp_path / "grid"
    shutil.copytree(swept[0], out)
    (out / "mine.txt").write_text("kept")
    code, toml, err = cli("plan", "--plugin", "predify", "--n-clean", "16", "--timesteps", "1", "--noise-sigmas", "",
                          "--attack", "none", "--device", "cpu")
    assert code == 0, err
    plan = tmp_path / "plan.toml"
    plan.write_text(toml + "\n[sweep]\ngrid = { alpha = [0.01, 0.05] }\n")
    code, printed, err = cli("plan", "--plan", str(plan))
    assert code == 0 and printed.endswith("[sweep.grid]\nalpha = [\n    0.01,\n    0.05,\n]\n"), printed
    code, stdout, err = cli("sweep", "--plan", str(plan), "--out", str(out), "--quiet")
    assert code == 0, err
    document = _load(out / "sweep.json")
    assert [p["folder"] for p in document["points"]] == ["alpha=0.01", "alpha=0.05"]
    assert document["outputs"] == ["sweep-clean-clean.png"]
    assert sorted(p.name for p in out.iterdir()) == [".pcrobust.lock", "alpha=0.01", "alpha=0.05", "mine.txt",
                                                     "sweep-clean-clean.png", "sweep.json"]


@pytest.mark.parametrize(("grid", "message"), [
    (("--grid", "gamma=0.1,0.2"), "model 'mnist-pnet' has no option 'gamma'; its options: beta, lambda, alpha"),
    (("--grid", "beta="), "--grid beta: empty value"),
    (("--grid", "beta=0.1,,0.2"), "--grid beta: empty value"),
    (("--grid", "beta=0.1,high"), "--grid beta: 'high' is not a number"),
    (("--grid", "beta=nan"), "--grid beta: 'nan' is not a finite number"),
    (("--grid", "beta=0.2,0.20"), "--grid beta: value 0.2 is given twice"),
    (("--grid", "beta0.2"), "--grid takes KEY=V1,V2,..."),
    (("--grid", "beta=0.2", "--grid", "beta=0.3"), "--grid beta: axis given twice"),
    (("--grid", "beta=0.2", "--grid", "lambda=0.1", "--grid", "alpha=0.1"), "a grid has at most 2 axes, got 3"),
    ((), "name at least one grid axis"),
    (("--grid", "beta=0.2", "-o", "beta=0.5"), "--grid beta: the option is also fixed in the plan's model options"),
])
def test_bad_grid_specs_are_refused_with_one_line(cli, tmp_path, grid, message):
    code, _, err = cli("sweep", "--plugin", "predify", *grid, "--out", str(tmp_path / "out"))
    assert message in _one_line_error(code, err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("table", "message"), [
    ("grid = { beta = [0.2, 'high'] }", "sweep: grid.beta[1]: input should be a valid number, got 'high'"),
    ("grid = { beta = [true] }", "sweep: grid.beta[0]: input should be a valid number, got True"),
    ("grid = { beta = [nan] }", "sweep: grid.beta[0]: input should be a finite number"),
    ("grid = { beta = [] }", "sweep.grid.beta: no values"),
    ("grid = {}", "sweep: grid: dictionary should have at least 1 item"),
    ("grids = { beta = [0.2] }", "sweep: missing key 'grid'"),
    ("grid = { beta = [0.2] }\nmode = 'all'", "sweep: unknown key 'mode'"),
    ("grid = { gamma = [0.2] }", "sweep.grid.gamma: model 'mnist-pnet' has no option 'gamma'"),
    ("grid = { beta = [0.2, 0.2] }", "sweep.grid.beta: value 0.2 is given twice"),
])
def test_bad_sweep_tables_are_refused_with_one_line(cli, tmp_path, table, message):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[model]\nplugin = "predify"\n[[sections]]\nkind = "clean"\n[sweep]\n{table}\n')
    code, _, err = cli("sweep", "--plan", str(plan), "--out", str(tmp_path / "out"))
    assert message in _one_line_error(code, err)
    assert not (tmp_path / "out").exists()


def test_a_sweep_table_is_not_a_single_run_and_not_combined_with_grid_flags(cli, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[model]\nplugin = "predify"\n[[sections]]\nkind = "clean"\n[sweep]\ngrid = { beta = [0.2] }\n')
    code, _, err = cli("evaluate", "--plan", str(plan), "--out", str(tmp_path / "out"))
    assert "the plan has a [sweep] table: run it with `pcrobust sweep`" in _one_line_error(code, err)
    code, _, err = cli("sweep", "--plan", str(plan), "--grid", "lambda=0.1", "--out", str(tmp_path / "out"))
    assert "give the grid there or with --grid, not both" in _one_line_error(code, err)
    assert not (tmp_path / "out").exists()


def test_a_sweep_is_refused_under_torchrun(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    code, _, err = cli("sweep", "--plugin", "predify", *GRID, "--out", str(tmp_path / "out"))
    assert "a sweep runs in one process" in _one_line_error(code, err)
    assert not (tmp_path / "out").exists()


def test_a_grid_with_no_valid_point_fails_with_one_line(cli, tmp_path):
    code, _, err = cli("sweep", "--plugin", "predify", "--grid", "beta=0.95", "--grid", "lambda=0.1,0.2",
                       "--n-clean", "8", "--timesteps", "1", "--attack", "none", "--noise-sigmas", "",
                       "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.splitlines()[-1].startswith("pcrobust: error: every grid point was skipped; the first: ")
    assert len([line for line in err.splitlines() if "skipped:" in line]) == 2


def test_points_are_named_by_their_values_in_canonical_form():
    grid = Grid((parse_axis("beta = 0.50, 1e-1"), parse_axis("lambda=0,0.25")))
    assert grid.axes[0] == Axis("beta", (0.5, 0.1))
    assert [p.name for p in grid.points()] == ["beta=0.5,lambda=0", "beta=0.5,lambda=0.25", "beta=0.1,lambda=0",
                                               "beta=0.1,lambda=0.25"]
    assert grid.points()[1].options() == {"beta": "0.5", "lambda": "0.25"}
    with pytest.raises(PcrobustError, match="not a number"):
        parse_axis("beta=0x1")


def test_an_axis_can_address_one_pcoder_alone(cli, tmp_path):
    """Seed 002's Fig. 3 protocol: the dynamics on one pcoder only (β = 1, λ = α = 0 for the others)."""
    out = tmp_path / "one"
    code, stdout, err = cli("sweep", "--plugin", "predify", "-o", "beta=1", "-o", "lambda=0", "-o", "alpha=0",
                            "-o", "alpha.2=0.01", "--grid", "beta.2=0.4", "--grid", "lambda.2=0.2,0.7",
                            "--n-clean", "8", "--timesteps", "1", "--noise-sigmas", "", "--attack", "none",
                            "--quiet", "--out", str(out))
    assert code == 0, err
    document = _load(out / "sweep.json")
    assert [(p["folder"], p["status"]) for p in document["points"]] == [
        ("beta.2=0.4,lambda.2=0.2", "done"), ("beta.2=0.4,lambda.2=0.7", "skipped")]
    assert "pcoder 2: need 0 ≤ β + λ ≤ 1" in document["points"][1]["reason"]
    pcoders = _load(out / "beta.2=0.4,lambda.2=0.2" / "results.json")["model"]["pcoders"]
    assert [(pc["beta"], pc["lambda"], pc["alpha"]) for pc in pcoders] == [(1.0, 0.0, 0.0), (0.4, 0.2, 0.01),
                                                                          (1.0, 0.0, 0.0)]
