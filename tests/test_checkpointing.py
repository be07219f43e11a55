"""Activation checkpointing per timestep: the same logits, gradients and attack results as keeping activations."""

from __future__ import annotations

import json

import pytest
import torch

from pcrobust.engine import attack_per_timestep
from pcrobust.models import TimestepModel, evaluation_mode
from pcrobust_attacks.bim import BIM, BIMOptions
from tests.conftest import make_tiny
from tests.test_cnnf import make_net


def unroll_and_gradient(model: TimestepModel, x: torch.Tensor, timesteps: int, checkpointed: bool
                        ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Logits, reconstruction errors and the input gradient of a loss that reads every timestep and error."""
    model.set_checkpointing(checkpointed)
    z = x.clone().requires_grad_(True)
    out = model.unroll(z, timesteps, errors=True)
    weights = torch.linspace(0.5, 1.5, out.logits.shape[-1], dtype=x.dtype)
    loss = (out.logits.log_softmax(-1) * weights).sum()
    if out.reconstruction_errors is not None:
        loss = loss + out.reconstruction_errors.sum()
    (gradient,) = torch.autograd.grad(loss, z)
    errors = None if out.reconstruction_errors is None else out.reconstruction_errors.detach()
    return out.logits.detach(), errors, gradient


def models() -> list[pytest.param]:
    return [pytest.param(lambda: make_tiny(mode="exact"), torch.rand(4, 1, 8, 8, dtype=torch.float64,
                                                                      generator=torch.Generator().manual_seed(0)),
                         id="predify-exact"),
            pytest.param(lambda: make_tiny(mode="detached"), torch.rand(4, 1, 8, 8, dtype=torch.float64,
                                                                         generator=torch.Generator().manual_seed(1)),
                         id="predify-detached"),
            pytest.param(lambda: make_net(mode="exact"), torch.rand(4, 1, 8, 8, dtype=torch.float64,
                                                                     generator=torch.Generator().manual_seed(2)),
                         id="cnnf-exact"),
            pytest.param(lambda: make_net(mode="bpda"), torch.rand(4, 1, 8, 8, dtype=torch.float64,
                                                                    generator=torch.Generator().manual_seed(3)),
                         id="cnnf-bpda")]


@pytest.mark.parametrize("build, x", models())
def test_checkpointed_gradients_equal_the_kept_ones_in_float64(build, x):
    model = build().double()
    with evaluation_mode(model):
        kept = unroll_and_gradient(model, x, 5, checkpointed=False)
        recomputed = unroll_and_gradient(model, x, 5, checkpointed=True)
    assert model.checkpoint_timesteps
    assert torch.equal(kept[0], recomputed[0])
    assert (kept[1] is None) == (recomputed[1] is None)
    if kept[1] is not None:
        assert torch.equal(kept[1], recomputed[1])
    assert kept[2].abs().max() > 0, "the loss reaches the input"
    torch.testing.assert_close(recomputed[2], kept[2], rtol=1e-12, atol=1e-12)


def test_checkpointing_is_off_without_gradients_and_a_call_keeps_no_hooks():
    model = make_tiny()
    model.set_checkpointing(True)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        plain = model(x, 3)
    z = x.clone().requires_grad_(True)
    model(z, 3).sum().backward()  # the recomputation in backward runs the timestep's own hooks
    assert all(not layer._forward_hooks for layer in model._layers)
    with torch.no_grad():
        assert torch.equal(model(x, 3), plain)


def test_attack_results_are_identical_with_checkpointing():
    model = make_tiny()
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    targets = torch.arange(6) % 5
    attack = BIM(BIMOptions(steps=3, random_start=True), "linf")
    outcomes = []
    with evaluation_mode(model):
        for checkpointed in (False, True):
            model.set_checkpointing(checkpointed)
            outcomes.append(attack_per_timestep(model, attack, images, targets, [0.05, 0.2], 3, "t", 8,
                                                torch.device("cpu"), 0, list(range(6)), progress=False))
    assert torch.equal(outcomes[0].success, outcomes[1].success)
    assert torch.equal(outcomes[0].margin, outcomes[1].margin)
    assert outcomes[0].success.any(), "the attack succeeds somewhere, so equality is not trivial"


def test_a_model_without_support_refuses_in_one_line():
    class Plain(TimestepModel):
        num_classes, default_timesteps = 2, 1

        def unroll(self, x, timesteps, *, reconstructions=False, errors=True):
            raise NotImplementedError

    Plain().set_checkpointing(False)
    with pytest.raises(ValueError, match="does not support activation checkpointing"):
        Plain().set_checkpointing(True)


def test_cli_flag_is_recorded_and_refused_for_a_model_without_it(cli, tmp_path):
    small = ("evaluate", "--n-clean", "40", "--n-attack", "4", "--timesteps", "2", "--epsilons", "0.3",
             "--steps", "2", "--noise-sigmas", "", "--quiet", "--checkpoint-timesteps")
    code, _, err = cli(*small, "--plugin", "predify", "--out", str(tmp_path / "run"))
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["provenance"]["checkpoint_timesteps"] is True
    assert results["plan"]["run"]["checkpoint_timesteps"] is True
    code, _, err = cli(*small, "--plugin", "pcx", "--out", str(tmp_path / "pcx"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "does not support activation checkpointing" in err
