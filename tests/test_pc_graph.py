"""Generalised predictive coding on computation graphs: the errors converge to autograd's gradients (section 4.1's
test function), the weight updates at equilibrium match backprop's on an MLP and a CNN, and bad input fails in one
clear line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcrobust.errors import PcrobustError
from pcrobust_pcx.graph import PCGraph

DOUBLE = torch.float64
LABELS = torch.tensor([0, 2, 1, 2])
BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "pc_graph_convergence.py"


class PaperFunction(nn.Module):
    """v_L = tan(sqrt(θ·v0)) + sin(v0²), θ a parameter (section 4.1, Figure 2)."""

    def __init__(self, theta: float = 2.0) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta, dtype=DOUBLE))

    def forward(self, v0: Tensor) -> Tensor:
        return torch.tan(torch.sqrt(self.theta * v0)) + torch.sin(v0**2)


class Branching(nn.Module):
    """A skip connection, a tuple-valued node, a multiplicative gate, a size read, a parameter used directly and
    two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.tensor(0.7))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = torch.relu(self.a(x)) + x
        left, right = h.chunk(2, dim=1)
        out = self.b(left * torch.sigmoid(right)).view(x.size(0), -1)
        return out * self.scale + z.sum(1, keepdim=True)


class Untraceable(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if x.sum() > 0 else x


def squared_error(output: Tensor, target: float) -> Tensor:
    return (output - target) ** 2


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 7), nn.Sigmoid(), nn.Linear(7, 3)).to(DOUBLE)


def cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3),
                         nn.Tanh(), nn.Flatten(), nn.Linear(16, 5), nn.ELU(), nn.Linear(5, 3)).to(DOUBLE)


def largest_relative_error(found: dict[str, Tensor], model: nn.Module, x: Tensor) -> float:
    """Against plain autograd on the model itself: max over parameters of ‖pc − bp‖ / ‖bp‖."""
    names, parameters = zip(*model.named_parameters(), strict=True)
    expected = torch.autograd.grad(F.cross_entropy(model(x), LABELS), parameters)
    return max(float((found[name] - grad).norm() / grad.norm()) for name, grad in zip(names, expected, strict=True))


@pytest.mark.parametrize("eta", [0.05, 0.1, 0.2, 0.5])
def test_paper_function_errors_converge_to_autograd(eta: float) -> None:
    model = PaperFunction()
    v0 = torch.tensor(5.0, dtype=DOUBLE)
    graph = PCGraph(model)
    reference = graph.backprop(v0, 3.0, squared_error)
    at_sweep = graph.infer(v0, 3.0, squared_error, eta, 0)
    relaxed = graph.infer(v0, 3.0, squared_error, eta, math.ceil(25 / eta))
    assert at_sweep.gradients.divergence(reference) > 1.0
    assert relaxed.gradients.divergence(reference) < 1e-6
    leaf = v0.clone().requires_grad_()
    d_input, d_theta = torch.autograd.grad(squared_error(model(leaf), 3.0), [leaf, model.theta])
    assert relaxed.gradients.inputs[0].item() == pytest.approx(d_input.item(), abs=1e-6)
    assert graph.weight_gradients()["theta"].item() == pytest.approx(d_theta.item(), abs=1e-6)
    assert set(relaxed.errors) == {"mul", "sqrt", "tan", "pow_1", "sin", "add"}


def test_energy_starts_at_the_output_error_and_settles_at_the_squared_gradients() -> None:
    graph = PCGraph(PaperFunction())
    v0 = torch.tensor(5.0, dtype=DOUBLE)
    reference = graph.backprop(v0, 3.0, squared_error)
    result = graph.infer(v0, 3.0, squared_error, 0.5, 60)
    assert result.energies.shape == (61,)
    assert result.energies[0].item() == pytest.approx(0.5 * reference.vertices["add"].item() ** 2)
    settled = 0.5 * sum(gradient.square().sum() for gradient in reference.vertices.values())
    assert result.energies[-1].item() == pytest.approx(float(settled), rel=1e-9)
    assert result.loss.item() == pytest.approx(squared_error(result.output, 3.0).item())


def test_backprop_reference_is_autograd_on_the_model() -> None:
    model = Branching().to(DOUBLE)
    x, z, target = (torch.randn(3, n, dtype=DOUBLE, generator=torch.Generator().manual_seed(n)) for n in (6, 2, 4))
    reference = PCGraph(model).backprop((x, z), target, F.mse_loss)
    leaves = [x.clone().requires_grad_(), z.clone().requires_grad_()]
    expected = torch.autograd.grad(F.mse_loss(model(*leaves), target), [*leaves, *model.parameters()])
    found = [*reference.inputs, *reference.parameters.values()]
    assert all(torch.equal(a, b) for a, b in zip(found, expected, strict=True))


