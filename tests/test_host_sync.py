"""No host synchronisation inside the attack step loop: nothing reads a tensor's values back while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import pytest
import torch

from pcrobust.attacks import Attack
from pcrobust.engine import CopyLogits
from pcrobust.models import evaluation_mode, select_readout
from pcrobust_attacks.bim import BIM, BIMOptions
from pcrobust_attacks.rpgd import RPGD, RPGDOptions
from pcrobust_attacks.spsa import SPSA, SPSAOptions
from tests.conftest import make_tiny

READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


def attacks() -> list[pytest.param]:
    return [pytest.param(BIM(BIMOptions(steps=3, random_start=True), "linf"), id="bim"),
            pytest.param(RPGD(RPGDOptions(steps=3, restarts=2), "l2"), id="rpgd"),
            pytest.param(SPSA(SPSAOptions(steps=2, samples=2), "linf"), id="spsa")]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call that copies a tensor's values to the host, by name, while the fixture is active."""
    seen: list[str] = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    yield seen


@contextmanager
def cuda_sync_errors() -> Iterator[None]:
    """Every synchronising CUDA call raises inside the block."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def run_on_copies(attack: Attack, device: torch.device, guard: AbstractContextManager[object] | None = None
                  ) -> tuple[torch.Tensor, CopyLogits]:
    """The attack's step loop (``run``, inside ``guard``) on six copies reading timesteps 0, 1 and 2."""
    model = make_tiny().to(device)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(device)
    labels = (torch.arange(6) % 5).to(device)
    scored = torch.tensor([0, 0, 1, 1, 2, 2], device=device)

    def readout(z: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
        return select_readout(model(z, 2), "t", scored[copies])

    logits_fn = CopyLogits(readout, 6, device, uniform=False)
    epsilon = torch.full((6,), 0.1, device=device)
    with evaluation_mode(model), torch.enable_grad(), guard or nullcontext():
        found = attack.run(logits_fn, x, labels, epsilon, list(range(6)), True)
    inputs = found if isinstance(found, torch.Tensor) else found.inputs
    return inputs, logits_fn


@pytest.mark.parametrize("attack", attacks())
def test_the_step_loop_reads_nothing_back_to_the_host(attack, reads):
    torch.ones(1).item()
    assert reads == ["item"], "the counter sees a read"
    reads.clear()
    inputs, logits_fn = run_on_copies(attack, torch.device("cpu"))
    assert reads == [], f"host reads inside the step loop: {sorted(set(reads))}"
    assert logits_fn.queries.device == inputs.device and logits_fn.queries.sum() > 0


def test_queries_stay_on_the_device_and_count_every_row():
    counted = CopyLogits(lambda z, copies: z.flatten(1)[:, :2], 3, torch.device("cpu"), uniform=True)
    counted(torch.zeros(3, 4))
    counted(torch.zeros(2, 4), torch.tensor([0, 0]))
    counted.among(torch.tensor([1, 2]))(torch.zeros(4, 4))  # shared evenly among the copies it answers for
    assert counted.queries.tolist() == [3.0, 3.0, 3.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("attack", [pytest.param(BIM(BIMOptions(steps=3), "linf"), id="bim"),
                                    pytest.param(RPGD(RPGDOptions(steps=3, random_start=False), "l2"), id="rpgd")])
def test_the_step_loop_never_synchronises_with_cuda(attack):
    inputs, _ = run_on_copies(attack, torch.device("cuda"), cuda_sync_errors())
    assert inputs.device.type == "cuda"
