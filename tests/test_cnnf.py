"""CNN-F: Eq. 2–7 against a hand-written unroll, t=0 equality, readouts, gradients, training, the shipped net."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pcrobust.errors import PcrobustError
from pcrobust.models import select_readout
from pcrobust_cnnf import CNNF, Architecture, fmnist, mnist
from pcrobust_cnnf.checkpoint import save_checkpoint
from pcrobust_cnnf.training import Recipe, adversarial_losses, pgd_first_pass, standard_losses
from pcrobust_datasets.mnist import load_mnist_5k

TINY = Architecture(in_channels=1, image_size=8, channels=(3, 4), pools=(True, False), hidden=(5,), num_classes=4,
                    encode=1)


def make_net(eta: float = 0.3, mode: str = "exact", architecture: Architecture = TINY) -> CNNF:
    torch.manual_seed(0)
    net = CNNF(architecture, eta=eta, gradient_mode=mode)
    with torch.no_grad():
        for bias in net.conv_biases:
            bias.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def rms(x: torch.Tensor) -> torch.Tensor:
    return x / (x.pow(2).mean((2, 3) if x.dim() == 4 else 1, keepdim=True) + 1e-8).sqrt()


def hand_unroll(net: CNNF, x: torch.Tensor, timesteps: int, greedy: bool = False) -> list[torch.Tensor]:
    """Algorithm 1 for the tiny net written out: conv0 (h, pooled), conv1, linear hidden, linear read-out.

    ``greedy``: the generated features replace h and every adaptive layer's input (no η)."""
    w0, w1 = net.conv_weights
    b0, b1 = net.conv_biases
    fc, out = net.linears
    eta = net.eta

    def mix(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g if greedy else f + eta * (g - f)

    def ada_relu(f: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        return F.relu(f) if g is None else torch.where(g >= 0, F.relu(f), F.relu(-f))

    def ada_pool(r: torch.Tensor, g: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        top, i_max = F.max_pool2d(r, 2, return_indices=True)
        if g is None:
            return top, i_max
        low, i_min = F.max_pool2d(-r, 2, return_indices=True)
        return torch.where(g >= 0, top, -low), torch.where(g >= 0, i_max, i_min)

    h = rms(F.conv2d((x - 0.5) / 0.5, w0, padding=1)) + b0.view(1, -1, 1, 1)
    g: dict[str, torch.Tensor] = {}
    logits = []
    for t in range(timesteps + 1):
        fb = t > 0
        r0 = ada_relu(h, g["h"] if fb else None)
        p0, idx = ada_pool(r0, g["p0"] if fb else None)
        f1 = rms(F.conv2d(p0, w1, padding=1)) + b1.view(1, -1, 1, 1)
        f1 = mix(f1, g["f1"]) if fb else f1
        r1 = ada_relu(f1, g["f1"] if fb else None)
        f2 = rms(r1.flatten(1) @ fc.weight.T) + fc.bias
        f2 = mix(f2, g["f2"]) if fb else f2
        r2 = ada_relu(f2, g["f2"] if fb else None)
        y = out(r2)
        logits.append(y)
        # Eq. 2 from the logits: W^T (z ⊙ g), InsNorm on conv maps, unpool to the chosen positions
        g2 = rms(y @ out.weight)
        g1 = rms(((r2 > 0) * g2 @ fc.weight).view(r1.shape))
        p0_fb = rms(F.conv_transpose2d((r1 > 0) * g1, w1, padding=1))
        g = {"f2": g2, "f1": g1, "p0": p0_fb, "h": F.max_unpool2d(p0_fb, idx, 2, output_size=h.shape[-2:])}
        h = g["h"] if greedy else h + eta * (g["h"] - h)
    return logits


@pytest.mark.parametrize("eta", [0.3, 1.0])
def test_unroll_matches_algorithm_1(images, eta):
    net = make_net(eta)
    with torch.no_grad():
        ours = net(images, 3)
        expected = hand_unroll(net, images, 3)
    for t in range(4):
        torch.testing.assert_close(ours[t], expected[t], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours[0], ours[3]), "the feedback must move the logits"


def test_eta_one_is_greedy_replacement(images):
    net = make_net(1.0)
    with torch.no_grad():
        ours = net(images, 3)
        greedy = hand_unroll(net, images, 3, greedy=True)
    torch.testing.assert_close(ours, torch.stack(greedy), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encode", [1, 2])
def test_t0_is_the_plain_cnn_with_relu_and_maxpool(encode):
    arch = Architecture(image_size=12, channels=(3, 4, 5), pools=(True, False, True), hidden=(6, 5), num_classes=3,
                        encode=encode)
    net = make_net(0.5, architecture=arch)
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    z = (x - 0.5) / 0.5
    for weight, bias, pool in zip(net.conv_weights, net.conv_biases, arch.pools, strict=True):
        z = F.relu(rms(F.conv2d(z, weight, padding=1)) + bias.view(1, -1, 1, 1))
        z = F.max_pool2d(z, 2) if pool else z
    z = z.flatten(1)
    for layer in net.linears[:-1]:
        z = F.relu(rms(z @ layer.weight.T) + layer.bias)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 2)[0], net.linears[-1](z), rtol=1e-6, atol=1e-6)


def test_avg_readout_is_the_mean_of_the_iterations(images):
    net = make_net()
    with torch.no_grad():
        logits = net(images, 3)
        separately = torch.stack([net(images, t)[t] for t in range(4)])
    torch.testing.assert_close(logits, separately)
    torch.testing.assert_close(select_readout(logits, "avg"), separately.mean(0))
    torch.testing.assert_close(select_readout(logits, "last"), separately[-1])
    assert net.describe()["readouts"] == ["last", "avg"]


@pytest.mark.parametrize("mode", ["exact", "bpda"])
def test_gradients_are_finite_and_nonzero_at_every_iteration(images, mode):
    net = make_net(mode=mode)
    for t in range(4):
        x = images.clone().requires_grad_(True)
        logits = net(x, 3)[t]
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, torch.arange(6) % 4), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, f"t={t}"
    assert net.describe()["gradient_mode"] == mode


def test_bpda_changes_only_the_gradients_of_the_adaptive_iterations(images):
    exact, bpda = make_net(mode="exact"), make_net(mode="bpda")
    grads = []
    for net in (exact, bpda):
        x = images.clone().requires_grad_(True)
        logits = net(x, 2)
        grads.append([torch.autograd.grad(logits[t].sum(), x, retain_graph=True)[0] for t in range(3)])
        assert exact.describe()["gradient_treatment"] != bpda.describe()["gradient_treatment"]
    with torch.no_grad():
        torch.testing.assert_close(exact(images, 2), bpda(images, 2))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    assert not torch.allclose(grads[0][2], grads[1][2])


def test_batch_composition_does_not_change_logits(images):
    net = make_net()
    with torch.no_grad():
        together = net(images, 3)
        alone = net(images[2:3], 3)
        shuffled = net(images.flip(0), 3).flip(1)
    torch.testing.assert_close(together[:, 2:3], alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together, shuffled, rtol=1e-5, atol=1e-6)


def test_dtype_follows_the_model_and_the_input(images):
    net = make_net()
    with torch.no_grad():
        single = net(images, 3)
        double = net.double()(images.double(), 3)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, rtol=1e-4, atol=1e-5)


