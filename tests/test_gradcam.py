"""Grad-CAM per timestep: captum agrees on the feedforward pass, every call of a recurrent layer is kept, IoU on a
hand-computed example, and the gradcam section end to end (with and without segmentation masks, from a
folder)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn

from pcrobust.gradcam import binarised, find_layer, gradcam_per_timestep, iou
from pcrobust.models import TimestepModel, TimestepOutput, evaluation_mode
from pcrobust_datasets import mnist as mnist_data
from tests.test_folders import write_digits, write_masks


class Looped(TimestepModel):
    """A tiny recurrent net whose convolution runs once per timestep, fed its own previous features."""

    num_classes = 3
    default_timesteps = 3

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.back = nn.Conv2d(4, 1, 1)
        self.read = nn.Linear(4 * 6 * 6, 3)

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        logits, feedback = [], torch.zeros_like(x)
        for _ in range(timesteps + 1):
            h = torch.relu(self.conv(x + feedback))
            feedback = torch.tanh(self.back(h))
            logits.append(self.read(h.flatten(1)))
        return TimestepOutput(torch.stack(logits))


def captum_map(forward, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    return LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=True)[:, 0]


@pytest.mark.parametrize("name", ["backbone.2", "backbone.4"])  # a plain convolution, a pcoder layer
def test_feedforward_map_equals_captum(tiny, images, name):
    labels = torch.arange(len(images)) % 5
    layer = find_layer(tiny, name)
    with evaluation_mode(tiny):
        ours = gradcam_per_timestep(tiny, layer, images, labels, 3, "label", name)
        theirs = captum_map(lambda z: tiny(z, 0)[0], layer, images, labels)
    assert ours.maps.shape == (4, len(images), *theirs.shape[1:])
    assert ours.maps[0].abs().max() > 0
    torch.testing.assert_close(ours.maps[0], theirs.detach(), rtol=1e-5, atol=1e-7)


def test_every_call_of_a_recurrent_layer_is_its_timesteps_own():
    model = Looped().eval()
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([0, 1, 2, 0, 1])
    with evaluation_mode(model):
        ours = gradcam_per_timestep(model, model.conv, x, labels, 3)
        for t in range(4):  # unrolled to t, the layer's last call is timestep t's: captum must agree there
            truncated = captum_map(lambda z, t=t: model(z, t)[t], model.conv, x, labels)
            torch.testing.assert_close(ours.maps[t], truncated.detach(), rtol=1e-5, atol=1e-7)
        assert not torch.allclose(ours.maps[1], ours.maps[3])  # the maps change over the timesteps
        for t in range(3):  # a library on the full unroll attributes the last call only: nothing of timestep t
            try:
                last_only = captum_map(lambda z, t=t: model(z, 3)[t], model.conv, x, labels).detach()
            except RuntimeError:
                continue
            assert not torch.allclose(last_only, ours.maps[t])
            assert ours.maps[t].abs().max() > 0


def test_a_layer_that_runs_once_is_refused(tiny, images):
    from pcrobust.errors import PcrobustError

    predictor = find_layer(tiny, "pcoders.0.predictor")
    with pytest.raises(PcrobustError, match="runs once per timestep"), evaluation_mode(tiny):
        gradcam_per_timestep(tiny, predictor, images[:1], torch.tensor([0]), 3)
    with pytest.raises(PcrobustError, match="not a module"):
        find_layer(tiny, "backbone.9")


def test_iou_by_hand():
    maps = torch.tensor([[[0.0, 0.2, 0.6], [0.5, 1.0, 0.1]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    masks = torch.tensor([[[False, False, True], [False, True, True]], [[False, False, False], [False, False, False]]])
    region = binarised(maps, 0.5)  # ≥ 0.5 × peak: {0.6, 0.5, 1.0} in the first map, nothing in the zero map
    assert region[0].tolist() == [[False, False, True], [True, True, False]] and not region[1].any()
    # first: intersection {(0,2), (1,1)} = 2, union {(0,2), (1,0), (1,1), (1,2)} = 4; second: both empty
    assert iou(region, masks).tolist() == [0.5, 1.0]


RUN = ["--plugin", "predify", "--n-clean", "6", "--timesteps", "2", "--attack", "none", "--noise-sigmas", "",
       "--gradcam", "backbone.features.7", "--quiet"]


def test_default_model_end_to_end_without_masks(cli, tmp_path):
    code, out, _ = cli("plan", *RUN[:-1])
    assert code == 0 and 'kind = "gradcam"' in out and 'layer = "backbone.features.7"' in out
    code, _, err = cli("evaluate", *RUN, "--out", str(tmp_path))
    assert code == 0, err
    entry = next(s for s in json.loads((tmp_path / "results.json").read_text())["sections"] if s["kind"] == "gradcam")
    assert entry["images"] == 6 and "not available" in entry["iou"]
    assert len(entry["map_statistics"]["similarity_to_t0"]["mean"]) == 3
    assert entry["map_statistics"]["similarity_to_t0"]["mean"][0] == pytest.approx(1.0)
    saved = np.load(tmp_path / "gradcam-maps.npz")
    assert saved["maps"].shape == (6, 3, 7, 7) and "iou" not in saved
    assert saved["indices"].tolist() == entry["explained_indices"]
    assert (tmp_path / "gradcam_maps.png").is_file() and "Grad-CAM maps" in (tmp_path / "report.html").read_text()


def test_masks_give_iou_per_timestep(cli, tmp_path, monkeypatch):
    original = mnist_data.load_mnist_5k

    def with_masks(split: str):
        data = original(split)
        return replace(data, masks=data.images[:, 0] > 0.5)  # the digit's ink as its mask

    monkeypatch.setattr(mnist_data, "load_mnist_5k", with_masks)
    code, _, err = cli("evaluate", *RUN, "--out", str(tmp_path))
    assert code == 0, err
    entry = next(s for s in json.loads((tmp_path / "results.json").read_text())["sections"] if s["kind"] == "gradcam")
    scores = np.asarray(entry["maps"]["iou"])
    assert scores.shape == (6, 3) and ((scores >= 0) & (scores <= 1)).all()
    assert entry["map_statistics"]["iou"]["mean"] == pytest.approx(scores.mean(0).tolist())
    localised = next(s for s in entry["series"] if s["metric"] == "localisation_rate")
    assert localised["counts"] == (scores >= 0.5).sum(0).tolist()
    assert "iou" in np.load(tmp_path / "gradcam-maps.npz")


def test_bad_layer_is_one_line_and_exit_2(cli, tmp_path):
    code, _, err = cli("evaluate", *RUN[:-2], "backbone.nope", "--quiet", "--out", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "backbone.nope" in err


def test_masks_folder_gives_iou_through_the_cli(cli, tmp_path):
    data = mnist_data.load_mnist_5k("test")
    images, labels = data.images[:6], data.labels[:6]
    root = write_digits(tmp_path / "digits", images, labels)
    masks = write_masks(tmp_path / "masks", images, labels)
    code, _, err = cli("evaluate", *RUN, "--data", str(root), "--masks", str(masks), "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["dataset"]["masks"] is True and results["plan"]["data"]["masks"] == str(masks)
    entry = next(s for s in results["sections"] if s["kind"] == "gradcam")
    scores = np.asarray(entry["maps"]["iou"])
    assert scores.shape == (6, 3) and ((scores >= 0) & (scores <= 1)).all() and scores.max() > 0
    assert entry["map_statistics"]["iou"]["mean"] == pytest.approx(scores.mean(0).tolist())
