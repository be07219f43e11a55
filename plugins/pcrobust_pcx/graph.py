"""Predictive coding on the computation graph of any ``torch.fx``-traceable model (Millidge, Tschantz & Buckley 2020).

Every intermediate tensor of the traced model is a value node v_i with a prediction v̂_i = f_i(P(v_i); θ) from its
parents and a prediction error ε_i = v_i − v̂_i; the free energy is F = ½ Σ_i ‖ε_i‖² (Eq. 1, with a ½ so that
Eq. 2 is its exact gradient). The feedforward sweep sets v_i = v̂_i, so every hidden error starts at zero, and clamps
the output vertex at v_L = v̂_L − ∂L/∂v̂_L, so that ε_L = −∂L/∂v̂_L. Under the fixed-prediction assumption the v̂_i
and their Jacobians stay at their feedforward values, and each Euler step of size η moves every hidden vertex in
parallel by

    v_i ← v_i − η ∂F/∂v_i,    ∂F/∂v_i = ε_i − Σ_{j ∈ C(v_i)} (∂v̂_j/∂v_i)ᵀ ε_j          (Eq. 2, Algorithm 1)

using only its own error and its children's. At the equilibrium ε_i* = −∂L/∂v_i (Eq. 5–6: the sign is that of a
target clamped at the output), and the weight gradient from local errors, ∂F/∂θ = −Σ_i (∂v̂_i/∂θ)ᵀ ε_i (Eq. 3),
equals backprop's ∂L/∂θ (Eq. 7). Each vertex–children product is computed by autograd on that one edge function,
evaluated on detached copies of its parents, so no gradient crosses a vertex. The relaxation is a linear iteration
whose eigenvalues are all 1 − η, so it converges for 0 < η < 2 (η = 1 reproduces backprop's sweep, one vertex per
step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn

from pcrobust.errors import PcrobustError
from pcrobust_pcx.pc_graph_trace import TracedGraph, feedforward, predict, trace, vertices

Loss = Callable[[Tensor, Any], Tensor]
"""``loss(output, target)`` → a scalar tensor L."""


@dataclass(frozen=True)
class GraphGradients:
    """Gradients of L on one computation graph: per vertex (fx node name), per model input, per parameter name."""

    vertices: dict[str, Tensor]
    inputs: tuple[Tensor, ...]
    parameters: dict[str, Tensor]

    def divergence(self, other: GraphGradients) -> float:
        """The largest absolute difference between two sets of gradients, over every entry of every tensor."""
        if self.vertices.keys() != other.vertices.keys() or self.parameters.keys() != other.parameters.keys():
            raise PcrobustError("gradients of different graphs cannot be compared")
        pairs = [*zip(self.vertices.values(), other.vertices.values(), strict=True),
                 *zip(self.inputs, other.inputs, strict=True),
                 *zip(self.parameters.values(), other.parameters.values(), strict=True)]
        return max((float((mine - theirs).abs().max()) for mine, theirs in pairs if mine.numel()), default=0.0)


@dataclass(frozen=True)
class PCInference:
    """What a relaxation ends with: errors ε_i, the gradients they stand for, and F after each step (index 0: the
    feedforward sweep)."""

    errors: dict[str, Tensor]
    gradients: GraphGradients
    energies: Tensor
    loss: Tensor
    output: Tensor


class PCState:
    """The augmented graph during one relaxation: fixed predictions, the current vertex values and their errors."""

    def __init__(self, graph: TracedGraph, inputs: Sequence[Tensor], target: Any, loss: Loss) -> None:
        with torch.no_grad():
            values = feedforward(graph, inputs)
        self._inputs = graph.inputs
        self._vertices = vertices(graph, values)
        self._output = graph.output
        self._parameters = dict(graph.module.named_parameters())
        self._leaves = {node: values[node].detach().requires_grad_() for node in (*self._inputs, *self._vertices)}
        with torch.enable_grad():
            self._predictions = {node: predict(graph, node, self._leaves, values) for node in self._vertices}
        fixed = {node: prediction.detach() for node, prediction in self._predictions.items()}
        self._fixed = fixed
        self.loss, output_gradient = _loss_and_gradient(loss, fixed[self._output], target)
        self._values = dict(fixed)
        self._values[self._output] = fixed[self._output] - output_gradient

    def errors(self) -> dict[str, Tensor]:
        """ε_i = v_i − v̂_i for every vertex, by fx node name."""
        return {node.name: self._values[node] - self._fixed[node] for node in self._vertices}

    def energy(self) -> Tensor:
        """F = ½ Σ_i ‖ε_i‖² (Eq. 1) of the current errors.

        With the predictions fixed, F does not fall: it starts at ½‖ε_L‖² and grows as the output error spreads
        through the graph, settling at ½ Σ_i ‖∂L/∂v_i‖²; a flat curve marks the equilibrium.
        """
        return 0.5 * torch.stack([error.square().sum() for error in self.errors().values()]).sum()

    def step(self, eta: float) -> None:
        """One Euler step of Eq. 2 on every hidden vertex in parallel; the output stays clamped."""
        feedback = self._feedback()
        for node in self._vertices:
            if node is not self._output:
                error = self._values[node] - self._fixed[node]
                self._values[node] = self._values[node] - eta * (error - feedback[node])

    def weight_gradients(self) -> dict[str, Tensor]:
        """∂F/∂θ = −Σ_i (∂v̂_i/∂θ)ᵀ ε_i from the current errors (Eq. 3); zeros for parameters the graph never reads."""
        shared = self._shared_signal()
        parameters = list(self._parameters.values())
        found = _gradients(shared, parameters)
        return {name: -gradient for name, gradient in zip(self._parameters, found, strict=True)}

    def gradients(self) -> GraphGradients:
        """The gradients the current errors stand for: −ε_i per vertex, and per input −Σ_j (∂v̂_j/∂x)ᵀ ε_j."""
        feedback = self._feedback()
        vertices = {name: -error for name, error in self.errors().items()}
        return GraphGradients(vertices, tuple(-feedback[node] for node in self._inputs), self.weight_gradients())

    def output(self) -> Tensor:
        """The model's feedforward output v̂_L."""
        return self._fixed[self._output]

    def _shared_signal(self) -> Tensor:
        """Σ_j ⟨ε_j, v̂_j⟩ with the errors held constant: its gradient is every Σ_j Jᵀ ε_j at once."""
        errors = self.errors()
        with torch.enable_grad():
            return torch.stack([(errors[node.name] * self._predictions[node]).sum() for node in self._vertices]).sum()

    def _feedback(self) -> dict[fx.Node, Tensor]:
        """Σ_{j ∈ C(v_i)} (∂v̂_j/∂v_i)ᵀ ε_j for every input and vertex, each from its children's edges alone."""
        leaves = list(self._leaves.values())
        return dict(zip(self._leaves, _gradients(self._shared_signal(), leaves), strict=True))


