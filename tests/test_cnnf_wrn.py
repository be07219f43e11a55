"""CNN-F on a WideResNet: t = 0 is the plain pre-activation WRN, the feedback acts, gradients reach every
iteration, batches do not mix, and the reference code's checkpoint layout loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pcrobust.errors import PcrobustError
from pcrobust_cnnf import cifar
from pcrobust_cnnf.reference import load_reference, wide_resnet_layout
from pcrobust_cnnf.wide_resnet import WideResNetCNNF, WideResNetShape

TINY = WideResNetShape(depth=16, widen=1, num_classes=4, encode=1)  # 2 blocks per stage, widths 16, 16, 32, 64


def reference_wrn_state(depth: int, widen: int, classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the reference model_cifar.py WideResNet's state-dict keys."""
    generator = torch.Generator().manual_seed(seed)

    def conv(name: str, *shape: int) -> dict[str, torch.Tensor]:
        weight = torch.randn(*shape, generator=generator) * (2 / (shape[0] * shape[2] * shape[3])) ** 0.5
        return {f"{name}.conv.weight": weight, f"{name}.conv_t.weight": weight}

    def bias(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) - 0.5

    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    state = conv("conv1", 16, 3, 3, 3)
    for s in range(1, 4):
        for i in range(n):
            c_in, c_out = widths[s - 1] if i == 0 else widths[s], widths[s]
            prefix = f"block{s}.layer.{i}"
            state[f"{prefix}.ins1_bias.bias"] = bias(1, c_in, 1, 1)
            state |= conv(f"{prefix}.conv1", c_out, c_in, 3, 3)
            state[f"{prefix}.ins2_bias.bias"] = bias(1, c_out, 1, 1)
            state |= conv(f"{prefix}.conv2", c_out, c_out, 3, 3)
            if c_in != c_out:
                state |= conv(f"{prefix}.conv_shortcut", c_out, c_in, 1, 1)
    state["ins1_bias.bias"] = bias(1, widths[3], 1, 1)
    fc = torch.randn(classes, widths[3], generator=generator) / widths[3] ** 0.5
    state |= {"fc.linear.weight": fc, "fc.linear_t.weight": fc.t(), "fc_bias.bias": bias(1, classes)}
    return state