def test_reconstruction_errors_have_the_contract_shape(images):
    out = make_net().unroll(images, 2)
    assert out.logits.shape == (3, 6, 4)
    assert out.reconstruction_errors is not None and out.reconstruction_errors.shape == (3, 3, 6)


def test_a_few_training_steps_lower_every_loss_term(images):
    net = make_net().train()
    labels = torch.arange(6) % 4
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    recipe = Recipe()
    first = standard_losses(net, images, labels, 2)
    for _ in range(15):
        loss = standard_losses(net, images, labels, 2).total(recipe)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = standard_losses(net, images, labels, 2)
    for term in ("cross_entropy", "reconstruction", "intermediate"):
        assert getattr(last, term) < getattr(first, term), term


def test_adversarial_training_attacks_the_first_pass_and_lowers_every_loss_term(images):
    net = make_net().train()
    labels = torch.arange(6) % 4
    recipe = Recipe(epsilon=0.1, pgd_steps=3, pgd_step_size=0.05)
    generator = torch.Generator().manual_seed(0)
    adversarial = pgd_first_pass(net, images, labels, recipe, generator)
    assert net.training and all(p.requires_grad for p in net.parameters()), "eval mode only during the attack"
    assert (adversarial - images).abs().max() <= 0.1 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        clean_ce = F.cross_entropy(net(images, 0)[0], labels)
        attacked_ce = F.cross_entropy(net(adversarial, 0)[0], labels)
    assert attacked_ce > clean_ce
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = adversarial_losses(net, images, adversarial, labels, recipe)
    for _ in range(15):
        loss = adversarial_losses(net, images, adversarial, labels, recipe).total(recipe)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = adversarial_losses(net, images, adversarial, labels, recipe)
    for term in ("cross_entropy", "reconstruction", "intermediate"):
        assert getattr(last, term) < getattr(first, term), term


