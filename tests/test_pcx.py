"""The PC-trained family: test-time inference (energy descent), PC learning and its algorithms, checkpoints and
resume, parameters saved by PCX, the shipped default end to end."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pcrobust.errors import PcrobustError
from pcrobust.registry import TrainingRequest
from pcrobust_datasets.mnist import load_mnist_5k
from pcrobust_pcx import mnist
from pcrobust_pcx.algorithms import Clamp, clamp_for_epoch, nudging_sign
from pcrobust_pcx.network import Architecture, Inference, PCClassifier
from pcrobust_pcx.pcx_params import load_pcx_params
from pcrobust_pcx.training import Recipe, train_batch

pytest_plugins = ("pytester",)

SMALL = Architecture(image_shape=(1, 4, 4), hidden=(6, 5), classes=3, activation="tanh", generative_weight=0.5)


def small_net(inference: Inference | None = None) -> PCClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PCClassifier(SMALL, inference or Inference(0.1, 0.5), 4).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))


def test_t0_is_the_feedforward_pass_and_later_steps_descend_the_energy(images):
    net = small_net()
    with torch.no_grad():
        output = net.unroll(images, 6)
    hidden = torch.tanh(net.layers[1](torch.tanh(net.layers[0](((images - 0.5) / 0.5).flatten(1)))))
    assert torch.allclose(output.logits[0], net.layers[2](hidden), atol=1e-6)
    assert output.measures is not None and set(output.measures) == set(net.measure_names)
    energy = output.measures["energy"]
    assert energy.shape == (7, 5) and bool(torch.isfinite(energy).all())
    assert bool((energy[1:] < energy[:-1] + 1e-6).all()), energy  # descent (small step, gentle momentum)
    assert float((output.logits[-1] - output.logits[0]).abs().max()) > 1e-3  # the timesteps change the logits


def test_without_top_down_terms_the_feedforward_state_is_already_the_minimum(images):
    net = small_net()
    states = net.forward_states(net.flat_image(images))
    bottom_up = torch.stack(net.bottom_up_errors(net.flat_image(images), states)).sum(0)
    assert float(bottom_up.detach().abs().max()) == 0.0  # why the family adds top-down predictions
    assert float(net.hidden_energy(net.flat_image(images), states).detach().min()) > 0


def test_one_inference_step_is_sgd_with_momentum_on_the_energy(images):
    net = small_net(Inference(0.2, 0.9))
    image = net.flat_image(images)
    with torch.no_grad():
        output = net.unroll(images, 2)
    states = [h.detach().requires_grad_(True) for h in net.forward_states(image)]
    grads = torch.autograd.grad(net.hidden_energy(image, states).sum(), states)
    first = [h - 0.2 * g for h, g in zip(states, grads, strict=True)]
    assert torch.allclose(output.logits[1], net.logits_of(first), atol=1e-6)
    grads2 = torch.autograd.grad(net.hidden_energy(image, first).sum(), first)
    second = [h - 0.2 * (0.9 * g1 + g2) for h, g1, g2 in zip(first, grads, grads2, strict=True)]
    assert torch.allclose(output.logits[2], net.logits_of(second), atol=1e-5)


def test_input_gradients_flow_through_the_inference_steps(images):
    net = small_net()
    x = images.clone().requires_grad_(True)
    logits = net(x, 3)
    for t in range(4):
        (grad,) = torch.autograd.grad(logits[t, :, 0].sum(), x, retain_graph=True)
        assert bool(torch.isfinite(grad).all()) and bool((grad.flatten(1).norm(dim=1) > 0).all())
    # the gradient at t = 3 differs from the feedforward one: the steps are differentiated, not skipped
    (g0,) = torch.autograd.grad(logits[0, :, 0].sum(), x, retain_graph=True)
    (g3,) = torch.autograd.grad(logits[3, :, 0].sum(), x)
    assert float((g3 - g0).abs().max()) > 1e-6


def test_an_images_steps_do_not_depend_on_its_batch(images):
    net = small_net()
    with torch.no_grad():
        together = net.unroll(images, 4)
        alone = net.unroll(images[2:3], 4)
    assert torch.allclose(together.logits[:, 2:3], alone.logits, atol=1e-6)
    assert torch.allclose(together.measures["energy"][:, 2:3], alone.measures["energy"], atol=1e-5)


def test_nudging_targets_signs_and_gradient_scales_follow_appendix_b():
    onehot, logits = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.4, 0.2]])
    positive = clamp_for_epoch("pn", 2, 0, beta0=0.3, beta_increase=0.1)
    assert positive.beta == pytest.approx(0.5)
    assert torch.allclose(positive.target(onehot, logits), torch.tensor([[0.2, 0.6]]))
    negative = clamp_for_epoch("nn", 0, 0, beta0=0.3, beta_increase=0.1)
    assert torch.allclose(negative.target(onehot, logits), torch.tensor([[0.52, -0.04]]))
    assert negative.gradient_scale == pytest.approx(-1 / 0.3)  # the weight update is inverted
    assert clamp_for_epoch("pn", 50, 0, 0.3, 0.1).beta == 1.0  # capped: standard PC late in training
    standard = clamp_for_epoch("pc-ce", 0, 0, 0.3, 0.1)
    assert standard.cross_entropy and torch.equal(standard.target(onehot, logits), onehot)
    ce = standard.energy(onehot, logits)
    assert torch.allclose(ce, F.cross_entropy(logits, torch.tensor([1]), reduction="none"))
    signs = [nudging_sign("cn", 0, epoch) for epoch in range(12)]
    assert set(signs) == {1, -1} and signs == [nudging_sign("cn", 0, epoch) for epoch in range(12)]


@pytest.mark.parametrize("algorithm", ["pc-ce", "pc-se", "ipc", "pn", "nn", "cn"])
def test_every_algorithm_moves_the_feedforward_prediction_towards_the_label(algorithm, images):
    torch.manual_seed(0)
    net = PCClassifier(SMALL, Inference(), 2)
    labels = torch.tensor([0, 1, 2, 0, 1])
    recipe = Recipe(algorithm=algorithm, steps=4, lr=1e-2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr)
    clamp = clamp_for_epoch(algorithm, 0, 0, 0.5, 0.0) if algorithm != "cn" else Clamp(-0.5, False)

    def loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(net(images, 0)[0], labels))

    before = loss()
    for _ in range(30):
        train_batch(net, optimizer, images, labels, recipe, clamp)
    assert loss() < before - 0.05, (before, loss())


def small_request(tmp_path, name, epochs, resume=False):
    from pcrobust.cli import _host

    options = {"epochs": str(epochs), "hidden": "8", "steps": "2", "batch_size": "500"}
    return TrainingRequest(tmp_path / name, 3, options, _host().registries.datasets, resume=resume)


def test_training_is_deterministic_and_resuming_gives_the_same_file(tmp_path, monkeypatch):
    from pcrobust_pcx import training

    once = mnist.train(small_request(tmp_path, "a.pt", 2))
    again = mnist.train(small_request(tmp_path, "b.pt", 2))
    assert once.read_bytes() == again.read_bytes()
    assert "optimizer" not in torch.load(once, weights_only=True)  # a finished file keeps the weights alone
    save = training.save_checkpoint

    def save_then_stop(*args: object) -> None:
        save(*args)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        mnist.train(small_request(tmp_path, "c.pt", 2))
    monkeypatch.undo()
    blob = torch.load(tmp_path / "c.pt", weights_only=True)
    assert blob["metadata"]["epochs_done"] == 1 and "optimizer" in blob
    mnist.train(small_request(tmp_path, "c.pt", 2, resume=True))
    assert (tmp_path / "c.pt").read_bytes() == once.read_bytes()
    with pytest.raises(PcrobustError, match="training finished"):
        mnist.train(small_request(tmp_path, "a.pt", 3, resume=True))
    with pytest.raises(PcrobustError, match="other settings"):
        other = small_request(tmp_path, "c.pt", 3, resume=True)
        mnist.train(TrainingRequest(other.out, 4, other.options, other.datasets, resume=True))


def test_cli_trains_with_the_named_algorithm_and_records_what_made_the_file(cli, tmp_path):
    code, out, err = cli("train", "--plugin", "pcx", "--algorithm", "nn", "--seed", "5", "--out",
                         str(tmp_path / "n.pt"), "-o", "epochs=1", "-o", "hidden=8", "-o", "steps=1",
                         "-o", "batch_size=1000")
    assert code == 0, err
    metadata = torch.load(tmp_path / "n.pt", weights_only=True)["metadata"]
    assert metadata["recipe"]["algorithm"] == "nn" and metadata["recipe"]["hidden"] == [8]
    assert metadata["seed"] == 5 and metadata["dataset"] == "mnist-5k/train" and metadata["epochs_done"] == 1
    assert metadata["torch"] == torch.__version__ and len(metadata["energy_per_epoch"]) == 1
    code, _, err = cli("evaluate", "--plugin", "pcx", "--weights", str(tmp_path / "n.pt"), "--n-clean", "8",
                       "--timesteps", "1", "--noise-sigmas", "", "--attack", "none", "--quiet",
                       "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["model"]["architecture"]["hidden"] == [8]


def test_train_refuses_bad_options_in_one_line(cli, tmp_path):
    for args, message in ((["-o", "nope=1"], "unknown key 'nope'"), (["-o", "epochs=0"], "epochs"),
                          (["--algorithm", "bp"], "algorithm"), (["-o", "state_lr=fast"], "state_lr"),
                          (["-o", "activation=relu6"], "unknown activation")):
        code, _, err = cli("train", "--plugin", "pcx", "--out", str(tmp_path / "p.pt"), *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("train", "--plugin", "pcx", "--out", str(tmp_path / "none.pt"), "--resume")
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "p.pt").exists()


def equinox_conv_transpose(x, weight, bias, stride, padding):
    """equinox's ConvTranspose: the input dilated by the stride, padded by k − 1 − p, cross-correlated with the
    (out, in, kh, kw) kernel as it is (no flip), plus the (out, 1, 1) bias."""
    batch, channels, height, width = x.shape
    dilated = x.new_zeros(batch, channels, (height - 1) * stride + 1, (width - 1) * stride + 1)
    dilated[:, :, ::stride, ::stride] = x
    pad = weight.shape[-1] - 1 - padding
    return F.conv2d(F.pad(dilated, (pad, pad, pad, pad)), weight) + bias


def test_parameters_saved_by_pcx_load_into_the_equivalent_torch_layers(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {".layers[0].nn.weight": rng.normal(size=(4, 2, 3, 3)), ".layers[0].nn.bias": rng.normal(size=(4, 1, 1)),
              ".layers[1].nn.weight": rng.normal(size=(3, 4, 3, 3)), ".layers[1].nn.bias": rng.normal(size=(3, 1, 1)),
              ".layers[2].nn.weight": rng.normal(size=(5, 27)), ".layers[2].nn.bias": rng.normal(size=(5,))}
    arrays = {key: value.astype(np.float32) for key, value in arrays.items()}
    np.savez(tmp_path / "pcx.npz", **arrays)
    conv, transpose, linear = nn.Conv2d(2, 4, 3, padding=1), nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1), \
        nn.Linear(27, 5)
    load_pcx_params(tmp_path / "pcx.npz", {".layers[0].nn": conv, ".layers[1].nn": transpose,
                                           ".layers[2].nn": linear})
    x = torch.rand(2, 2, 2, 2)
    w = {key: torch.from_numpy(value) for key, value in arrays.items()}
    with torch.no_grad():
        expected = F.conv2d(x, w[".layers[0].nn.weight"], padding=1) + w[".layers[0].nn.bias"]
        assert torch.allclose(conv(x), expected, atol=1e-5)
        up = equinox_conv_transpose(expected, w[".layers[1].nn.weight"], w[".layers[1].nn.bias"], 2, 1)
        assert up.shape == (2, 3, 3, 3) and torch.allclose(transpose(expected), up, atol=1e-5)
        assert torch.allclose(linear(up.flatten(1)), up.flatten(1) @ w[".layers[2].nn.weight"].T
                              + w[".layers[2].nn.bias"], atol=1e-5)


def test_the_default_network_loads_pcx_parameters_and_bad_files_fail_in_one_line(cli, tmp_path):
    net = mnist.build(None, {})
    arrays = {f"{prefix}.{name}": value.detach().numpy() for prefix, module in mnist.pcx_modules(net).items()
              for name, value in module.named_parameters()}
    np.savez(tmp_path / "good.npz", **arrays)
    loaded = mnist.build(tmp_path / "good.npz", {})
    x = load_mnist_5k("test").images[:4]
    with torch.no_grad():
        assert torch.allclose(loaded(x, 2), net(x, 2))
    np.savez(tmp_path / "short.npz", **{k: v for k, v in arrays.items() if "decoder[1]" not in k})
    np.savez(tmp_path / "shape.npz", **{**arrays, ".layers[0].nn.weight": arrays[".layers[0].nn.weight"].T})
    np.savez(tmp_path / "objects.npz", **{**arrays, ".extra": np.array([{"a": 1}], dtype=object)})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, message in (("short", "lacks '.decoder[1].nn.weight'"), ("shape", "does not fit Linear"),
                          ("objects", "Python objects"), ("junk", "not a readable .npz")):
        code, _, err = cli("evaluate", "--plugin", "pcx", "--weights", str(tmp_path / f"{name}.npz"), "--n-clean",
                           "4", "--out", str(tmp_path / "r"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_shipped_checkpoint_classifies_real_digits_and_inference_moves_it():
    net = mnist.build(None, {})
    data = load_mnist_5k("test")
    with torch.no_grad():
        output = net.unroll(data.images[:300], net.default_timesteps)
    accuracy = (output.logits.argmax(-1) == data.labels[:300]).float().mean(1)
    assert (accuracy >= 0.8).all(), accuracy.tolist()
    energy = output.measures["energy"].mean(1)
    assert float(energy[-1]) < float(energy[0])
    changed = (output.logits[-1].argmax(-1) != output.logits[0].argmax(-1)).sum()
    assert int(changed) > 0


def test_options_are_typed_and_checked(cli, tmp_path):
    assert mnist.build(None, {"state_lr": "0.05", "momentum": "0"}).inference == Inference(0.05, 0.0)
    for option, message in (("momentum=1", "momentum"), ("beta=1", "unknown key 'beta'")):
        code, _, err = cli("evaluate", "--plugin", "pcx", "-o", option, "--out", str(tmp_path / "r"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_evaluates_clean_noise_and_bim_per_inference_step_with_the_energy(cli, tmp_path):
    code, out, err = cli("evaluate", "--plugin", "pcx", "--n-clean", "40", "--timesteps", "3", "--noise-sigmas",
                         "0.3", "--n-attack", "6", "--epsilons", "0.1", "--steps", "3", "--quiet",
                         "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["model"]["plugin"] == "pcx" and results["model"]["name"] == "mnist-pcx"
    assert results["model"]["inference"]["state_lr"] == 0.1
    clean = results["sections"][0]
    energy = clean["model_measures"]["energy"]
    assert len(energy["mean"]) == 4 and energy["n"] == 40 and energy["mean"][3] < energy["mean"][0]
    assert [s["kind"] for s in results["sections"]] == ["clean", "noise", "attack"]
    assert "energy" in out and "measure (mean)" in out
    assert "Measures the model reports" in (tmp_path / "r" / "report.html").read_text()
    digest = hashlib.sha256(mnist.shipped_weights().read_bytes()).hexdigest()
    assert digest in json.dumps(results["provenance"])


def test_the_conformance_kit_passes_the_family(pytester):
    recorder = pytester.inline_run("-p", "no:cacheprovider", "--pcrobust-conformance=pcx")
    passed, _, failed = recorder.listoutcomes()
    assert not failed and len(passed) >= 10
    assert any("test_extras_have_their_shapes[pcx/mnist-pcx]" in report.nodeid for report in passed)
