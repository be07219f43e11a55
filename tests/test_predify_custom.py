"""Predify a user's backbone from the CLI: train its feedback, then evaluate it, with a TOML config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcrobust.errors import PcrobustError
from pcrobust_predify.custom import import_backbone

CONFIG = """
input_size = [1, 28, 28]
num_classes = 10
timesteps = 2
normalization = { mean = [0.1307], std = [0.3081] }
[[pcoders]]
module = "features[1]"
[[pcoders]]
module = "features.4"
hyperparameters = { beta = 0.5, lambda = 0.0, alpha = 0.05 }
"""
BACKBONE = "tests.conftest:digit_backbone"


def test_train_then_evaluate_a_custom_predified_backbone(cli, tmp_path: Path):
    config = tmp_path / "mine.toml"
    config.write_text(CONFIG)
    ckpt = tmp_path / "mine.pt"
    code, _, err = cli("train", "--plugin", "predify", "--model", "custom", "--out", str(ckpt),
                       "-o", f"config={config}", "-o", f"backbone={BACKBONE}", "-o", "dataset=mnist-5k",
                       "-o", "epochs=1")
    assert code == 0, err
    code, _, err = cli("evaluate", "--plugin", "predify", "--model", "custom", "--weights", str(ckpt),
                       "-o", f"config={config}", "-o", f"backbone={BACKBONE}", "--dataset", "mnist-5k",
                       "--n-clean", "60", "--n-attack", "5", "--epsilons", "0.3", "--noise-sigmas", "",
                       "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["timesteps"] == [0, 1, 2] and results["sections"][0]["series"][0]["values"][0] > 0.9
    assert [(p["module"], p["beta"], p["lambda"]) for p in results["model"]["pcoders"]] == [
        ("features[1]", 0.8, 0.1), ("features.4", 0.5, 0.0)]
    assert results["provenance"]["weights"].keys() == {"mine.pt"}


@pytest.mark.parametrize("args,message", [
    (("--weights", "x.pt"), "needs -o config=..."),
    (("-o", "config=c.toml", "-o", f"backbone={BACKBONE}"), "needs --weights"),
    (("--weights", "x.pt", "-o", "config=c.toml", "-o", "backbone=os.system('ls')"), "must look like"),
])
def test_custom_model_errors(cli, tmp_path: Path, args, message):
    code, _, err = cli("evaluate", "--plugin", "predify", "--model", "custom", "--dataset", "mnist-5k", *args,
                       "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_backbone_import_is_checked():
    with pytest.raises(PcrobustError, match="cannot import backbone"):
        import_backbone("no_such_package.mod:make")
    with pytest.raises(PcrobustError, match="not an nn.Module"):
        import_backbone("os:getcwd")
    assert import_backbone(BACKBONE).__class__.__name__ == "DigitNet"