def test_branching_graph_converges_and_leaves_the_model_untouched() -> None:
    model = Branching().to(DOUBLE)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    x, z, target = (torch.randn(3, n, dtype=DOUBLE, generator=torch.Generator().manual_seed(n)) for n in (6, 2, 4))
    graph = PCGraph(model)
    reference = graph.backprop((x, z), target, F.mse_loss)
    result = graph.infer((x, z), target, F.mse_loss, 0.5, 80)
    assert {"getitem", "getitem_1", "mul", "view", "add_1"} <= set(result.errors)
    assert result.gradients.divergence(reference) < 1e-10
    assert all(parameter.grad is None for parameter in model.parameters())
    assert all(torch.equal(parameter, before[name]) for name, parameter in model.named_parameters())


@pytest.mark.parametrize("build, shape", [(mlp, (4, 6)), (cnn, (4, 1, 8, 8))], ids=["mlp", "cnn"])
def test_weight_updates_at_equilibrium_match_backprop(build, shape) -> None:
    model = build()
    x = torch.rand(shape, dtype=DOUBLE, generator=torch.Generator().manual_seed(2))
    graph = PCGraph(model)
    graph.infer(x, LABELS, F.cross_entropy, 0.5, 3)
    assert largest_relative_error(graph.weight_gradients(), model, x) > 1e-2  # not yet relaxed
    graph.infer(x, LABELS, F.cross_entropy, 0.5, 60)
    assert largest_relative_error(graph.weight_gradients(), model, x) < 1e-4


def test_algorithm_1_training_follows_backprop_sgd() -> None:
    trained, baseline = mlp(), mlp()
    x = torch.rand(4, 6, dtype=DOUBLE, generator=torch.Generator().manual_seed(3))
    graph = PCGraph(trained)
    losses = []
    for _ in range(4):
        losses.append(graph.infer(x, LABELS, F.cross_entropy, 0.5, 60).loss.item())
        gradients = graph.weight_gradients()
        expected = torch.autograd.grad(F.cross_entropy(baseline(x), LABELS), list(baseline.parameters()))
        with torch.no_grad():
            for (name, parameter), reference, grad in zip(trained.named_parameters(), baseline.parameters(), expected,
                                                          strict=True):
                parameter -= 2.0 * gradients[name]
                reference -= 2.0 * grad
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.01
    assert all(torch.allclose(a, b, rtol=0, atol=1e-9) for a, b in zip(trained.parameters(), baseline.parameters(),
                                                                         strict=True))


@pytest.mark.parametrize("call, message", [
    (lambda: PCGraph(Untraceable()), "cannot trace Untraceable with torch.fx"),
    (lambda: PCGraph(nn.Identity()), "must return one tensor computed from its inputs"),
    (lambda: PCGraph(mlp()).weight_gradients(), "needs a relaxation first"),
    (lambda: PCGraph(mlp()).infer(torch.ones(2, 6, dtype=DOUBLE), LABELS[:2], F.cross_entropy, 2.0), "(0, 2)"),
    (lambda: PCGraph(mlp()).infer(torch.ones(2, 6, dtype=DOUBLE), LABELS[:2], F.cross_entropy, 0.1, -1),
     "non-negative integer"),
    (lambda: PCGraph(mlp()).infer((torch.ones(2, 6), torch.ones(2)), LABELS[:2], F.cross_entropy), "takes 1 input"),
    (lambda: PCGraph(mlp()).infer(torch.ones(2, 6, dtype=torch.long), LABELS[:2], F.cross_entropy),
     "floating-point tensor"),
    (lambda: PCGraph(mlp()).infer(torch.ones(2, 6, dtype=DOUBLE), None, lambda out, _: out), "scalar tensor"),
])
def test_bad_input_is_one_clear_line(call, message: str) -> None:
    with pytest.raises(PcrobustError) as caught:
        call()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARK), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_convergence_benchmark_prints_the_curve_and_saves_the_plot(tmp_path: Path) -> None:
    out = tmp_path / "convergence.png"
    done = run_benchmark("--out", str(out), "--iterations", "40", "--etas", "0.5,1")
    assert done.returncode == 0, done.stderr
    assert "∂L/∂v0 = -63.6546292833" in done.stdout
    rows = {line.split("|")[0].strip(): line for line in done.stdout.splitlines() if "|" in line}
    assert rows["0.5"].split("|")[1].strip() == "32" and rows["1"].split("|")[1].strip() == "3"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--etas", "0.1,2.5"], "step sizes must lie in (0, 2)"),
    (["--iterations", "0"], "--iterations must be at least 1"),
])
def test_convergence_benchmark_bad_arguments_exit_2_in_one_line(tmp_path: Path, args: list[str],
                                                                message: str) -> None:
    done = run_benchmark("--out", str(tmp_path / "p.png"), *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.png").exists()
