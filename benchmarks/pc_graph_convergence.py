"""Predictive coding's errors against autograd's gradients on the test function of section 4.1 (Millidge et al. 2020):
v_L = tan(sqrt(θ·v0)) + sin(v0²), v0 = 5, θ = 2, target 3, L = (v_L − 3)², for several inference step sizes η.

Prints, per η, the divergence (largest absolute difference over every vertex, the input and θ) after chosen
iterations and the first iteration where it falls below the threshold, then the time of one relaxation against one
autograd backward pass; plots the divergence curves and the PC estimate of ∂L/∂v0 against autograd's value.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from pcrobust.errors import PcrobustError, first_line
from pcrobust_pcx.graph import GraphGradients, PCGraph

DOUBLE = torch.float64
REPORTED = (10, 25, 50, 100, 200, 400)


class PaperFunction(nn.Module):
    """v_L = tan(sqrt(θ·v0)) + sin(v0²) with θ a parameter."""

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta, dtype=DOUBLE))

    def forward(self, v0: Tensor) -> Tensor:
        return torch.tan(torch.sqrt(self.theta * v0)) + torch.sin(v0**2)


def squared_error(output: Tensor, target: float) -> Tensor:
    return (output - target) ** 2


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line and exit code 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def step_size(text: str) -> float:
    value = float(text)
    if not 0 < value < 2:
        raise argparse.ArgumentTypeError(f"step sizes must lie in (0, 2); got {text}")
    return value


def curve(graph: PCGraph, v0: Tensor, target: float, eta: float, iterations: int,
          reference: GraphGradients) -> tuple[list[float], list[float]]:
    """Divergence from ``reference`` and the PC estimate of ∂L/∂v0 after each of 0..iterations Euler steps."""
    state = graph.sweep(v0, target, squared_error)
    divergences, estimates = [], []
    for iteration in range(iterations + 1):
        if iteration:
            state.step(eta)
        gradients = state.gradients()
        divergences.append(gradients.divergence(reference))
        estimates.append(gradients.inputs[0].item())
    return divergences, estimates


def plot(curves: dict[float, tuple[list[float], list[float]]], autograd_value: float, threshold: float,
         out: Path) -> None:
    figure = Figure(figsize=(11, 4.2), dpi=120)
    FigureCanvasAgg(figure)
    divergence_axes, estimate_axes = figure.subplots(1, 2)
    for eta, (divergences, estimates) in curves.items():
        steps = range(len(divergences))
        divergence_axes.semilogy(steps, [max(d, 1e-17) for d in divergences], label=f"η = {eta:g}")
        estimate_axes.plot(steps, estimates, label=f"PC, η = {eta:g}")
    divergence_axes.axhline(threshold, color="grey", linestyle=":", label=f"{threshold:g}")
    divergence_axes.set(xlabel="inference iteration", ylabel="largest |PC − autograd|",
                        title="divergence from autograd's gradients")
    estimate_axes.axhline(autograd_value, color="black", linestyle="--", label="autograd")
    estimate_axes.set(xlabel="inference iteration", ylabel="∂L/∂v0", title="PC estimate of ∂L/∂v0")
    divergence_axes.legend()
    estimate_axes.legend()
    figure.tight_layout()
    figure.savefig(out)


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to save the plot (PNG)")
    parser.add_argument("--etas", type=lambda text: [step_size(item) for item in text.split(",")],
                        default=[0.05, 0.1, 0.2, 0.5], help="comma-separated inference step sizes η in (0, 2)")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=1e-6)
    parser.add_argument("--v0", type=float, default=5.0)
    parser.add_argument("--theta", type=float, default=2.0)
    parser.add_argument("--target", type=float, default=3.0)
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if not args.out.parent.is_dir():
        parser.error(f"--out: no folder {args.out.parent}")
    try:
        graph = PCGraph(PaperFunction(args.theta))
        v0 = torch.tensor(args.v0, dtype=DOUBLE)
        reference = graph.backprop(v0, args.target, squared_error)
        print(f"torch {torch.__version__}; v0 = {args.v0:g}, θ = {args.theta:g}, target {args.target:g}, "
              f"L = (v_L − target)²")
        print(f"autograd: ∂L/∂v0 = {reference.inputs[0].item():.10f}, "
              f"∂L/∂θ = {reference.parameters['theta'].item():.10f}")
        curves = {eta: curve(graph, v0, args.target, eta, args.iterations, reference) for eta in args.etas}
        shown = [k for k in REPORTED if k < args.iterations] + [args.iterations]
        print(f"η      | first iteration below {args.threshold:g} | divergence after "
              + ", ".join(str(k) for k in shown) + " iterations")
        for eta, (divergences, _) in curves.items():
            below = next((k for k, value in enumerate(divergences) if value < args.threshold), None)
            print(f"{eta:<6g} | {'never' if below is None else below:>26} | "
                  + ", ".join(f"{divergences[k]:.2e}" for k in shown))
        timing_eta = max(args.etas)
        started = time.perf_counter()
        result = graph.infer(v0, args.target, squared_error, timing_eta, args.iterations)
        relaxation = time.perf_counter() - started
        started = time.perf_counter()
        graph.backprop(v0, args.target, squared_error)
        backward = time.perf_counter() - started
        print(f"one relaxation of {args.iterations} iterations at η = {timing_eta:g}: {relaxation * 1e3:.1f} ms; "
              f"autograd forward and backward: {backward * 1e3:.2f} ms (×{relaxation / backward:.0f}); "
              f"PC ∂L/∂v0 = {result.gradients.inputs[0].item():.10f}")
        plot(curves, reference.inputs[0].item(), args.threshold, args.out)
    except (PcrobustError, OSError, ValueError) as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
