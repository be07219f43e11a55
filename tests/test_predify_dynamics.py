"""Predify dynamics: Eq. 1–2 against a hand-written unroll, t=0 equality, batch invariance, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pcrobust.errors import PcrobustError
from pcrobust.models import evaluation_mode
from pcrobust_predify.config import parse_config, predify
from pcrobust_predify.pcoder import Hyperparameters
from tests.conftest import make_tiny, tiny_backbone, tiny_config


def hand_unroll(net, x: torch.Tensor, timesteps: int) -> list[torch.Tensor]:
    """Pseudocode 1 written out for the tiny two-pcoder net and a single image (F.mse_loss = reference)."""
    bb, (p1, p2) = net.backbone, net.pcoders
    hp1, hp2 = p1.hyperparameters, p2.hyperparameters
    e0 = (x - 0.5) / 0.25

    def grad_of_error(predictor, rep, target):
        rep = rep.detach().requires_grad_(True)
        with torch.enable_grad():
            pred = predictor(rep)
            (g,) = torch.autograd.grad(F.mse_loss(pred, target), rep)
        return pred.detach(), g

    def layer1(z):
        return bb[1](bb[0](z))

    def layer2(z):
        return bb[4](bb[3](bb[2](z)))

    def head(z):
        return bb[6](bb[5](z))

    with torch.no_grad():
        e1 = layer1(e0)
        d0, g1 = grad_of_error(p1.predictor, e1, e0)
        e2 = layer2(e1)
        d1, g2 = grad_of_error(p2.predictor, e2, e1)
        logits = [head(e2)]
        for _ in range(timesteps):
            e1 = hp1.beta * layer1(e0) + hp1.lam * d1 + (1 - hp1.beta - hp1.lam) * e1 - hp1.alpha * g1
            d0, g1 = grad_of_error(p1.predictor, e1, e0)
            e2 = hp2.beta * layer2(e1) + (1 - hp2.beta) * e2 - hp2.alpha * g2  # top: no feedback
            d1, g2 = grad_of_error(p2.predictor, e2, e1)
            logits.append(head(e2))
    return logits


def test_unroll_matches_the_equations(tiny, images):
    with torch.no_grad():
        ours = tiny(images[:1], 3)
    expected = hand_unroll(tiny, images[:1], 3)
    for t in range(4):
        torch.testing.assert_close(ours[t], expected[t], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours[0], ours[3]), "the dynamics must move the logits"


def test_timestep_zero_is_the_backbone_exactly(tiny, images):
    with torch.no_grad():
        logits = tiny(images, 4)
        plain = tiny.backbone(tiny.normalization(images))
    assert logits.shape == (5, 8, 5)
    assert torch.equal(logits[0], plain)


def test_batch_composition_does_not_change_logits(tiny, images):
    with torch.no_grad():
        together = tiny(images, 3)
        alone = tiny(images[2:3], 3)
        shuffled = tiny(images.flip(0), 3).flip(1)
    torch.testing.assert_close(together[:, 2:3], alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together, shuffled, rtol=1e-5, atol=1e-6)


def test_calls_keep_no_state(tiny, images):
    with torch.no_grad():
        first = tiny(images[:2], 2)
        tiny(torch.rand(5, 1, 8, 8), 3)
        again = tiny(images[:2], 2)
    assert torch.equal(first, again)


@pytest.mark.parametrize("beta,lam", [(0.8, 0.3), (-0.1, 0.5), (0.5, -0.2)])
def test_invalid_beta_lambda_rejected(beta, lam):
    with pytest.raises(ValueError):
        Hyperparameters(beta, lam, 0.01)
    with pytest.raises(PcrobustError, match="β"):
        predify(tiny_backbone(), parse_config(tiny_config(beta, lam)))


def test_boundary_beta_lambda_accepted():
    assert Hyperparameters(0.9, 0.1, 0.0).beta == 0.9
    assert Hyperparameters(0.0, 0.0, 0.0).lam == 0.0


def input_gradient(net, x, t):
    z = x.clone().requires_grad_(True)
    with evaluation_mode(net):
        (g,) = torch.autograd.grad(net(z, t)[t].logsumexp(1).sum(), z)
    return g


def test_exact_and_detached_gradients_differ_only_through_the_error_term(images):
    exact = input_gradient(make_tiny(mode="exact"), images, 2)
    detached = input_gradient(make_tiny(mode="detached"), images, 2)
    assert (exact - detached).abs().max() > 1e-4
    no_error_term = [input_gradient(make_tiny(alpha=0.0, mode=m), images, 2) for m in ("exact", "detached")]
    torch.testing.assert_close(*no_error_term)


def test_exact_gradient_matches_finite_differences(images):
    net = make_tiny(mode="exact").double()
    x = images[:1].double()
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = input_gradient(net, x, 2)

    def f(z):
        with torch.no_grad():
            return net(z, 2)[2].logsumexp(1).sum()

    h = 1e-6
    numeric = (f(x + h * direction) - f(x - h * direction)) / (2 * h)
    torch.testing.assert_close((g * direction).sum(), numeric, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("mode", ["exact", "detached"])
def test_gradients_reach_the_input_at_every_timestep(images, mode):
    net = make_tiny(mode=mode)
    for t in range(4):
        assert input_gradient(net, images, t).abs().sum() > 0


def test_reconstruction_errors_at_t0_are_the_feedback_mse(tiny, images):
    with torch.no_grad():
        out = tiny.unroll(images, 1, reconstructions=True)
        e0 = tiny.normalization(images)
        first = tiny.backbone[1](tiny.backbone[0](e0))
        expected = (tiny.pcoders[0].predictor(first) - e0).pow(2).flatten(1).mean(1)
    assert out.reconstruction_errors.shape == (2, 2, 8)
    torch.testing.assert_close(out.reconstruction_errors[0, 0], expected)
    assert out.reconstructions.shape == (2, 8, 1, 8, 8)


def test_top_pcoder_lambda_is_recorded_as_zero(tiny):
    layers = tiny.describe()["pcoders"]
    assert [layer["lambda"] for layer in layers] == [0.2, 0.0]
    assert tiny.describe()["gradient_mode"] == "exact"


def test_unknown_gradient_mode_rejected(tiny):
    with pytest.raises(ValueError, match="exact, detached"):
        tiny.set_gradient_mode("bpda")


def test_skipping_the_extras_changes_no_logit(tiny, images):
    with torch.no_grad():
        full = tiny.unroll(images, 3)
        lean = tiny.unroll(images, 3, errors=False)
    assert torch.equal(full.logits, lean.logits) and torch.equal(full.logits, tiny(images, 3))
    assert lean.reconstruction_errors is None and full.reconstruction_errors.shape == (4, 2, 8)
