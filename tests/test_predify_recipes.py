"""PVGG16 / PEfficientNetB0 recipes without torchvision: configs, predictor shapes, reference weight formats."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pcrobust.errors import PcrobustError
from pcrobust_datasets.imagenet import load_foolbox_imagenet
from pcrobust_predify.config import build_predictor, default_predictor, load_config
from pcrobust_predify.recipes import RECIPES, build_recipe, load_reference_feedback, reference_predictor_state
from tests.conftest import make_tiny

# (C, H, W) of each pcoder layer of the torchvision backbones at 224², bottom to top, and of the input.
VGG16_LAYERS = [(3, 224, 224), (64, 224, 224), (128, 112, 112), (256, 56, 56), (512, 28, 28), (512, 14, 14)]
EFFICIENTNET_B0_LAYERS = [(3, 224, 224), (32, 112, 112), (16, 112, 112), (24, 56, 56), (40, 28, 28),
                          (80, 14, 14), (112, 14, 14), (192, 7, 7), (320, 7, 7)]


def test_pvgg16_predictors_reconstruct_the_layer_below():
    config = load_config(RECIPES["pvgg16"].config_path)
    assert [layer.module for layer in config.layers] == [f"features[{i}]" for i in (3, 8, 15, 22, 29)]
    hps = {layer.hyperparameters for layer in config.layers}
    assert {(hp.beta, hp.lam, hp.alpha) for hp in hps} == {(0.8, 0.1, 0.01)}
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        for i, layer in enumerate(config.layers):
            predictor = build_predictor(layer.predictor, f"pcoders[{i}]")
            out = predictor(torch.empty(1, *VGG16_LAYERS[i + 1]))
            assert tuple(out.shape[1:]) == VGG16_LAYERS[i], layer.module


def test_pefficientnetb0_default_predictors_fit():
    config = load_config(RECIPES["pefficientnetb0"].config_path)
    assert [layer.module for layer in config.layers] == [f"features[{i}]" for i in range(8)]
    assert all(layer.predictor is None for layer in config.layers)
    with torch.device("meta"):
        for i in range(8):
            source, target = torch.Size(EFFICIENTNET_B0_LAYERS[i + 1]), torch.Size(EFFICIENTNET_B0_LAYERS[i])
            out = default_predictor(source, target)(torch.empty(1, *source))
            assert out.shape[1:] == target


def test_reference_feedback_formats_load(tmp_path: Path, images):
    source, target = make_tiny(), make_tiny(alpha=0.1)
    for p in target.pcoders.parameters():
        torch.nn.init.zeros_(p)
    # PVGG16 style: a bare predictor state dict; PEfficientNetB0 style: a PCoder state dict under 'pcoderweights'
    torch.save(source.pcoders[0].predictor.state_dict(), tmp_path / "pvgg16_imagenet_pretrained_pc1_pmodule.pth")
    prefixed = {f"pmodule.{k}": v for k, v in source.pcoders[1].predictor.state_dict().items()}
    torch.save({"pcoderweights": {**prefixed, "C_sqrt": torch.tensor(2.0)}}, tmp_path / "pnet_pretrained_pc2_009.pth")
    load_reference_feedback(target, tmp_path)
    for a, b in zip(source.pcoders.parameters(), target.pcoders.parameters(), strict=True):
        assert torch.equal(a, b)
    assert reference_predictor_state({"pcoderweights": {"pmodule.0.weight": 1, "C_sqrt": 2}}) == {"0.weight": 1}
    (tmp_path / "pnet_pretrained_pc2_009.pth").unlink()
    with pytest.raises(PcrobustError, match=r"no feedback file matching '\*pc2_\*.pth'"):
        load_reference_feedback(target, tmp_path)


def test_recipes_need_local_weights_and_torchvision(monkeypatch, tmp_path: Path):
    with pytest.raises(PcrobustError, match="needs --weights CHECKPOINT, or -o backbone=FILE"):
        build_recipe(RECIPES["pvgg16"], None, {})
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(PcrobustError, match="needs torchvision"):
        build_recipe(RECIPES["pefficientnetb0"], None, {"backbone": "b.pth", "feedback_dir": str(tmp_path)})
    with pytest.raises(PcrobustError, match="unknown option 'gamma'"):
        build_recipe(RECIPES["pvgg16"], None, {"gamma": "1"})


def test_recipe_errors_reach_the_cli_as_one_line(cli, monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    code, _, err = cli("evaluate", "--plugin", "predify", "--model", "pvgg16", "-o", "backbone=vgg16.pth",
                       "-o", f"feedback_dir={tmp_path}", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and "needs torchvision" in err and len(err.strip().splitlines()) == 1


def test_foolbox_imagenet_samples_load():
    pytest.importorskip("foolbox")
    data = load_foolbox_imagenet("test")
    assert data.images.shape == (20, 3, 224, 224) and len(data) == 20
    assert 0 <= data.images.min() and data.images.max() <= 1 and data.images.std() > 0.1
    assert data.labels[0] == 243 and data.num_classes == 1000
    with pytest.raises(PcrobustError, match="unknown split"):
        load_foolbox_imagenet("train")
