"""Torch corruptions against the imagecorruptions library, image by image; the section's backend option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
import torch

from pcrobust import corrupt_torch
from pcrobust.corrupt import corrupt_images
from pcrobust.engine import predict
from pcrobust.models import evaluation_mode
from pcrobust_datasets.imagenet import load_foolbox_imagenet
from pcrobust_datasets.mnist import load_mnist_5k

DETERMINISTIC = ("brightness", "contrast", "saturate", "pixelate", "gaussian_blur", "defocus_blur")
NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
EIGHT_BITS = 1 / 255 + 1e-6  # the documented tolerance of the deterministic corruptions


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Two bundled ImageNet photographs (224², colour)."""
    return load_foolbox_imagenet("test").images[:2]


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_mnist_5k("test").images[:3]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_match_the_library_pixel_for_pixel(name, photos, digits):
    odd = photos[:1, :, 3:64, 5:52]
    for images in (photos, odd, digits):
        seeds = list(range(len(images)))
        for severity in range(1, 6):
            library = corrupt_images(images, name, severity, seeds)
            mine = corrupt_torch.corrupt_batch(images, name, severity, seeds)
            assert mine.shape == library.shape and mine.dtype == images.dtype
            gap = float((mine - library).abs().max())
            assert gap <= EIGHT_BITS, f"{name} s{severity} {tuple(images.shape)}: {gap * 255:.2f}/255"
    assert not torch.equal(corrupt_torch.corrupt_batch(photos, name, 5, [0, 1]), photos), "it corrupts"


@pytest.mark.parametrize("name", NOISE)
def test_noise_matches_the_library_in_distribution(name, photos):
    for severity in (1, 3, 5):
        library = corrupt_images(photos, name, severity, [3, 4]) - photos
        mine = corrupt_torch.corrupt_batch(photos, name, severity, [3, 4]) - photos
        assert abs(float(mine.mean() - library.mean())) <= 2e-3, f"{name} s{severity}"
        assert float(mine.std()) == pytest.approx(float(library.std()), rel=0.02), f"{name} s{severity}"
        assert float((mine == 0).float().mean()) == pytest.approx(float((library == 0).float().mean()), abs=0.01)


def test_noise_gives_the_default_model_the_library_error_rates(default_model):
    data = load_mnist_5k("test")
    images, labels = data.images[:300], data.labels[:300]
    seeds = list(range(300))
    cpu = torch.device("cpu")
    raised = []
    with evaluation_mode(default_model):
        clean_error = (predict(default_model, images, 2, 300, cpu, progress=False).argmax(2) != labels).float()
        for name in NOISE:
            rates = []
            for corrupted in (corrupt_images(images, name, 5, seeds),
                              corrupt_torch.corrupt_batch(images, name, 5, seeds)):
                logits = predict(default_model, corrupted, 2, 300, cpu, progress=False)
                rates.append((logits.argmax(2) != labels).float().mean(1))
            assert float((rates[0] - rates[1]).abs().max()) <= 0.05, f"{name}: {rates}"
            raised.append(float(rates[0].mean() - clean_error.mean()))
    assert max(raised) > 0.1, f"the noise moves the error rates, so their agreement means something: {raised}"


def test_draws_are_seeded_per_image_and_follow_the_input_dtype(photos):
    small = photos[:, :, :40, :40]
    both = corrupt_torch.corrupt_batch(small, "gaussian_noise", 3, [7, 8])
    alone = corrupt_torch.corrupt_batch(small[1:], "gaussian_noise", 3, [8])
    assert torch.equal(both[1:], alone), "an image's corruption does not depend on its batch"
    assert not torch.equal(both, corrupt_torch.corrupt_batch(small, "gaussian_noise", 3, [7, 9]))
    double = corrupt_torch.corrupt_batch(small.double(), "contrast", 2, [0, 1])
    assert double.dtype == torch.float64 and double.device == small.device
    with pytest.raises(ValueError, match="one seed per image"):
        corrupt_torch.corrupt_batch(small, "contrast", 2, [0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu_for_deterministic_corruptions(photos):
    for name in DETERMINISTIC:
        cpu = corrupt_torch.corrupt_batch(photos, name, 3, [0, 1])
        gpu = corrupt_torch.corrupt_batch(photos.cuda(), name, 3, [0, 1])
        assert gpu.device.type == "cuda" and float((gpu.cpu() - cpu).abs().max()) <= EIGHT_BITS


def _plan(backend: str, corruptions: list[str], strength: str = "imagenet") -> dict:
    return {"model": {"plugin": "predify"}, "data": {"n": 30}, "run": {"timesteps": 1, "device": "cpu"},
            "sections": [{"kind": "corruption", "corruptions": corruptions, "severities": [2],
                          "backend": backend, "strength": strength}]}


def test_the_section_runs_the_torch_backend_and_records_it(cli, tmp_path: Path):
    results = {}
    for backend in ("library", "torch"):
        (tmp_path / f"{backend}.toml").write_text(tomli_w.dumps(_plan(backend, ["contrast", "gaussian_noise"])))
        code, _, err = cli("evaluate", "--plan", str(tmp_path / f"{backend}.toml"), "--quiet",
                           "--out", str(tmp_path / backend))
        assert code == 0, err
        results[backend] = json.loads((tmp_path / backend / "results.json").read_text())["sections"][0]
    assert results["torch"]["backend"] == "torch" and results["library"]["backend"] == "library"
    assert "noise" in results["torch"]["backend_tolerance"] and "backend_tolerance" not in results["library"]
    library, torch_backend = results["library"]["series"][0], results["torch"]["series"][0]
    assert library["label"] == "contrast s2" and library["counts"] == torch_backend["counts"]


@pytest.mark.parametrize("corruptions, strength, message", [
    (["glass_blur"], "imagenet", "backend 'torch' does not offer glass_blur"),
    (["contrast"], "cifar", "backend 'torch' takes strength 'imagenet' only"),
])
def test_what_the_torch_backend_does_not_offer_is_one_line(cli, tmp_path: Path, corruptions, strength, message):
    (tmp_path / "plan.toml").write_text(tomli_w.dumps(_plan("torch", corruptions, strength)))
    code, _, err = cli("evaluate", "--plan", str(tmp_path / "plan.toml"), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
