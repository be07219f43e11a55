"""The CLI end to end on the embedded default: evaluate, report, check, train, and bad input."""

from __future__ import annotations

import json
import os
import pickle
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import tomli_w
import torch

from pcrobust.results import SCHEMA
from tests.conftest import REPO

SMALL = ("--n-clean", "120", "--n-attack", "12", "--timesteps", "2", "--epsilons", "0.2,0.3",
         "--noise-sigmas", "0.2", "--quiet", "--device", "cpu")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pcrobust.cli import main

    out = tmp_path_factory.mktemp("run")
    assert main(["evaluate", "--plugin", "predify", *SMALL, "--out", str(out)]) == 0
    return out


def _section(results: dict, section_id: str) -> dict:
    return next(s for s in results["sections"] if s["id"] == section_id)


def test_evaluate_writes_json_csv_and_plots(small_run: Path):
    results = json.loads((small_run / "results.json").read_text())
    assert results["schema"] == SCHEMA
    assert results["timesteps"] == [0, 1, 2]
    assert [s["id"] for s in results["sections"]] == ["clean", "noise", "attack bim"]
    clean = _section(results, "clean")["series"][0]
    assert clean["n"] == 120 and len(clean["values"]) == 3
    assert all(0.85 < a <= 1 for a in clean["values"])
    attack = _section(results, "attack bim")
    assert [s["key"]["epsilon"] for s in attack["series"]] == [0.2, 0.3]
    assert attack["attack"]["name"] == "bim" and attack["attack"]["norm"] == "linf" and attack["attack"]["targeted"]
    assert attack["attack"]["plugin"] == "attacks" and attack["plugin"] == "builtin"
    assert attack["attacked_readout"] == "t" and attack["scored_readout"] == "t"
    assert attack["gradient_mode"] == "exact"
    assert attack["n"] == 12 and len(attack["image_indices"]) == 12
    assert attack["attack"]["options"] == {"steps": 10, "rel_stepsize": 0.2, "random_start": False,
                                          "backend": "pcrobust"}
    for series in attack["series"]:
        assert series["metric"] == "success_rate" and series["higher_is_better"] is False
        assert series["values"] == [s / 12 for s in series["counts"]]
        assert series["change_from_t0"][0] == 0
    assert attack["series"][1]["values"][0] >= attack["series"][0]["values"][0]
    noise = _section(results, "noise")["series"]
    assert noise[0]["key"] == {"sigma": 0.2} and len(noise[0]["values"]) == 3
    provenance = results["provenance"]
    assert provenance["seed"] == 0 and provenance["gradient_mode"] == "exact" and provenance["device"] == "cpu"
    assert set(provenance["plugins"]) >= {"predify", "attacks", "datasets"} and provenance["torch"]
    assert re.fullmatch(r"[0-9a-f]{64}", provenance["weights"]["mnist_pnet.pt"])
    assert results["plan"]["sections"][2]["epsilons"] == [0.2, 0.3]
    assert results["model"]["normalization"]["mean"] == pytest.approx([0.1307])
    assert [p["beta"] for p in results["model"]["pcoders"]] == [0.8, 0.8, 0.8]
    for name in ("results.csv", "clean.png", "attack-bim.png", "noise.png", "plan.toml", "run.json"):
        assert (small_run / name).stat().st_size > 0, name
    rows = (small_run / "results.csv").read_text().splitlines()
    assert rows[0].startswith("section,kind,series,parameters,metric,timestep,n,count,value")
    assert len(rows) == 1 + 3 + 3 + 2 * 3


def _apart_from_time_and_chunking(path: Path) -> dict[str, Any]:
    """results.json without its time stamp, the two plan fields that set batches and units, and so the plan's
    digest."""
    results = json.loads(path.read_text())
    del results["created"], results["plan_digest"]
    for key in ("batch_size", "images_per_unit"):
        del results["plan"]["run"][key]
    return results


