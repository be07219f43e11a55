"""Predify configs (no eval), checkpoints (weights_only) and feedback training (backbone frozen, eval mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pcrobust.errors import PcrobustError
from pcrobust_predify import mnist
from pcrobust_predify.checkpoint import load_checkpoint, save_checkpoint
from pcrobust_predify.config import load_config, parse_config, predify
from pcrobust_predify.network import resolve_module
from pcrobust_predify.training import feedback_loss, train_feedback
from tests.conftest import make_tiny, tiny_backbone, tiny_config


def test_module_paths_resolve_by_attribute_lookup():
    net = mnist.DigitNet()
    assert resolve_module(net, "features[2]") is net.features[2]
    assert resolve_module(net, "features.2") is net.features[2]
    backbone = tiny_backbone()
    assert resolve_module(backbone, "[4]") is resolve_module(backbone, "4") is backbone[4]


@pytest.mark.parametrize("path", ["features[2]; import os", "__import__('os')", "features[99]", "nothing"])
def test_bad_module_paths_are_clear_errors(path):
    with pytest.raises(PcrobustError, match="module path"):
        resolve_module(mnist.DigitNet(), path)


def test_predictor_layers_come_from_an_allow_list():
    config = tiny_config()
    config["pcoders"][0]["predictor"] = [{"layer": "Lambda", "fn": "print"}]
    with pytest.raises(PcrobustError, match="not allowed"):
        predify(tiny_backbone(), parse_config(config))


def test_default_predictors_match_target_shapes(tiny, images):
    with torch.no_grad():
        out = tiny.unroll(images, 0, reconstructions=True)
    assert out.reconstructions.shape[1:] == images.shape
    assert isinstance(tiny.pcoders[1].predictor[0], torch.nn.Upsample)


def test_config_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(PcrobustError, match="missing required key 'pcoders'"):
        parse_config({"input_size": [1, 8, 8], "num_classes": 5})
    with pytest.raises(PcrobustError, match="unknown hyperparameter 'gamma'"):
        parse_config({**tiny_config(), "hyperparameters": {"gamma": 1.0}})
    bad = tmp_path / "bad.toml"
    bad.write_text("input_size = [1, 8")
    with pytest.raises(PcrobustError, match="cannot read Predify config"):
        load_config(bad)


def test_shipped_config_and_weights_load(default_model):
    assert default_model.layer_paths == ("features[2]", "features[5]", "features[7]")
    assert [pc.hyperparameters for pc in default_model.pcoders][0].beta == 0.8
    assert default_model.default_timesteps == 8


def test_hyperparameter_options_apply_after_loading():
    net = mnist.build(None, {"beta": "0.5", "alpha": "0.2"})
    assert {(pc.hyperparameters.beta, pc.hyperparameters.alpha) for pc in net.pcoders} == {(0.5, 0.2)}
    with pytest.raises(PcrobustError, match="unknown option 'gamma'"):
        mnist.build(None, {"gamma": "1"})


def test_one_pcoder_options_apply_after_those_of_every_pcoder():
    net = mnist.build(None, {"beta": "1", "lambda": "0", "alpha": "0", "beta.2": "0.3", "lambda.2": "0.6",
                             "alpha.2": "0.05"})
    assert [(pc.hyperparameters.beta, pc.hyperparameters.lam, pc.hyperparameters.alpha) for pc in net.pcoders] == [
        (1.0, 0.0, 0.0), (0.3, 0.6, 0.05), (1.0, 0.0, 0.0)]
    # validated once per pcoder on the combined values: the network's β = 0.8 with λ.2 = 0.5 alone is too much
    with pytest.raises(PcrobustError, match="pcoder 2: need 0 ≤ β \\+ λ ≤ 1, got β \\+ λ = 1.3"):
        mnist.build(None, {"lambda.2": "0.5"})
    assert mnist.build(None, {"beta.2": "0.4", "lambda.2": "0.5"}).pcoders[1].hyperparameters.beta == 0.4
    with pytest.raises(PcrobustError, match="option beta.4: the network has 3 pcoders"):
        mnist.build(None, {"beta.4": "0.5"})
    for key in ("beta.0", "beta.x", "gamma.1"):
        with pytest.raises(PcrobustError, match=f"unknown option '{key}'"):
            mnist.build(None, {key: "0.5"})


def test_checkpoints_round_trip_and_reject_other_files(tmp_path: Path, images):
    net = make_tiny()
    path = save_checkpoint(net, tmp_path / "tiny.pt", {"note": "test"})
    other = make_tiny(alpha=0.1)
    for p in other.pcoders.parameters():
        torch.nn.init.zeros_(p)
    assert load_checkpoint(other, path) == {"note": "test"}
    with torch.no_grad():
        torch.testing.assert_close(other(images, 2), make_tiny(alpha=0.1)(images, 2))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PcrobustError, match="checkpoint .*junk.pt is not a PyTorch checkpoint"):
        load_checkpoint(other, tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(PcrobustError, match="is not a pcrobust-predify/1 checkpoint"):
        load_checkpoint(other, tmp_path / "other.pt")
    with pytest.raises(PcrobustError, match="does not exist"):
        load_checkpoint(other, tmp_path / "missing.pt")


def test_feedback_training_freezes_the_backbone_in_eval_mode(tmp_path: Path):
    net = make_tiny()
    net.train()  # a careless caller: training must still keep BatchNorm statistics fixed
    data = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    backbone_before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    predictor_before = [p.clone() for p in net.pcoders.parameters()]
    with torch.no_grad():
        loss_before = feedback_loss(net.eval(), data).item()
    net.train()
    history = train_feedback(net, data, epochs=3, lr=1e-2, batch_size=16, seed=0, checkpoint_dir=tmp_path)
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(predictor_before, net.pcoders.parameters(), strict=True))
    assert history[-1] < loss_before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"feedback_epoch00{i}.pt" for i in (1, 2, 3)]
    blob = torch.load(tmp_path / "feedback_epoch003.pt", weights_only=True)
    assert blob["epoch"] == 3
