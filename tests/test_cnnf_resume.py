"""Resumable CNN-F training: an interrupted run continued with --resume ends where an uninterrupted one does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pcrobust_cnnf.training as training

TINY_RUN = ("-o", "epochs=2", "-o", "train_size=96", "-o", "batch_size=32", "-o", "cycles=1", "-o", "lr_power=0.9")


def test_a_resumed_run_gives_the_weights_of_an_uninterrupted_one(cli, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    straight = tmp_path / "straight.pt"
    code, _, err = cli("train", "--plugin", "cnnf", "--out", str(straight), *TINY_RUN)
    assert code == 0, err

    saved = training.save_state

    def interrupt_after_the_first_epoch(folder: Path, state: training.TrainingState) -> None:
        saved(folder, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_state", interrupt_after_the_first_epoch)
    resumed, state_dir = tmp_path / "resumed.pt", tmp_path / "state"
    code, _, _ = cli("train", "--plugin", "cnnf", "--out", str(resumed), "--state-dir", str(state_dir), *TINY_RUN)
    assert code == 130 and not resumed.exists()
    state = torch.load(state_dir / "state.pt", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1 and state["scheduler"]["last_epoch"] == 3
    monkeypatch.setattr(training, "save_state", saved)

    code, _, err = cli("train", "--plugin", "cnnf", "--out", str(resumed), "--state-dir", str(state_dir), "--resume",
                       *TINY_RUN)
    assert code == 0, err
    a, b = (torch.load(path, weights_only=True) for path in (straight, resumed))
    assert a["state"].keys() == b["state"].keys()
    for name in a["state"]:
        assert torch.equal(a["state"][name], b["state"][name]), name
    assert a["metadata"] == b["metadata"] and len(b["metadata"]["losses_per_epoch"]) == 2
    assert torch.load(state_dir / "state.pt", weights_only=True)["epoch"] == 2


def test_resume_refuses_another_run_and_missing_state_in_one_line(cli, tmp_path: Path):
    state_dir = tmp_path / "state"
    code, _, err = cli("train", "--plugin", "cnnf", "--out", str(tmp_path / "a.pt"), "--state-dir", str(state_dir),
                       "--resume", *TINY_RUN)
    assert code == 2 and "nothing to resume" in err and len(err.strip().splitlines()) == 1
    cli("train", "--plugin", "cnnf", "--out", str(tmp_path / "a.pt"), "--state-dir", str(state_dir),
        "-o", "epochs=1", *TINY_RUN[2:])
    for args, message in ((("--seed", "1"), "its seed differs"), (("-o", "lr=0.1"), "its recipe differs")):
        code, _, err = cli("train", "--plugin", "cnnf", "--out", str(tmp_path / "b.pt"), "--state-dir", str(state_dir),
                           "--resume", *TINY_RUN, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("train", "--plugin", "cnnf", "--out", str(tmp_path / "b.pt"), "--resume", *TINY_RUN)
    assert code == 2 and "--resume needs --state-dir" in err
    code, _, err = cli("train", "--plugin", "predify", "--out", str(tmp_path / "p.pt"), "--state-dir", str(state_dir))
    assert code == 2 and "cannot keep resumable training state" in err
    assert not (tmp_path / "b.pt").exists() and not (tmp_path / "p.pt").exists()
