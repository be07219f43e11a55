"""Evaluation plans end to end: printed plans run like their flags, validation names section and key, several
attack sections in one plan, untargeted robust accuracy, the worst case over attacks, and the interval gate."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tomllib
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

from pcrobust.cli import main
from pcrobust.evaluation import run
from pcrobust.names import slug
from pcrobust.plan import parse_plan
from pcrobust.plugins import PluginHost
from pcrobust.results import write_json
from pcrobust.run.store import RunFolder
from pcrobust.stats import binomial_interval

FLAGS = ("--plugin", "predify", "--n-clean", "24", "--timesteps", "1", "--noise-sigmas", "0.2", "--n-attack", "3",
         "--epsilons", "0.3", "--steps", "2", "--device", "cpu")

# One plan, one run: the same attack twice with different budgets, the same attack untargeted under a name.
ATTACKS_PLAN = """
[model]
plugin = "predify"

[data]
n = 24

[run]
timesteps = 1
device = "cpu"

[[sections]]
kind = "clean"

[[sections]]
kind = "attack"
attack = "bim"
epsilons = [0.2, 0.3]
n = 6
options = { steps = 4, rel_stepsize = 0.3 }

[[sections]]
kind = "attack"
attack = "bim"
epsilons = [0.3]
n = 6
options = { steps = 5, rel_stepsize = 0.25, random_start = true }

[[sections]]
kind = "attack"
attack = "bim"
name = "strong untargeted"
criterion = "untargeted"
epsilons = [0.2]
n = 6
options = { steps = 4, rel_stepsize = 0.3 }
"""


def quiet_main(*args: str) -> tuple[int, str]:
    """``pcrobust ARGS...`` in-process with stdout captured (usable from module-scoped fixtures)."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(list(args))
    return code, buffer.getvalue()


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "results.json").read_text())


def section(results: dict[str, Any], section_id: str) -> dict[str, Any]:
    return next(s for s in results["sections"] if s["id"] == section_id)


def stored(folder: Path, section_id: str) -> list[dict[str, Any]]:
    """The stored outcomes of every unit of a section, in unit order, read through the run folder."""
    store = RunFolder(folder)
    record = store.record()
    assert record is not None
    outcomes = [store.load_unit(section_id, unit["key"], record["plan_digest"]) for unit in record["units"][section_id]]
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def per_image(outcomes: list[dict[str, Any]], key: str, row: int | None = None) -> dict[int, np.ndarray]:
    """Dataset index → per-timestep bools stored under ``key`` (``row`` picks an ε of an attack outcome)."""
    found = {}
    for outcome in outcomes:
        rows = outcome[key] if row is None else outcome[key][row]
        for index, values in zip(outcome["indices"], rows, strict=True):
            found[int(index)] = np.asarray(values, dtype=bool)
    return found


# --- printed plans ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``pcrobust plan FLAGS`` saved to a file, run with ``--plan``; and ``pcrobust evaluate FLAGS``."""
    root = tmp_path_factory.mktemp("printed")
    code, text = quiet_main("plan", *FLAGS)
    assert code == 0
    (root / "printed.toml").write_text(text)
    assert quiet_main("evaluate", "--plan", str(root / "printed.toml"), "--quiet", "--out", str(root / "plan"))[0] == 0
    assert quiet_main("evaluate", *FLAGS, "--quiet", "--out", str(root / "flags"))[0] == 0
    return {"text": text, "plan": root / "plan", "flags": root / "flags", "root": root}


def test_a_printed_plan_runs_like_its_flags(printed):
    by_plan, by_flags = load(printed["plan"]), load(printed["flags"])
    assert [s["id"] for s in by_plan["sections"]] == ["clean", "noise", "attack bim"]
    assert by_plan["sections"] == by_flags["sections"]
    assert by_plan["plan"] == by_flags["plan"]
    assert by_plan["plan_digest"] == by_flags["plan_digest"]
    assert by_plan["worst_case"] == by_flags["worst_case"] == []
    attack = section(by_plan, "attack bim")
    assert attack["n"] == 3 and attack["parameters"]["options"]["steps"] == 2


