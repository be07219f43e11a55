"""The example's own tests; the generic contract tests come from pcrobust's conformance kit (see pyproject.toml)."""

from __future__ import annotations

import pytest
import torch

from pcrobust.errors import PcrobustError
from pcrobust.plugins import PluginHost
from pcrobust_example import model


def test_shipped_weights_classify_test_digits() -> None:
    test = PluginHost().registries.datasets.get(model.DATASET).load("test")
    with torch.no_grad():
        accuracy = (model.build(None, {})(test.images).argmax(2) == test.labels).float().mean(1)
    assert bool((accuracy > 0.9).all()), f"test accuracy per timestep {accuracy.tolist()}"


def test_options_reach_build() -> None:
    assert model.build(None, {"gain": "0.5"}).gain == 0.5
    with pytest.raises(PcrobustError, match="unknown option 'beta'"):
        model.build(None, {"beta": "1"})


def test_truncated_gradients_skip_the_recurrence() -> None:
    net = model.build(None, {})
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    gradients = {}
    for mode in net.gradient_modes:
        net.set_gradient_mode(mode)
        (gradients[mode],) = torch.autograd.grad(net(x, 3)[3].sum(), x)
    assert not torch.allclose(gradients["exact"], gradients["truncated"])
