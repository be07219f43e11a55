"""Numerical precision: exact normalisation constants in every dtype, and batch invariance per timestep."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from pcrobust.models import Normalization, evaluation_mode
from pcrobust_predify import mnist
from tests.conftest import make_tiny

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def values(buffer: torch.Tensor) -> list[float]:
    return buffer.flatten().tolist()


def test_normalization_starts_in_float32_rounded_once_from_the_values_given():
    norm = Normalization(*IMAGENET)
    assert norm.mean.dtype == norm.std.dtype == torch.float32
    assert norm.mean.shape == (1, 3, 1, 1)
    assert torch.equal(norm.mean.flatten(), torch.tensor(IMAGENET[0], dtype=torch.float32))
    assert values(norm.mean)[0] == pytest.approx(0.485, abs=1e-7) and values(norm.mean)[0] != 0.485
    x = torch.rand(2, 3, 4, 4)
    assert norm(x).dtype == torch.float32, "a float32 model must stay float32"


def test_double_gives_the_exact_constants_in_float64():
    norm = Normalization(*IMAGENET).double()
    assert norm.mean.dtype == norm.std.dtype == torch.float64
    assert values(norm.mean) == [0.485, 0.456, 0.406]  # not 0.48500001430511475: rebuilt, not widened
    assert values(norm.std) == [0.229, 0.224, 0.225]
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    mean = torch.tensor(IMAGENET[0], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1], dtype=torch.float64).view(1, 3, 1, 1)
    assert torch.equal(norm(x), (x - mean) / std)


@pytest.mark.parametrize("convert, dtype", [
    pytest.param(lambda m: m.double(), torch.float64, id="double"),
    pytest.param(lambda m: m.float(), torch.float32, id="float"),
    pytest.param(lambda m: m.half(), torch.float16, id="half"),
    pytest.param(lambda m: m.bfloat16(), torch.bfloat16, id="bfloat16"),
    pytest.param(lambda m: m.to(torch.float64), torch.float64, id="to-dtype"),
    pytest.param(lambda m: m.to("cpu", torch.float64), torch.float64, id="to-device-dtype"),
    pytest.param(lambda m: m.type(torch.float64), torch.float64, id="type"),
])
def test_dtype_follows_every_conversion_and_rounds_once_from_the_exact_values(convert, dtype):
    norm = convert(Normalization(*IMAGENET).half().double().float())  # earlier conversions must leave no trace
    for buffer, given in ((norm.mean, IMAGENET[0]), (norm.std, IMAGENET[1])):
        assert buffer.dtype == dtype and buffer.device.type == "cpu"
        assert torch.equal(buffer.flatten(), torch.tensor(given, dtype=torch.float64).to(dtype))


def test_round_trip_through_float32_keeps_float64_exact():
    norm = Normalization(*IMAGENET).double().float().double()
    assert values(norm.mean) == [0.485, 0.456, 0.406]


def test_to_meta_and_to_empty_refill_the_constants():
    norm = Normalization(*IMAGENET).to("meta", torch.float64)
    assert norm.mean.device.type == "meta" and norm.mean.dtype == torch.float64
    norm.to_empty(device="cpu")  # non-persistent buffers would otherwise hold uninitialised memory
    assert norm.mean.device.type == "cpu"
    assert values(norm.mean) == [0.485, 0.456, 0.406] and values(norm.std) == [0.229, 0.224, 0.225]


def test_a_module_built_under_inference_mode_still_converts():
    with torch.inference_mode():
        norm = Normalization(*IMAGENET)
    norm.to("cpu")  # a no-op conversion hands back the inference tensors themselves
    assert values(norm.double().mean) == [0.485, 0.456, 0.406]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_conversion_keeps_the_exact_constants():
    norm = Normalization(*IMAGENET).cuda().double()
    assert norm.mean.device.type == "cuda" and norm.mean.dtype == torch.float64
    assert values(norm.mean) == [0.485, 0.456, 0.406]
    back = norm.to("cpu", torch.float32)
    assert back.mean.device.type == "cpu" and torch.equal(back.mean.flatten(), torch.tensor(IMAGENET[0]))


def test_describe_records_the_values_given_in_every_dtype():
    norm = Normalization((0.1307,), (0.3081,))
    expected = {"mean": [0.1307], "std": [0.3081], "input_range": [0, 1]}
    assert norm.describe() == expected  # not 0.1307000070810318
    assert norm.double().describe() == expected
    assert norm.half().describe() == expected
    assert copy.deepcopy(norm).double().describe() == expected


def test_constants_stay_out_of_the_state_dict():
    assert Normalization(*IMAGENET).double().state_dict() == {}


def test_a_float64_model_is_float64_throughout(default_model):
    net = copy.deepcopy(default_model).double()
    assert net.describe()["normalization"]["mean"] == [0.1307]
    assert values(net.normalization.mean) == [0.1307] and values(net.normalization.std) == [0.3081]
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert all(b.dtype == torch.float64 for b in net.buffers() if b.is_floating_point())
    with torch.no_grad():
        logits = net(torch.rand(2, 1, 28, 28, dtype=torch.float64), 2)
    assert logits.dtype == torch.float64


# Batch invariance. Each image's logits, at every timestep, must not depend on the other images of its
# batch; the only allowed difference is the rounding of the backbone's own kernels, which may order their
# sums differently for different batch sizes. In float64 that is ~1e-14 on the default network (logits up
# to ~33); in float32 the plain backbone alone moves by a few 1e-6 there.

def tiny_net():
    return make_tiny()


def tiny_strong_alpha():
    return make_tiny(beta=0.5, lam=0.3, alpha=2.0)


def default_net():
    return mnist.build(None, {})


def default_strong_alpha():
    return mnist.build(None, {"beta": "0.6", "lambda": "0.2", "alpha": "0.5"})


NETWORKS = {
    "tiny": (tiny_net, (1, 8, 8), 4),
    "tiny-alpha2": (tiny_strong_alpha, (1, 8, 8), 6),
    "default": (default_net, (1, 28, 28), 8),
    "default-0.6/0.2/0.5": (default_strong_alpha, (1, 28, 28), 8),
}


def per_batch_size(net, x: torch.Tensor, timesteps: int) -> dict[str, torch.Tensor]:
    """``[T+1, N, K]`` logits of all N images run at batch size 1, 3 and N."""
    with torch.no_grad():
        return {
            "1": torch.cat([net(x[i:i + 1], timesteps) for i in range(len(x))], 1),
            "3": torch.cat([net(x[i:i + 3], timesteps) for i in range(0, len(x), 3)], 1),
            "full": net(x, timesteps),
        }


def max_batch_gap(runs: dict[str, torch.Tensor]) -> float:
    full = runs["full"]
    return max((runs[k] - full).abs().max().item() for k in ("1", "3"))


@pytest.mark.parametrize("name", NETWORKS)
def test_float64_logits_do_not_depend_on_batch_size(name):
    make, shape, timesteps = NETWORKS[name]
    net = make().double()
    x = torch.rand(10, *shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    runs = per_batch_size(net, x, timesteps)
    assert runs["full"].dtype == torch.float64
    assert (runs["full"][-1] - runs["full"][0]).abs().max() > 1e-3, "the dynamics must move the logits"
    assert max_batch_gap(runs) <= 1e-12


@pytest.mark.parametrize("name", NETWORKS)
def test_float32_logits_agree_across_batch_sizes_to_rounding(name):
    make, shape, timesteps = NETWORKS[name]
    net = make()
    x = torch.rand(10, *shape, generator=torch.Generator().manual_seed(7))
    runs = per_batch_size(net, x, timesteps)
    scale = runs["full"].abs().max().item()
    assert max_batch_gap(runs) <= 4e-6 * max(scale, 1.0)  # measured ≤ 4e-7 · max|logit|


def test_bf16_autocast_keeps_predictions_and_is_recorded(default_model, cli, tmp_path):
    from pcrobust.engine import precision_scope, predict
    from pcrobust_datasets.mnist import load_mnist_5k

    images = load_mnist_5k("test").images[:200]
    cpu = torch.device("cpu")
    with evaluation_mode(default_model):
        full = predict(default_model, images, 2, 100, cpu, progress=False)
        with precision_scope("bf16", cpu):
            half = predict(default_model, images, 2, 100, cpu, progress=False)
            assert torch.is_autocast_enabled("cpu")
        assert not torch.is_autocast_enabled("cpu"), "the scope is left as it was"
    assert half.dtype == torch.float32 and not torch.equal(half, full), "bf16 really ran"
    assert (half.argmax(2) == full.argmax(2)).float().mean() >= 0.98
    small = ("evaluate", "--plugin", "predify", "--n-clean", "100", "--n-attack", "10", "--timesteps", "1",
             "--epsilons", "0.3", "--steps", "3", "--noise-sigmas", "", "--quiet")
    assert cli(*small, "--precision", "bf16", "--out", str(tmp_path / "bf16"))[0] == 0
    assert cli(*small, "--out", str(tmp_path / "fp32"))[0] == 0
    bf16, fp32 = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("bf16", "fp32"))
    assert bf16["provenance"]["precision"] == "bf16" and fp32["provenance"]["precision"] == "float32"
    for a, b in zip(bf16["sections"], fp32["sections"], strict=True):
        for x, y in zip(a["series"], b["series"], strict=True):
            assert max(abs(u - v) for u, v in zip(x["values"], y["values"], strict=True)) <= 0.2, a["id"]
