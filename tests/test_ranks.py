"""torchrun: two gloo ranks on the CPU write one folder whose results equal a single process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from pcrobust.errors import PcrobustError
from pcrobust.run.execute import Shard
from pcrobust.run.ranks import Ranks

PLAN = """
[model]
plugin = "predify"
[data]
n = 40
[run]
timesteps = 1
device = "cpu"
images_per_unit = 10
[[sections]]
kind = "clean"
[[sections]]
kind = "noise"
sigmas = [0.2]
[[sections]]
kind = "attack"
epsilons = [0.2]
n = 12
options = { steps = 2, random_start = true }
"""


def _results(folder: Path) -> dict[str, Any]:
    results = json.loads((folder / "results.json").read_text())
    del results["created"]
    return results


def test_ranks_come_from_torchruns_environment():
    assert Ranks.from_environment({}) is None and Ranks.from_environment({"WORLD_SIZE": "1"}) is None
    ranks = Ranks.from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert ranks == Ranks(2, 0, 4) and not ranks.leader and ranks.shard == Shard(3, 4)
    assert ranks.device(torch.device("cuda")) == torch.device("cuda", 0)
    assert ranks.device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(PcrobustError, match="RANK 4 is outside a world of 4"):
        Ranks.from_environment({"WORLD_SIZE": "4", "RANK": "4"})
    with pytest.raises(PcrobustError, match="must be integers"):
        Ranks.from_environment({"WORLD_SIZE": "two"})


def test_two_gloo_ranks_write_the_results_of_one_process(tmp_path: Path, cli):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    ranked = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "pcrobust", "evaluate", "--plan", str(plan), "--quiet", "--out",
                             str(tmp_path / "two")], capture_output=True, text=True, timeout=600, env=environment)
    assert ranked.returncode == 0, ranked.stderr[-2000:]
    assert ranked.stdout.count("results written to") == 1, "only rank 0 assembles and reports"
    assert cli("evaluate", "--plan", str(plan), "--quiet", "--out", str(tmp_path / "one"))[0] == 0
    assert _results(tmp_path / "two") == _results(tmp_path / "one")
    assert json.loads((tmp_path / "two" / "run.json").read_text())["shard"] is None
    code, _, err = cli("evaluate", "--plan", str(plan), "--quiet", "--resume", "--out", str(tmp_path / "two"))
    assert code == 0 and _results(tmp_path / "two") == _results(tmp_path / "one"), "a ranked run resumes"


def test_shard_and_torchrun_exclude_each_other(tmp_path: Path, cli, monkeypatch):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, _, err = cli("evaluate", "--plan", str(plan), "--shard", "1/2", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and "--shard cannot be combined with torchrun" in err