class PCGraph:
    """Generalised predictive coding (Algorithm 1) on the traced computation graph of ``model``.

    ``infer`` runs the feedforward sweep and ``iterations`` Euler steps of size ``eta``; ``weight_gradients`` gives
    the parameter gradients of the last relaxation from its local errors. The model's parameters are read, never
    changed, and nothing is written to their ``.grad``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._graph = trace(model)
        self._last: PCState | None = None

    def sweep(self, inputs: Tensor | Sequence[Tensor], target: Any, loss: Loss) -> PCState:
        """The feedforward sweep: predictions fixed, hidden errors zero, the output clamped by the loss."""
        return PCState(self._graph, self._checked(inputs), target, loss)

    def infer(self, inputs: Tensor | Sequence[Tensor], target: Any, loss: Loss, eta: float = 0.1,
              iterations: int = 100) -> PCInference:
        """Relax the graph for ``iterations`` Euler steps of size ``eta`` and return its errors and gradients."""
        if not (isinstance(eta, int | float) and math.isfinite(eta) and 0 < eta < 2):
            raise PcrobustError(f"eta must lie in (0, 2), where the relaxation converges; got {eta!r}")
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise PcrobustError(f"iterations must be a non-negative integer; got {iterations!r}")
        state = self.sweep(inputs, target, loss)
        energies = [state.energy()]
        for _ in range(iterations):
            state.step(eta)
            energies.append(state.energy())
        self._last = state
        return PCInference(state.errors(), state.gradients(), torch.stack(energies), state.loss, state.output())

    def weight_gradients(self) -> dict[str, Tensor]:
        """∂F/∂θ at the end of the last ``infer`` (Eq. 3), by parameter name: backprop's ∂L/∂θ at equilibrium."""
        if self._last is None:
            raise PcrobustError("weight_gradients needs a relaxation first: call infer")
        return self._last.weight_gradients()

    def backprop(self, inputs: Tensor | Sequence[Tensor], target: Any, loss: Loss) -> GraphGradients:
        """Autograd's gradients of L on the same graph and vertices: the reference PC converges to."""
        leaves = [tensor.detach().requires_grad_() for tensor in self._checked(inputs)]
        with torch.enable_grad():
            values = feedforward(self._graph, leaves)
            computed = vertices(self._graph, values)
            value = loss(values[self._graph.output], target)
            _check_scalar(value)
            parameters = dict(self._graph.module.named_parameters())
            found = _gradients(value, [*leaves, *(values[node] for node in computed), *parameters.values()])
        at_vertices = found[len(leaves): len(leaves) + len(computed)]
        return GraphGradients({node.name: gradient for node, gradient in zip(computed, at_vertices, strict=True)},
                              tuple(found[: len(leaves)]),
                              dict(zip(parameters, found[len(leaves) + len(computed):], strict=True)))

    def _checked(self, inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
        given = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        if len(given) != len(self._graph.inputs):
            raise PcrobustError(f"{type(self.model).__name__} takes {len(self._graph.inputs)} input(s); "
                                f"got {len(given)}")
        if not all(isinstance(tensor, Tensor) and tensor.is_floating_point() for tensor in given):
            raise PcrobustError("every input must be a floating-point tensor")
        return given


def _check_scalar(value: Any) -> None:
    if not isinstance(value, Tensor) or value.numel() != 1 or not value.is_floating_point():
        raise PcrobustError("the loss must return a floating-point scalar tensor")


def _loss_and_gradient(loss: Loss, prediction: Tensor, target: Any) -> tuple[Tensor, Tensor]:
    """L at the feedforward output and ∂L/∂v̂_L."""
    output = prediction.detach().requires_grad_()
    with torch.enable_grad():
        value = loss(output, target)
        _check_scalar(value)
        (gradient,) = _gradients(value, [output])
    return value.detach(), gradient


def _gradients(value: Tensor, wrt: Sequence[Tensor]) -> list[Tensor]:
    """d value / d each of ``wrt``, zeros where it does not depend on one; the graph is kept for the next step."""
    needed = [tensor for tensor in wrt if tensor.requires_grad]
    found: Sequence[Tensor | None] = [None] * len(needed)
    if value.requires_grad and needed:
        found = torch.autograd.grad(value, needed, retain_graph=True, allow_unused=True)
    by_id = {id(tensor): grad for tensor, grad in zip(needed, found, strict=True)}
    return [_or_zeros(by_id.get(id(tensor)), tensor) for tensor in wrt]


def _or_zeros(gradient: Tensor | None, tensor: Tensor) -> Tensor:
    return torch.zeros_like(tensor) if gradient is None else gradient
