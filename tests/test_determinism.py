"""``deterministic_algorithms()`` turns deterministic kernels on for a block and restores the previous setting."""

from __future__ import annotations

import pytest
import torch

from pcrobust.determinism import deterministic_algorithms


def setting() -> tuple[bool, bool]:
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


@pytest.fixture
def restore_setting():
    before = setting()
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.mark.parametrize("previous", [(False, False), (True, True)])
def test_the_previous_setting_comes_back(restore_setting, previous):
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    with deterministic_algorithms():
        assert setting() == (True, False)
    assert setting() == previous


def test_the_setting_comes_back_when_the_block_raises(restore_setting):
    torch.use_deterministic_algorithms(False)
    with pytest.raises(RuntimeError, match="inside"), deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled()
        raise RuntimeError("inside")
    assert setting() == (False, False)
