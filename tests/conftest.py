"""Shared fixtures: a tiny untrained Predify net (fast), the shipped default, and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from pcrobust.cli import main
from pcrobust_predify import mnist
from pcrobust_predify.config import parse_config, predify
from pcrobust_predify.network import PredifyNet

REPO = Path(__file__).resolve().parent.parent


def tiny_backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    )


def tiny_config(beta: float = 0.6, lam: float = 0.2, alpha: float = 0.5) -> dict:
    return {
        "input_size": [1, 8, 8], "num_classes": 5, "timesteps": 3,
        "normalization": {"mean": [0.5], "std": [0.25]},
        "hyperparameters": {"beta": beta, "lambda": lam, "alpha": alpha},
        "pcoders": [{"module": "1"}, {"module": "4"}],
    }


def make_tiny(beta: float = 0.6, lam: float = 0.2, alpha: float = 0.5, mode: str = "exact") -> PredifyNet:
    """Two pcoders over a conv net on 8×8 inputs, with BatchNorm running statistics made non-trivial."""
    backbone = tiny_backbone()
    bn = backbone[3]
    bn.running_mean.uniform_(-0.1, 0.1)
    bn.running_var.uniform_(0.5, 1.5)
    torch.manual_seed(1)
    net = predify(backbone, parse_config(tiny_config(beta, lam, alpha)), gradient_mode=mode)
    return net.eval()


@pytest.fixture
def tiny() -> PredifyNet:
    return make_tiny()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="session")
def default_model() -> PredifyNet:
    return mnist.build(None, {})


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``pcrobust ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def digit_backbone() -> nn.Module:
    """The shipped digit classifier alone: a trained backbone to predify from a user's own config."""
    net = mnist.DigitNet()
    net.load_state_dict(torch.load(mnist.shipped_weights(), weights_only=True)["backbone"])
    return net


def foolbox_targeted_successes(model: PredifyNet, attack: object, x: torch.Tensor, targets: torch.Tensor,
                               epsilon: float, timesteps: int) -> list[int]:
    """The reference way: one Foolbox attack per timestep on the model read out at that timestep; targeted
    successes per timestep. Each adversarial is checked to lie in [0, 1] and in the ε-ball of the attack's norm."""
    import foolbox as fb

    successes = []
    for t in range(timesteps + 1):
        class AtT(nn.Module):
            def forward(self, z: torch.Tensor, t: int = t) -> torch.Tensor:
                return model(z, t)[t]

        fmodel = fb.PyTorchModel(AtT().eval(), bounds=(0, 1))
        _, clipped, success = attack(fmodel, x, fb.criteria.TargetedMisclassification(targets),  # type: ignore[operator]
                                     epsilons=epsilon)
        assert clipped.min() >= 0 and clipped.max() <= 1
        p = attack.distance.p  # type: ignore[attr-defined]
        size = (clipped - x).flatten(1).norm(p=p, dim=1)
        assert (size <= epsilon + 1e-5).all()
        successes.append(int(success.sum()))
    return successes
