"""A ``torch.fx`` trace of a model, read as the vertices and edge functions of predictive coding.

Every traced node whose feedforward value is a floating-point tensor is a vertex v_i; its edge function maps the
values of its parent vertices and the parameters θ it reads to its prediction v̂_i = f_i(P(v_i); θ). So that every
edge stays a function of vertices alone, nodes that return tuples or lists of tensors (``torch.chunk``, an LSTM's
``(out, (h, c))``) are recomputed inside each child's edge, and nodes with non-differentiable values (sizes, integer
or boolean tensors) are held at their feedforward value. Arguments are copied before every call, so a model's
in-place operations (``ReLU(inplace=True)``) never overwrite a parent's value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, fx, nn

from pcrobust.errors import PcrobustError, first_line

CALLS = ("call_function", "call_method", "call_module")


@dataclass(frozen=True)
class TracedGraph:
    """A traced model: its graph module, its input nodes (in call order) and the node it returns."""

    module: fx.GraphModule
    inputs: tuple[fx.Node, ...]
    output: fx.Node


def trace(model: nn.Module) -> TracedGraph:
    """Trace ``model`` symbolically; one-line error if it cannot be traced or returns anything but one tensor."""
    try:
        module = fx.symbolic_trace(model)
    except Exception as exc:  # torch.fx raises many types (TraceError, TypeError, NotImplementedError, ...)
        raise PcrobustError(f"cannot trace {type(model).__name__} with torch.fx: {first_line(exc)}") from exc
    nodes = list(module.graph.nodes)
    inputs = tuple(node for node in nodes if node.op == "placeholder")
    returned = next(node for node in nodes if node.op == "output").args[0]
    if not isinstance(returned, fx.Node) or returned.op not in CALLS:
        raise PcrobustError(f"{type(model).__name__} must return one tensor computed from its inputs")
    return TracedGraph(module, inputs, returned)


def holds_float_tensor(value: Any) -> bool:
    """Whether ``value`` is, or nests in tuples, lists or dicts, a floating-point tensor."""
    if isinstance(value, Tensor):
        return value.is_floating_point()
    if isinstance(value, tuple | list):
        return any(holds_float_tensor(item) for item in value)
    if isinstance(value, dict):
        return any(holds_float_tensor(item) for item in value.values())
    return False


def vertices(graph: TracedGraph, values: Mapping[fx.Node, Any]) -> tuple[fx.Node, ...]:
    """The vertices in topological order: the computed nodes whose value is one floating-point tensor."""
    return tuple(node for node in graph.module.graph.nodes
                 if node.op in CALLS and isinstance(values[node], Tensor) and values[node].is_floating_point())


def _copy(value: Any) -> Any:
    """Private copies of the floating-point tensors in ``value`` (differentiable), the rest as it is."""
    if isinstance(value, Tensor):
        return value.clone() if value.is_floating_point() else value
    if isinstance(value, tuple | list):
        return type(value)(_copy(item) for item in value)
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value


def attribute(module: fx.GraphModule, node: fx.Node) -> Any:
    """The live attribute a ``get_attr`` node reads (a parameter stays the parameter, so gradients reach it)."""
    return operator.attrgetter(str(node.target))(module)


def call(module: fx.GraphModule, node: fx.Node, resolve: Callable[[fx.Node], Any]) -> Any:
    """Run one computed node on its arguments, each node argument replaced by a copy of ``resolve(argument)``."""
    args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda arg: _copy(resolve(arg)))
    if node.op == "call_function":
        return node.target(*args, **kwargs)  # type: ignore[operator]
    if node.op == "call_method":
        owner, *rest = args
        return getattr(owner, str(node.target))(*rest, **kwargs)
    return module.get_submodule(str(node.target))(*args, **kwargs)


def feedforward(graph: TracedGraph, inputs: Sequence[Tensor]) -> dict[fx.Node, Any]:
    """The value of every node in one forward pass (autograd records it when the caller has gradients on)."""
    values: dict[fx.Node, Any] = dict(zip(graph.inputs, inputs, strict=True))
    for node in graph.module.graph.nodes:
        if node.op == "get_attr":
            values[node] = attribute(graph.module, node)
        elif node.op in CALLS:
            values[node] = call(graph.module, node, values.__getitem__)
    return values


def predict(graph: TracedGraph, node: fx.Node, leaves: Mapping[fx.Node, Tensor], values: Mapping[fx.Node, Any]) -> Any:
    """The prediction f_i(P(v_i); θ) of vertex ``node`` from the ``leaves`` standing for its parent vertices.

    Gradients of the result reach only those leaves and the parameters this one edge reads.
    """
    recomputed: dict[fx.Node, Any] = {}

    def resolve(arg: fx.Node) -> Any:
        if arg in leaves:
            return leaves[arg]
        if arg.op == "get_attr":
            return attribute(graph.module, arg)
        if not holds_float_tensor(values[arg]):
            return values[arg]
        if arg not in recomputed:
            recomputed[arg] = call(graph.module, arg, resolve)
        return recomputed[arg]

    return call(graph.module, node, resolve)