def test_shipped_checkpoint_loads_safely_and_classifies_real_digits():
    blob = torch.load(mnist.shipped_weights(), weights_only=True)
    assert blob["format"] == "pcrobust-cnnf/1" and Architecture.from_dict(blob["architecture"]) == mnist.ARCHITECTURE
    net = mnist.build(None, {})
    data = load_mnist_5k("test")
    with torch.no_grad():
        logits = net(data.images[:200], net.default_timesteps)
    accuracy = (logits.argmax(-1) == data.labels[:200]).float().mean(1)
    assert (accuracy >= 0.9).all(), accuracy.tolist()


def test_the_papers_fashion_mnist_network_loads_its_own_checkpoints(tmp_path):
    net = CNNF(fmnist.ARCHITECTURE)
    assert [layer.in_features for layer in net.linears] == [3136, 1000, 128]
    assert [tuple(w.shape[:2]) for w in net.conv_weights] == [(16, 1), (32, 16), (32, 32), (64, 32)]
    with pytest.raises(PcrobustError, match="ships no weights"):
        fmnist.build(None, {})
    path = save_checkpoint(net, tmp_path / "f.pt", {})
    loaded = fmnist.build(path, {"eta": "0.5"})
    assert loaded.eta == 0.5 and loaded.default_timesteps == 1
    with torch.no_grad():
        assert loaded(torch.rand(2, 1, 28, 28)).shape == (2, 2, 10)
    with pytest.raises(PcrobustError, match="another architecture"):
        mnist.build(path, {})
    with pytest.raises(PcrobustError, match="unknown option 'beta'"):
        fmnist.build(path, {"beta": "1"})


def test_cli_evaluates_the_default_cnnf(cli, tmp_path):
    code, out, err = cli("evaluate", "--plugin", "cnnf", "--n-clean", "20", "--timesteps", "1", "--noise-sigmas",
                         "0.2", "--n-attack", "5", "--epsilons", "0.1", "--steps", "3", "--quiet",
                         "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    model = results["model"]
    assert model["plugin"] == "cnnf" and model["name"] == "mnist-cnnf" and model["gradient_mode"] == "exact"
    assert model["readouts"] == ["last", "avg"] and model["eta"] == 0.1


def test_train_refuses_bad_options_in_one_line(cli, tmp_path):
    for option, message in (("nope=1", "unknown training option 'nope'"), ("cycles=0", "at least 1"),
                            ("lr=fast", "must be numbers")):
        code, _, err = cli("train", "--plugin", "cnnf", "--out", str(tmp_path / "c.pt"), "-o", option)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c.pt").exists()