def test_the_plan_is_saved_in_the_folder_and_in_results(printed, cli):
    expected = tomllib.loads(printed["text"])
    for folder in (printed["plan"], printed["flags"]):
        saved = (folder / "plan.toml").read_text()
        results = load(folder)
        assert tomllib.loads(saved) == expected == results["plan"]
        assert results["plan_digest"] == hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()
        code, out, _ = cli("plan", "--plan", str(folder / "plan.toml"))
        assert code == 0 and out == printed["text"]  # the canonical form is a fixed point
    assert expected["data"]["n"] == 24 and expected["run"]["timesteps"] == 1
    assert expected["sections"][1] == {"kind": "noise", "sigmas": [0.2]}
    assert expected["sections"][2]["epsilons"] == [0.3] and expected["sections"][2]["norm"] == "linf"


# --- validation ---------------------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "model": {"plugin": "predify"},
    "data": {"n": 40},
    "run": {"timesteps": 1, "device": "cpu"},
    "sections": [{"kind": "clean"}, {"kind": "attack", "attack": "bim", "epsilons": [0.3], "n": 3}],
}


def _set(path: tuple[Any, ...], value: Any):
    def edit(plan: dict[str, Any]) -> None:
        *parents, last = path
        for key in parents:
            plan = plan[key]
        plan[last] = value
    return edit


def _delete(key: str):
    return lambda plan: plan.pop(key)


def _update(number: int, **keys: Any):
    return lambda plan: plan["sections"][number - 1].update(keys)


INVALID = [
    ("top-level key", _set(("report",), {"html": True}), "plan: unknown key 'report'"),
    ("section key", _update(2, steps=3), "section 2 (attack bim): unknown key 'steps'"),
    ("attack option key", _update(2, options={"step": 3}), "section 2 (attack bim): options: unknown key 'step'"),
    ("attack option value", _update(2, options={"steps": 0}),
     "section 2 (attack bim): options: steps: input should be greater than or equal to 1"),
    ("kind", _set(("sections", 1), {"kind": "blank"}),
     "section 2: unknown section kind 'blank'; available: attack, clean, corruption, diagnostics, gradcam, noise"),
    ("no kind", _set(("sections", 1), {"attack": "bim"}), "section 2: missing key 'kind'"),
    ("zero epsilon", _update(2, epsilons=[0.1, 0.0]),
     "section 2 (attack bim): epsilons[1]: input should be greater than 0"),
    ("negative epsilon", _update(2, epsilons=[-0.1]),
     "section 2 (attack bim): epsilons[0]: input should be greater than 0"),
    ("linf epsilon above 1", _update(2, epsilons=[0.3, 1.5]),
     "section 2 (attack bim): linf epsilons must lie in (0, 1]"),
    ("norm not offered", _update(2, norm="l2"),
     "section 2 (attack bim): norm 'l2' is not offered by bim; choose from linf"),
    ("untargeted with target mode", _update(2, criterion="untargeted", target_mode="random"),
     "section 2 (attack bim): target_mode applies to targeted attacks only"),
    ("data n = 0", _set(("data", "n"), 0), "data: n: input should be greater than or equal to 1"),
    ("attack n = 0", _update(2, n=0), "section 2 (attack bim): n: input should be greater than or equal to 1"),
    ("string data n", _set(("data", "n"), "forty"), "data: n: input should be a valid integer"),
    ("string attack n", _update(2, n="three"), "section 2 (attack bim): n: input should be a valid integer"),
    ("string epsilons", _update(2, epsilons="0.3"), "section 2 (attack bim): epsilons: input should be a valid tuple"),
    ("missing model", _delete("model"), "plan: missing table 'model'"),
    ("missing plugin", _set(("model",), {"name": "pnet"}), "model: missing key 'plugin'"),
    ("empty sections", _set(("sections",), []), "plan: 'sections' must be a non-empty list"),
    ("no sections", _delete("sections"), "plan: 'sections' must be a non-empty list"),
    ("section not a table", _set(("sections",), [1]), "section 1: expected a table, got int"),
    ("duplicate name", lambda plan: [s.update(name="base") for s in plan["sections"]],
     "section 2 (attack bim): name 'base' is used by an earlier section"),
    ("names stored alike", lambda plan: [plan["sections"][0].update(name="Base case"),
                                         plan["sections"][1].update(name="base-case")],
     "section 2 (attack bim): name 'base-case' is used by an earlier section (stored under the same name as "
     "'Base case')"),
]


def assert_refused(result: tuple[int, str, str], message: str, out: Path) -> None:
    code, _, err = result
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert not out.exists()