def plain_wrn(state: dict[str, torch.Tensor], x: torch.Tensor, n: int) -> torch.Tensor:
    """The reference WideResNet's feedforward pass written out, InsNorm (RMS) + bias + ReLU before each conv."""

    def act(z: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.relu(z / (z.pow(2).mean((2, 3), keepdim=True) + 1e-8).sqrt() + b)

    z = F.conv2d((x - 0.5) / 0.5, state["conv1.conv.weight"], padding=1)
    for s in range(1, 4):
        for i in range(n):
            p = f"block{s}.layer.{i}."
            stride = 2 if s > 1 and i == 0 else 1
            a = act(z, state[p + "ins1_bias.bias"])
            d = act(F.conv2d(a, state[p + "conv1.conv.weight"], stride=stride, padding=1), state[p + "ins2_bias.bias"])
            e = F.conv2d(d, state[p + "conv2.conv.weight"], padding=1)
            shortcut = p + "conv_shortcut.conv.weight"
            z = (F.conv2d(a, state[shortcut], stride=stride) if shortcut in state else z) + e
    pooled = act(z, state["ins1_bias.bias"]).mean((2, 3))
    return pooled @ state["fc.linear.weight"].T + state["fc_bias.bias"]


def tiny_net(tmp_path: Path, encode: int = 1, mode: str = "exact") -> tuple[WideResNetCNNF, dict[str, torch.Tensor]]:
    shape = WideResNetShape(depth=16, widen=1, num_classes=4, encode=encode)
    state = reference_wrn_state(16, 1, 4)
    torch.save(state, tmp_path / "wrn.pt")
    net = WideResNetCNNF(shape, eta=0.5, gradient_mode=mode)
    load_reference(net, tmp_path / "wrn.pt", wide_resnet_layout(shape))
    return net.eval(), state


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("encode", [0, 1])
def test_t0_is_the_plain_wrn_with_relu_and_the_feedback_acts(tmp_path, images, encode):
    net, state = tiny_net(tmp_path, encode)
    with torch.no_grad():
        out = net.unroll(images, 2)
    assert out.logits.shape == (3, 5, 4)
    torch.testing.assert_close(out.logits[0], plain_wrn(state, images, 2), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(out.logits[2], out.logits[0]), "the feedback must move the logits"
    adaptive = 3 * 2 - encode
    assert out.reconstruction_errors is not None and out.reconstruction_errors.shape == (3, 1 + adaptive, 5)
    assert bool((out.reconstruction_errors > 0).all())


@pytest.mark.parametrize("mode", ["exact", "bpda"])
def test_input_gradients_are_finite_and_nonzero_at_every_iteration(tmp_path, images, mode):
    net, _ = tiny_net(tmp_path, mode=mode)
    for t in range(3):
        x = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x, 2)[t].logsumexp(-1).sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (mode, t)
    assert net.describe()["gradient_mode"] == mode


def test_batch_composition_does_not_change_logits(tmp_path, images):
    net, _ = tiny_net(tmp_path)
    with torch.no_grad():
        together, alone = net(images, 2), net(images[1:3], 2)
    torch.testing.assert_close(together[:, 1:3], alone, rtol=1e-5, atol=1e-5)


def test_the_cifar_model_is_a_wrn_40_2_that_loads_the_reference_layout(tmp_path):
    net = cifar.build(None, {"eta": "0.2"})
    assert sum(p.numel() for p in net.parameters()) == sum(
        t.numel() for k, t in reference_wrn_state(40, 2, 10).items() if ".conv_t." not in k and "linear_t" not in k)
    assert net.default_timesteps == 2 and net.eta == 0.2 and net.describe()["architecture"]["depth"] == 40
    state = reference_wrn_state(40, 2, 10, seed=4)
    torch.save(state, tmp_path / "CNNF_2_cifar.pt")
    loaded = cifar.build(None, {"reference": str(tmp_path / "CNNF_2_cifar.pt")})
    assert loaded.blocks[7].shortcut is None and "block2.layer.1.conv_shortcut.conv.weight" not in state
    assert torch.equal(loaded.blocks[6].shortcut, state["block2.layer.0.conv_shortcut.conv.weight"])
    assert torch.equal(loaded.fc.bias, state["fc_bias.bias"][0])
    del state["block3.layer.2.conv2.conv_t.weight"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(PcrobustError, match="lacks key 'block3.layer.2.conv2.conv_t.weight'"):
        cifar.build(None, {"reference": str(tmp_path / "bad.pt")})
    with pytest.raises(PcrobustError, match="not --weights"):
        cifar.build(tmp_path / "CNNF_2_cifar.pt", {})


def test_cli_evaluates_the_wrn_on_a_folder_of_cifar_images(cli, tmp_path):
    from PIL import Image

    code, out, _ = cli("models", "--plugin", "cnnf")
    assert code == 0 and "cifar-wrn-cnnf (plugin cnnf, dataset cifar10)" in out and "-o reference=..." in out
    pixels = torch.rand(4, 32, 32, 3, generator=torch.Generator().manual_seed(0)).mul(255).to(torch.uint8).numpy()
    for i, label in enumerate(("cat", "ship", "cat", "3")):
        (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(tmp_path / "data" / label / f"{i}.png")
    code, _, err = cli("evaluate", "--plugin", "cnnf", "--model", "cifar-wrn-cnnf", "--data", str(tmp_path / "data"),
                       "--noise-sigmas", "", "--epsilons", "0.03", "--steps", "1", "--n-attack", "2",
                       "--timesteps", "1", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["model"]["architecture"]["kind"] == "wide-resnet" and results["dataset"]["name"] == "cifar10"
    assert results["dataset"]["size"] == 4 and results["timesteps"] == [0, 1]
    code, _, err = cli("evaluate", "--plugin", "cnnf", "--model", "cifar-wrn-cnnf", "--attack", "none", "--quiet",
                       "--out", str(tmp_path / "none"))
    assert code == 2 and "ships no images: pass --data DIR" in err and len(err.strip().splitlines()) == 1


def test_cli_evaluates_the_wrn_on_real_cifar_images_its_batch_independence_shown_in_float64(cli, tmp_path):
    """Random reference-layout weights on foolbox's 20 CIFAR-10 test images: float32 rounding that differs with
    the batch size can flip AdaReLU branches (Eq. 3), so the contract check may need the float64 copy; that copy
    agrees to rounding, and the results say which precision showed it."""
    import shutil

    import numpy as np
    from PIL import Image

    from pcrobust.contract import BATCH_TOLERANCE, FLOAT64_TOLERANCE, float64_agreement
    from pcrobust_datasets.imagenet import foolbox_data_dir

    for path in sorted(foolbox_data_dir().glob("cifar10_*_*.png")):
        label = path.stem.rsplit("_", 1)[1]
        (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / "data" / label / path.name)
    torch.save(reference_wrn_state(40, 2, 10, seed=1), tmp_path / "CNNF_2_cifar.pt")
    code, _, err = cli("evaluate", "--plugin", "cnnf", "--model", "cifar-wrn-cnnf", "-o",
                       f"reference={tmp_path / 'CNNF_2_cifar.pt'}", "--data", str(tmp_path / "data"),
                       "--noise-sigmas", "", "--attack", "none", "--timesteps", "2", "--quiet",
                       "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["dataset"]["size"] == 20 and results["sections"][0]["series"][0]["n"] == 20
    check = results["provenance"]["contract_check"]
    if check["checked_in"] == "float64":  # this machine's float32 convolutions differ with the batch size
        assert check["float32_batch_difference"] > BATCH_TOLERANCE > FLOAT64_TOLERANCE > check[
            "float64_batch_difference"]
        assert "float32 logits change by up to" in err
    else:
        assert check["float32_batch_difference"] <= BATCH_TOLERANCE and "warning" not in err
    net = cifar.build(None, {"reference": str(tmp_path / "CNNF_2_cifar.pt")}).eval()
    pixels = np.stack([np.asarray(Image.open(p)) for p in sorted(foolbox_data_dir().glob("cifar10_*_*.png"))[:3]])
    with torch.no_grad():
        double = float64_agreement(net, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255, 2)
    assert not isinstance(double, str) and double.within(FLOAT64_TOLERANCE)
    assert net.blocks[0].conv1.dtype == torch.float32  # the float64 check ran on a copy
