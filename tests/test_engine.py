"""Engine pieces: seeded per-image noise, eval mode, devices, readouts."""

from __future__ import annotations

import pytest
import torch

from pcrobust.engine import add_gaussian_noise, predict, resolve_device, standard_normal_per_image
from pcrobust.models import evaluation_mode, select_readout


def test_noise_belongs_to_the_image_not_the_batch():
    together = standard_normal_per_image(torch.Size([1, 4, 4]), [1, 3, 5], seed=0)
    alone = standard_normal_per_image(torch.Size([1, 4, 4]), [3], seed=0)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    assert not torch.equal(standard_normal_per_image(torch.Size([1, 4, 4]), [3], seed=1)[0], alone[0])


def test_noise_is_clipped_to_pixel_range():
    x = torch.rand(4, 1, 5, 5)
    z = standard_normal_per_image(x.shape[1:], range(4), seed=0)
    noisy = add_gaussian_noise(x, 0.5, z)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(add_gaussian_noise(x, 0.0, z), x)


def test_evaluation_mode_freezes_and_restores(tiny):
    tiny.train()
    with evaluation_mode(tiny):
        assert not tiny.training and not any(p.requires_grad for p in tiny.parameters())
    assert tiny.training and all(p.requires_grad for p in tiny.parameters())


def test_predict_chunks_do_not_change_logits(tiny, images):
    with evaluation_mode(tiny):
        a = predict(tiny, images, 2, 3, torch.device("cpu"), progress=False)
        b = predict(tiny, images, 2, 8, torch.device("cpu"), progress=False)
    torch.testing.assert_close(a, b)


def test_readouts():
    logits = torch.arange(24.0).view(3, 2, 4)
    assert torch.equal(select_readout(logits, "last"), logits[2])
    assert torch.equal(select_readout(logits, "avg"), logits.mean(0))
    assert torch.equal(select_readout(logits, "t", torch.tensor([2, 0])), torch.stack([logits[2, 0], logits[0, 1]]))


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_unroll_matches_cpu(tiny, images):
    with torch.no_grad():
        cpu = tiny(images, 3)
        gpu = tiny.to("cuda")(images.cuda(), 3).cpu()
    torch.testing.assert_close(cpu, gpu, rtol=1e-4, atol=1e-4)