def test_runs_are_deterministic_whatever_the_batch_size_and_chunking(small_run: Path, tmp_path: Path, cli):
    code, _, _ = cli("evaluate", "--plugin", "predify", *SMALL, "--batch-size", "37", "--images-per-unit", "7",
                     "--out", str(tmp_path))
    assert code == 0
    first = _apart_from_time_and_chunking(small_run / "results.json")
    again = _apart_from_time_and_chunking(tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["plan"]["run"]["images_per_unit"] == 7
    assert first == again


def test_report_regenerates_csv_and_plots(small_run: Path, tmp_path: Path, cli):
    code, out, _ = cli("report", str(small_run / "results.json"), "--out", str(tmp_path))
    assert code == 0
    assert (tmp_path / "results.csv").read_text() == (small_run / "results.csv").read_text()
    assert (tmp_path / "attack-bim.png").exists() and "noise.png" in out


def test_check_exit_codes(small_run: Path, tmp_path: Path, cli):
    path = small_run / "results.json"
    assert cli("check", str(path), "--baseline", str(path))[0] == 0
    worse = json.loads(path.read_text())
    worse["sections"][0]["series"][0]["values"][1] -= 0.1
    worse["sections"][2]["series"][0]["values"][2] += 0.05
    worse_path = tmp_path / "worse.json"
    worse_path.write_text(json.dumps(worse))
    code, out, _ = cli("check", str(worse_path), "--baseline", str(path), "--tolerance", "0.01")
    assert code == 1
    assert "clean: clean accuracy t=1" in out
    assert "attack bim (linf attacked=t scored=t): ε=0.2 success_rate t=2" in out
    assert cli("check", str(worse_path), "--baseline", str(path), "--tolerance", "0.2")[0] == 0
    assert cli("check", str(path), "--baseline", str(worse_path))[0] == 0  # better than the baseline is fine
    strings = json.loads(path.read_text())
    clean = strings["sections"][0]["series"][0]
    clean["values"] = [str(v) for v in clean["values"]]
    (tmp_path / "strings.json").write_text(json.dumps(strings))
    for bad in (tmp_path / "strings.json", tmp_path / "missing.json"):
        code, _, err = cli("check", str(bad), "--baseline", str(path))
        assert code == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (("--plugin", "nope"), "unknown plugin 'nope'; available: attacks, cnnf, datasets, "),  # then any third-party ones
    (("--plugin", "predify", "--model", "pvgg"), "unknown model 'pvgg'"),
    (("--plugin", "predify", "--attack", "pgd"), "section 3 (attack pgd): unknown attack 'pgd'; available: bim"),
    (("--plugin", "predify", "--epsilons", "0.1,abc"), "--epsilons takes comma-separated numbers"),
    (("--plugin", "predify", "--epsilons", "2"), "section 3 (attack bim): linf epsilons must lie in (0, 1]"),
    (("--plugin", "predify", "--epsilons", "-0.1"),
     "section 3 (attack bim): epsilons[0]: input should be greater than 0"),
    (("--plugin", "predify", "-o", "beta=0.9", "-o", "lambda=0.2"), "β + λ"),
    (("--plugin", "predify", "-o", "beta"), "options are KEY=VALUE"),
    (("--plugin", "predify", "--weights", "nowhere.pt"), "checkpoint nowhere.pt does not exist"),
    (("--plugin", "predify", "--gradient-mode", "bpda"), "gradient mode 'bpda' not offered"),
    (("--plugin", "predify", "--steps", "0"), "section 3 (attack bim): options: steps: input should be greater than"),
    (("--plugin", "predify", "--epsilons", ""), "an attack needs at least one epsilon"),
    (("--plugin", "predify", "--seed", "-1"), "data: seed: input should be greater than or equal to 0"),
    (("--plugin", "predify", "--criterion", "untargeted", "--target-shift", "2"),
     "section 3 (attack bim): target_shift applies to targeted attacks only"),
    (("--plugin", "predify", "--device", "tpu"), "run: device: input should be 'auto', 'cpu' or 'cuda'"),
    (("--plugin", "predify", "--target-shift", "10", "--n-clean", "20", "--timesteps", "0", "--noise-sigmas", ""),
     "section 2 (attack bim): target shift 10 maps every label onto itself"),
    (("--plugin", "predify", "--split", "val"), "unknown split 'val'"),
    (("--plugin", "predify", "--model", "custom"), "has no default dataset; name one with --dataset"),
    (("--plugin", "predify", "--timesteps", "10000"), "run: timesteps: input should be less than or equal to 1000"),
    (("--plugin", "predify", "--dataset", "foolbox-imagenet"),
     "model 'mnist-pnet' of plugin 'predify' failed on 3 images of shape [3, 224, 224]: "),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path: Path, args, message):
    code, out, err = cli("evaluate", *args, "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()


class Payload:
    """Runs a shell command when unpickled: what a malicious checkpoint carries."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("touch pwned",)


def test_checkpoints_that_are_unsafe_or_corrupt_are_refused_in_one_line(cli, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"backbone": Payload()}, tmp_path / "payload.pt")
    with open(tmp_path / "legacy.pt", "wb") as handle:
        pickle.dump({"backbone": Payload()}, handle)
    shipped = (REPO / "plugins" / "pcrobust_predify" / "weights" / "mnist_pnet.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(shipped[:300])
    (tmp_path / "text.pt").write_text("not a checkpoint")
    expected = {"payload.pt": "was refused as unsafe: it holds Python objects, not only tensors (it names posix.system)"
                              "; nothing in it was run",
                "legacy.pt": "is not a PyTorch checkpoint (corrupt, or a plain pickle, which is refused unread)",
                "truncated.pt": "is corrupt or truncated: torch cannot read it",
                "text.pt": "is not a PyTorch checkpoint (corrupt, or a plain pickle, which is refused unread)"}
    for name, message in expected.items():
        code, _, err = cli("evaluate", "--plugin", "predify", "--weights", name, "--quiet", "--out", "r")
        assert code == 2 and err.strip() == f"pcrobust: error: checkpoint {name} {message}", err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "r").exists()


def test_unwritable_output_is_one_line(cli, tmp_path: Path):
    (tmp_path / "taken").write_text("a file where the results folder should go")
    code, _, err = cli("evaluate", "--plugin", "predify", "--attack", "none", "--noise-sigmas", "", "--n-clean", "10",
                       "--timesteps", "0", "--quiet", "--out", str(tmp_path / "taken"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "taken" in err


def test_train_command_writes_a_checkpoint_that_evaluate_uses(cli, tmp_path: Path):
    ckpt = tmp_path / "quick.pt"
    code, out, _ = cli("train", "--plugin", "predify", "--out", str(ckpt), "-o", "backbone_epochs=1",
                       "-o", "feedback_epochs=1")
    assert code == 0 and ckpt.exists()
    code, _, _ = cli("evaluate", "--plugin", "predify", "--weights", str(ckpt), "--attack", "none",
                     "--n-clean", "50", "--timesteps", "1", "--quiet", "--out", str(tmp_path / "r"))
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert code == 0 and [s["id"] for s in results["sections"]] == ["clean", "noise"]
    assert "quick.pt" in results["provenance"]["weights"]
    twin = tmp_path / "twin.pt"
    cli("train", "--plugin", "predify", "--out", str(twin), "-o", "backbone_epochs=1", "-o", "feedback_epochs=1")
    assert twin.read_bytes() == ckpt.read_bytes(), "training must reproduce a checkpoint byte for byte"
    assert cli("train", "--plugin", "predify", "--out", str(ckpt), "-o", "epochs=1")[0] == 2


def test_shipped_baseline_holds_the_default_plan(cli):
    baseline = json.loads((REPO / "baselines" / "predify-mnist-pnet.json").read_text())
    assert baseline["schema"] == SCHEMA
    code, out, _ = cli("plan", "--plugin", "predify")
    assert code == 0 and tomllib.loads(out) == baseline["plan"]


def test_ci_script_runs_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    ci = (REPO / ".ci" / "run").read_text()
    assert len(commands) == 2
    for command in commands:
        assert command in ci


def test_click_runner_sees_the_same_exit_codes_as_the_shell(small_run: Path, tmp_path: Path):
    from click.testing import CliRunner

    from pcrobust.cli import cli as group

    runner = CliRunner()
    bad = runner.invoke(group, ["evaluate", "--plugin", "predify", "--epsilons", "2", "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "linf epsilons must lie in (0, 1]" in bad.output
    worse = json.loads((small_run / "results.json").read_text())
    worse["sections"][0]["series"][0]["values"][0] -= 0.5
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    gate = runner.invoke(group, ["check", str(tmp_path / "worse.json"), "--baseline", str(small_run / "results.json")])
    assert gate.exit_code == 1 and "clean: clean accuracy t=0" in gate.output


def test_schema_1_results_are_read_by_check_and_report(cli, tmp_path: Path):
    old = REPO / "tests" / "data" / "predify-mnist-pnet-schema1.json"
    current = REPO / "baselines" / "predify-mnist-pnet.json"
    code, out, _ = cli("check", str(current), "--baseline", str(old), "--tolerance", "0")
    assert code == 0 and "ok: 63 shared metrics" in out, "the numbers of the default run did not change"
    code, out, _ = cli("report", str(old), "--out", str(tmp_path))
    assert code == 0 and (tmp_path / "attack-bim.png").is_file() and (tmp_path / "report.html").is_file()


def test_presets_are_listed_and_the_default_preset_is_the_default_plan(cli):
    code, out, _ = cli("presets")
    assert code == 0 and "predify-mnist (predify)" in out and "predify-mnist-paper (predify)" in out
    assert cli("plan", "--preset", "predify-mnist")[1] == cli("plan", "--plugin", "predify")[1]
    paper = tomllib.loads(cli("plan", "--preset", "predify-mnist-paper")[1])
    assert paper["sections"][2]["n"] == 1000 and paper["sections"][2]["selection"] == "correct-at-every-timestep"
    code, _, err = cli("plan", "--preset", "predify-mnist", "--epsilons", "0.1")
    assert code == 2 and "--preset cannot be combined with --epsilons" in err


def test_attacks_shorthand_makes_one_section_per_attack_at_its_default_budget(cli):
    code, out, _ = cli("plan", "--plugin", "predify", "--attacks", "bim,rpgd", "--n-attack", "7")
    sections = tomllib.loads(out)["sections"]
    assert code == 0 and [s.get("attack") for s in sections] == [None, None, "bim", "rpgd"]
    assert [(s["norm"], s["epsilons"], s["n"]) for s in sections[2:]] == [("linf", [0.1, 0.2, 0.3], 7),
                                                                         ("l2", [0.5, 1.0, 2.0], 7)]
    code, _, err = cli("plan", "--plugin", "predify", "--attacks", "bim,rpgd", "--steps", "3")
    assert code == 2 and "--attacks runs each attack at its default budget, so it takes no --steps" in err
    code, _, err = cli("plan", "--plugin", "predify", "--attacks", "bim", "--attack", "rpgd")
    assert code == 2 and "--attack and --attacks exclude each other" in err


def test_transfer_in_the_attacks_shorthand_crafts_on_the_feedforward_pass(cli):
    code, out, err = cli("plan", "--plugin", "predify", "--attacks", "bim,transfer", "--attack-readout", "avg")
    assert code == 0, err
    bim, transfer = tomllib.loads(out)["sections"][2:]
    assert (bim["attack"], bim["readout"]) == ("bim", "avg")
    assert (transfer["attack"], transfer["readout"], transfer["name"]) == ("bim", "first", "transfer")


SMALL_BUDGETS = {"bim": {"steps": 3}, "rpgd": {"steps": 3}, "spsa": {"steps": 2, "samples": 4},
                 "hsj": {"steps": 2, "initial_evals": 10, "max_queries": 200}}


def test_all_five_attacks_run_on_the_same_images_and_targets(cli, tmp_path: Path):
    code, out, err = cli("plan", "--plugin", "predify", "--attacks", "bim,rpgd,hsj,spsa,transfer", "--n-attack", "3",
                         "--n-clean", "60", "--timesteps", "1", "--noise-sigmas", "")
    assert code == 0, err
    plan = tomllib.loads(out)
    plan["run"]["device"] = "cpu"
    for section in plan["sections"][1:]:
        section["options"].update(SMALL_BUDGETS[section["attack"]])
    path = tmp_path / "plan.toml"
    path.write_text(tomli_w.dumps(plan))
    code, _, err = cli("evaluate", "--plan", str(path), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    attacks = results["sections"][1:]
    assert [s["id"] for s in attacks] == ["attack bim", "attack rpgd", "attack hsj", "attack spsa", "transfer"]
    units = [json.loads(next((tmp_path / "r" / "units").glob(f"{s['id'].replace(' ', '-')}*/*.json")).read_text())
             ["outcome"] for s in attacks]
    assert all(u["indices"] == units[0]["indices"] and u["targets"] == units[0]["targets"] for u in units)
    assert all(len(s["series"]) == 3 and len(s["series"][0]["values"]) == 2 for s in attacks)
    assert attacks[2]["starts"]["per_image"] and attacks[3]["records"]["iterations"]
    assert attacks[4]["attacked_readout"] == "first"


def _options(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Option]]:
    for param in command.params:
        if isinstance(param, click.Option):
            yield path, param
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, (*path, name))


def test_every_cli_option_has_help_and_fixed_choices_are_listed():
    from pcrobust.cli import cli as command

    found = list(_options(command, ("pcrobust",)))
    assert len(found) > 40
    for path, option in found:
        assert option.help or option.name in ("version", "help"), (path, option.opts)
    helps = {(path[-1], option.opts[-1]): option.help or "" for path, option in found}
    for key, choices in {("evaluate", "--device"): ("auto", "cpu", "cuda"),
                         ("evaluate", "--criterion"): ("targeted", "untargeted"),
                         ("evaluate", "--attack-readout"): ("t", "avg", "last", "first")}.items():
        assert all(choice in helps[key] for choice in choices), (key, helps[key])
