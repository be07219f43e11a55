"""The PEfficientNet-Lite0 presets: the paper's full budget and the CPU corruption budget, as plans."""

from __future__ import annotations

import tomllib

import pytest

from pcrobust.corrupt import ALL

REFERENCE_SIGMAS = (0.25, 0.5, 0.75, 1.0, 2.0)  # N(0, σ²) after ImageNet normalisation, in the reference scripts
MEAN_IMAGENET_STD = 0.226


def plan_of(cli, preset: str) -> dict:
    code, out, err = cli("plan", "--preset", preset)
    assert code == 0, err
    return tomllib.loads(out)


def test_paper_preset_holds_the_paper_budget(cli):
    plan = plan_of(cli, "predify-lite0-paper")
    assert plan["model"]["name"] == "pefficientnet-lite0" and plan["run"]["timesteps"] == 10
    assert plan["run"]["interval"] == "bootstrap"
    clean, noise, attack, corruption = plan["sections"]
    assert clean["kind"] == "clean"
    assert noise["sigmas"] == pytest.approx([s * MEAN_IMAGENET_STD for s in REFERENCE_SIGMAS])
    assert (attack["attack"], attack["norm"], attack["criterion"]) == ("bim", "linf", "targeted")
    assert (attack["target_mode"], attack["target_shift"], attack["readout"]) == ("shift", 800, "t")
    assert attack["epsilons"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert attack["options"]["steps"] == 100 and attack["options"]["rel_stepsize"] == pytest.approx(0.025)
    assert attack["options"]["random_start"] is True and attack["gradient_mode"] == "detached"
    assert attack["n"] == 1000 and attack["selection"] == "correct-at-every-timestep"
    assert corruption["corruptions"] == "all" and corruption["severities"] == [1, 2, 3, 4, 5]
    assert len(ALL) == 19


def test_cpu_corruption_preset_is_a_reduced_plan(cli):
    plan = plan_of(cli, "predify-lite0-corruptions-cpu")
    assert plan["data"]["dataset"] == "foolbox-imagenet" and plan["run"]["timesteps"] == 3
    assert plan["run"]["interval"] == "bootstrap"
    assert [s["kind"] for s in plan["sections"]] == ["clean", "corruption"]
    assert plan["sections"][1]["corruptions"] == "all" and plan["sections"][1]["severities"] == [3]