@pytest.mark.parametrize("edit,message", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_plans_are_one_line_exit_2_and_leave_no_folder(cli, tmp_path: Path, edit, message):
    plan = copy.deepcopy(BASE)
    edit(plan)
    (tmp_path / "plan.toml").write_text(tomli_w.dumps(plan))
    assert_refused(cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--quiet", "--out", str(tmp_path / "r")),
                   message, tmp_path / "r")


def test_malformed_toml_and_flags_beside_a_plan_are_refused(cli, tmp_path: Path):
    out = tmp_path / "r"
    (tmp_path / "broken.toml").write_text('[model\nplugin = "predify"\n')
    assert_refused(cli("evaluate", "--plan", str(tmp_path / "broken.toml"), "--out", str(out)),
                   f"plan file {tmp_path / 'broken.toml'} is not valid TOML", out)
    (tmp_path / "plan.toml").write_text(tomli_w.dumps(BASE))
    assert_refused(cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--epsilons", "0.1", "--out", str(out)),
                   "--plan cannot be combined with --epsilons: edit the plan instead", out)
    assert_refused(cli("evaluate", "--plan", str(tmp_path / "missing.toml"), "--out", str(out)),
                   "missing.toml does not exist", out)


def test_derived_ids_never_take_an_id_already_used():
    registries = PluginHost().registries
    attack = {"kind": "attack", "epsilons": [0.3]}
    plan = parse_plan({"model": {"plugin": "predify"},
                       "sections": [{**attack, "name": "attack bim #2"}, attack, attack, {**attack, "name": "Clean"},
                                    {"kind": "clean"}]}, registries)
    ids = [s.id for s in plan.sections]
    assert ids == ["attack bim #2", "attack bim", "attack bim #3", "Clean", "clean #2"]
    assert len({slug(i) for i in ids}) == len(ids)  # every section's units have their own files


# --- several attack sections in one plan --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attacks_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The attacks plan run through the library (no plots needed here); results.json written as the CLI does."""
    out = tmp_path_factory.mktemp("attacks")
    host = PluginHost()
    plan = parse_plan(tomllib.loads(ATTACKS_PLAN), host.registries)
    results = run(host, plan, RunFolder(out), progress=False)
    assert results is not None
    write_json(results, out / "results.json")
    return out


def test_one_attack_twice_with_its_own_budgets(attacks_run: Path):
    results = load(attacks_run)
    assert [s["id"] for s in results["sections"]] == ["clean", "attack bim", "attack bim #2", "strong untargeted"]
    first, second, named = (section(results, i) for i in ("attack bim", "attack bim #2", "strong untargeted"))
    assert first["parameters"]["epsilons"] == [0.2, 0.3] and second["parameters"]["epsilons"] == [0.3]
    assert first["parameters"]["options"] == {"steps": 4, "rel_stepsize": 0.3, "random_start": False,
                                                  "backend": "pcrobust"}
    assert second["parameters"]["options"] == {"steps": 5, "rel_stepsize": 0.25, "random_start": True,
                                                   "backend": "pcrobust"}
    assert first["attack"]["options"] == first["parameters"]["options"]
    assert second["attack"]["options"] == second["parameters"]["options"]
    assert [s["label"] for s in first["series"]] == ["ε=0.2", "ε=0.3"]
    assert [s["label"] for s in second["series"]] == ["ε=0.3"]
    assert named["parameters"]["name"] == "strong untargeted" and named["title"] == "untargeted bim (L∞)"
    assert "name" not in first["parameters"]
    assert all(s["kind"] == "attack" and s["attack"]["name"] == "bim" and s["n"] == 6 for s in (first, second, named))
    store = RunFolder(attacks_run)
    files = {store.unit_file(s["id"], "images-0000") for s in (first, second, named)}
    assert len(files) == 3 and all(f.is_file() for f in files)


def test_untargeted_sections_report_robust_accuracy(attacks_run: Path):
    results = load(attacks_run)
    entry = section(results, "strong untargeted")
    assert entry["criterion"] == "untargeted"
    assert "target_mode" not in entry and "target_shift" not in entry
    assert entry["attack"]["targeted"] is False
    (series,) = entry["series"]
    assert series["metric"] == "robust_accuracy" and series["higher_is_better"] is True
    broken = per_image(stored(attacks_run, entry["id"]), "success", row=0)
    assert sorted(broken) == sorted(entry["image_indices"])
    fraction_broken = np.mean([broken[i] for i in entry["image_indices"]], axis=0)
    assert series["values"] == pytest.approx(list(1 - fraction_broken))
    assert series["counts"] == [int(c) for c in 6 - np.sum([broken[i] for i in entry["image_indices"]], axis=0)]
    correct = per_image(stored(attacks_run, "clean"), "correct")
    clean_of_attacked = np.mean([correct[i] for i in entry["image_indices"]], axis=0)
    assert list(clean_of_attacked) == [1.0, 1.0]  # chosen correct at every timestep
    assert series["values"][0] <= clean_of_attacked[0]
    assert 0 < series["values"][0] < 1, "the budget should break some images but not all"


def test_worst_case_combines_sections_sharing_a_threat(attacks_run: Path):
    results = load(attacks_run)
    (worst,) = results["worst_case"]  # ε=0.2 targeted and ε=0.2 untargeted each have a single section
    assert worst["threat"] == {"norm": "linf", "epsilon": 0.3, "criterion": "targeted"}
    assert worst["sections"] == ["attack bim", "attack bim #2"] and worst["kind"] == "worst-case"
    (series,) = worst["series"]
    assert series["metric"] == "success_rate" and series["higher_is_better"] is False
    shared = worst["image_indices"]
    members = {"attack bim": 1, "attack bim #2": 0}  # the row of ε=0.3 in each section
    successes = {}
    for section_id, row in members.items():
        entry = section(results, section_id)
        assert set(shared) <= set(entry["image_indices"])
        successes[section_id] = per_image(stored(attacks_run, section_id), "success", row)
    counts = {section_id: np.sum([broken[i] for i in shared], axis=0) for section_id, broken in successes.items()}
    for t, count in enumerate(series["counts"]):
        assert all(count >= c[t] for c in counts.values())
        assert count <= sum(c[t] for c in counts.values())
    either = np.sum([successes["attack bim"][i] | successes["attack bim #2"][i] for i in shared], axis=0)
    assert series["counts"] == [int(c) for c in either]
    assert series["n"] == len(shared) == 6
    assert "interval" in series and "verdict" in series


# --- the interval gate --------------------------------------------------------------------------------------------


def _moved(results: dict[str, Any], section_id: str, label: str, t: int, count: int) -> dict[str, Any]:
    """A copy of ``results`` in which one series has ``count`` events at ``t``, with its interval recomputed."""
    moved = copy.deepcopy(results)
    series = next(s for s in section(moved, section_id)["series"] if s["label"] == label)
    level, method = moved["statistics"]["level"], moved["statistics"]["interval"]
    series["counts"][t] = count
    series["values"][t] = count / series["n"]
    low, high = binomial_interval(count, series["n"], level, method)
    series["interval"]["low"][t], series["interval"]["high"][t] = low, high
    return moved


def test_check_outside_interval_ignores_moves_inside_the_interval(attacks_run: Path, tmp_path: Path, cli):
    baseline_path = attacks_run / "results.json"
    baseline = load(attacks_run)
    series = next(s for s in section(baseline, "attack bim")["series"] if s["label"] == "ε=0.3")
    n, before = series["n"], series["counts"][1]
    assert before <= n - 3, "the tests below need room for the success rate to worsen"
    old = series["values"][1]

    near = _moved(baseline, "attack bim", "ε=0.3", 1, before + 1)  # one more image broken: worse by 1/n
    near_series = next(s for s in section(near, "attack bim")["series"] if s["label"] == "ε=0.3")
    assert near_series["values"][1] - old > 0.02
    assert near_series["interval"]["low"][1] <= old <= near_series["interval"]["high"][1]
    (tmp_path / "near.json").write_text(json.dumps(near))
    code, out, _ = cli("check", str(tmp_path / "near.json"), "--baseline", str(baseline_path), "--tolerance", "0.02")
    assert code == 1 and "attack bim (linf attacked=t scored=t): ε=0.3 success_rate t=1" in out
    code, out, _ = cli("check", str(tmp_path / "near.json"), "--baseline", str(baseline_path), "--tolerance", "0.02",
                       "--outside-interval")
    assert code == 0 and out.startswith("ok:")

    far = _moved(baseline, "attack bim", "ε=0.3", 1, n)  # every image broken
    far_series = next(s for s in section(far, "attack bim")["series"] if s["label"] == "ε=0.3")
    assert not far_series["interval"]["low"][1] <= old <= far_series["interval"]["high"][1]
    (tmp_path / "far.json").write_text(json.dumps(far))
    for flags in ((), ("--outside-interval",)):
        code, out, _ = cli("check", str(tmp_path / "far.json"), "--baseline", str(baseline_path), "--tolerance",
                           "0.02", *flags)
        assert code == 1, flags
        assert out.startswith("1 of ") and "ε=0.3 success_rate t=1" in out
