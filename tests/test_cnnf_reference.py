"""Released reference CNN-F checkpoints: their state-dict layout, mapped and checked key by key."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pcrobust.errors import PcrobustError
from pcrobust_cnnf import fmnist

# The reference model_mnist.py CNNF(10): conv{i} (transposed twin tied), ins{i}_bias, fc{j} (+ linear_t), fc{j}_bias.
CONVS = [(16, 1), (32, 16), (32, 32), (64, 32)]
FCS = [(1000, 3136), (128, 1000), (10, 128)]


def reference_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for i, (c_out, c_in) in enumerate(CONVS, 1):
        weight = torch.randn(c_out, c_in, 3, 3, generator=generator) * (2 / (9 * c_out)) ** 0.5
        state[f"conv{i}.conv.weight"] = weight
        state[f"conv{i}.conv_t.weight"] = weight
        state[f"ins{i}_bias.bias"] = torch.rand(1, c_out, 1, 1, generator=generator) - 0.5
    for j, (n_out, n_in) in enumerate(FCS, 1):
        weight = torch.randn(n_out, n_in, generator=generator) / n_in ** 0.5
        state[f"fc{j}.linear.weight"] = weight
        state[f"fc{j}.linear_t.weight"] = weight.t()
        state[f"fc{j}_bias.bias"] = torch.rand(1, n_out, generator=generator) - 0.5
    return state


def reference_plain_cnn(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The reference network's first forward pass written out: conv, InsNorm (RMS), bias, ReLU, pools after
    conv3 and conv4, then fc + bias with ReLU between; inputs normalised to [-1, 1]."""
    z = (x - 0.5) / 0.5
    for i in range(1, 5):
        z = F.conv2d(z, state[f"conv{i}.conv.weight"], padding=1)
        z = F.relu(z / (z.pow(2).mean((2, 3), keepdim=True) + 1e-8).sqrt() + state[f"ins{i}_bias.bias"])
        z = F.max_pool2d(z, 2) if i >= 3 else z
    z = z.flatten(1)
    for j in range(1, 4):
        z = z @ state[f"fc{j}.linear.weight"].T + state[f"fc{j}_bias.bias"]
        z = F.relu(z) if j < 3 else z
    return z


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "CNNF_1_fmnist.pt"
    torch.save(reference_state(), path)
    return path


def test_t0_of_the_loaded_network_is_the_reference_feedforward_pass(checkpoint):
    net = fmnist.build(None, {"reference": str(checkpoint)})
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = net(x)
        expected = reference_plain_cnn(reference_state(), x)
    assert logits.shape == (2, 3, 10) and net.default_timesteps == 1 and net.eta == 0.1
    torch.testing.assert_close(logits[0], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(logits[1], logits[0]), "the feedback iteration must move the logits"
    assert net.describe()["architecture"]["linear_norm"] is False
    assert fmnist.weight_files(None, {"reference": str(checkpoint)}) == [checkpoint]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("conv3.conv_t.weight"), "lacks key 'conv3.conv_t.weight'"),
    (lambda s: s.update({"fc2_bias.bias": torch.zeros(1, 64)}), "key 'fc2_bias.bias' has shape [1, 64]"),
    (lambda s: s.update({"module.fc4.weight": torch.zeros(1)}), "has key 'module.fc4.weight'"),
    (lambda s: s.update({"conv1.conv.weight": [1.0]}), "not a state dict of tensors"),
])
def test_a_checkpoint_off_the_reference_layout_names_the_first_bad_key(tmp_path, edit, message):
    state: dict[str, object] = dict(reference_state())
    edit(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(PcrobustError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fmnist.build(None, {"reference": str(tmp_path / "bad.pt")})


def test_a_pickled_object_is_refused_unrun_and_weights_exclude_reference(tmp_path, checkpoint):
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"conv1.conv.weight": Path("x")}, handle)
    with pytest.raises(PcrobustError, match="not a PyTorch checkpoint|refused as unsafe"):
        fmnist.build(None, {"reference": str(tmp_path / "evil.pt")})
    with pytest.raises(PcrobustError, match="either --weights FILE or -o reference=FILE"):
        fmnist.build(checkpoint, {"reference": str(checkpoint)})


def test_cli_evaluates_a_reference_checkpoint(cli, tmp_path, checkpoint):
    code, _, err = cli("evaluate", "--plugin", "cnnf", "--model", "fmnist-cnnf", "-o", f"reference={checkpoint}",
                       "--dataset", "mnist-5k", "--attack", "none", "--noise-sigmas", "", "--n-clean", "20",
                       "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["model"]["name"] == "fmnist-cnnf"
    assert any(name.endswith("CNNF_1_fmnist.pt") for name in results["provenance"]["weights"])
    code, _, err = cli("evaluate", "--plugin", "cnnf", "--model", "fmnist-cnnf", "-o", "reference=missing.pt",
                       "--dataset", "mnist-5k", "--quiet", "--out", str(tmp_path / "m"))
    assert code == 2 and "reference checkpoint missing.pt does not exist" in err and len(err.splitlines()) == 1
