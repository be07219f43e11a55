"""Runs as stored units: kill -9 and resume, Ctrl-C, shards and merge, one run per folder, permissions."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

PLAN = """
[model]
plugin = "predify"

[data]
n = 60

[run]
timesteps = 2
device = "cpu"
images_per_unit = 10

[[sections]]
kind = "clean"

[[sections]]
kind = "noise"
sigmas = [0.2, 0.3]

[[sections]]
kind = "attack"
epsilons = [0.2, 0.3]
n = 12
options = { steps = 3, random_start = true }
"""
UNITS = 6 + 12 + 2  # clean chunks, noise σ × chunks, attack chunks


def comparable(folder: Path) -> dict[str, Any]:
    """results.json without its time stamp."""
    results = json.loads((folder / "results.json").read_text())
    del results["created"]
    return results


def stored_units(folder: Path) -> int:
    return len(list((folder / "units").glob("*/*.json"))) if (folder / "units").is_dir() else 0


def start(plan: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pcrobust.cli", "evaluate", "--plan", str(plan), "--out", str(out),
                             "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(process: subprocess.Popen[str], ready: Any, timeout: float = 120) -> bool:
    """Poll until ``ready()`` holds (True) or the process ended first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("the run neither reached the moment nor ended")


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.toml"
    path.write_text(PLAN)
    return path


@pytest.fixture(scope="module")
def reference(plan_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same plan run once, uninterrupted, in a process of its own."""
    out = tmp_path_factory.mktemp("reference")
    done = start(plan_file, out)
    assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""
    assert stored_units(out) == UNITS
    return out


def test_killed_at_several_moments_then_resumed_equals_an_uninterrupted_run(plan_file, reference, tmp_path):
    out = tmp_path / "run"
    moments = [lambda: (out / "run.json").exists(), lambda: stored_units(out) >= 5, lambda: stored_units(out) >= 15]
    killed_before_the_end = 0
    for moment in moments:
        process = start(plan_file, out, "--resume")
        if wait_until(process, moment):
            process.send_signal(signal.SIGKILL)
            killed_before_the_end += 1
        process.wait(timeout=60)
    assert killed_before_the_end >= 2, "the test must interrupt the run at least twice"
    assert not (out / "results.json").exists() or stored_units(out) == UNITS
    finish = start(plan_file, out, "--resume")
    assert finish.wait(timeout=300) == 0
    assert comparable(out) == comparable(reference)
    assert not list(out.rglob(".*.tmp")), "half-written files of killed processes are cleaned up"


def test_ctrl_c_stops_after_the_current_unit_with_exit_130(plan_file, reference, tmp_path):
    out = tmp_path / "run"
    process = start(plan_file, out)
    if not wait_until(process, lambda: stored_units(out) >= 3):
        pytest.fail("the run ended before it could be interrupted")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    lines = [line for line in err.strip().splitlines() if line]
    assert "--resume" in lines[-1] and "Traceback" not in err
    stored = stored_units(out)
    assert 3 <= stored < UNITS and not (out / "results.json").exists()
    assert start(plan_file, out, "--resume").wait(timeout=300) == 0
    assert comparable(out) == comparable(reference)


def test_a_second_run_writing_to_the_same_folder_at_once_is_refused(plan_file, reference, tmp_path, cli):
    out = tmp_path / "run"
    first = start(plan_file, out)
    try:
        if not wait_until(first, lambda: (out / "run.json").exists()):
            pytest.fail("the first run ended before a second could start")
        code, _, err = cli("evaluate", "--plan", str(plan_file), "--quiet", "--out", str(out))
        assert code == 2 and "another pcrobust process is writing to" in err and len(err.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    code, _, err = cli("evaluate", "--plan", str(plan_file), "--quiet", "--resume", "--out", str(out))
    assert code == 0, "a killed process holds no lock"
    assert comparable(out) == comparable(reference)


def test_shards_merge_into_the_single_process_results(plan_file, reference, tmp_path, cli):
    shards = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for number, folder in enumerate(shards, start=1):
        code, out, err = cli("evaluate", "--plan", str(plan_file), "--shard", f"{number}/3", "--quiet",
                             "--out", str(folder))
        assert code == 0, err
        assert "pcrobust merge" in out and not (folder / "results.json").exists()
    assert sum(stored_units(folder) for folder in shards) == UNITS
    code, _, err = cli("merge", *map(str, shards[:2]), "--out", str(tmp_path / "partial"))
    assert code == 2 and "in none of the shard folders" in err
    code, _, err = cli("merge", *map(str, shards), "--out", str(tmp_path / "merged"))
    assert code == 0, err
    assert comparable(tmp_path / "merged") == comparable(reference)
    assert (tmp_path / "merged" / "report.html").is_file()


def test_resume_refuses_a_folder_holding_another_plan(plan_file, reference, tmp_path, cli):
    other = tmp_path / "other.toml"
    other.write_text(PLAN.replace("n = 60", "n = 50"))
    code, _, err = cli("evaluate", "--plan", str(other), "--resume", "--out", str(reference))
    assert code == 2 and "holds another plan" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("merge", str(reference), str(other.parent / "x"), "--out", str(tmp_path / "m"))
    assert code == 2


def test_resume_and_merge_refuse_a_run_written_by_another_version(plan_file, reference, tmp_path, cli):
    old = tmp_path / "old"
    shutil.copytree(reference, old)
    record = json.loads((old / "run.json").read_text())
    record["facts"]["provenance"]["pcrobust"] = "0.0.1"
    (old / "run.json").write_text(json.dumps(record))
    code, _, err = cli("evaluate", "--plan", str(plan_file), "--resume", "--out", str(old))
    assert code == 2 and "written by pcrobust 0.0.1" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("merge", str(old), "--out", str(tmp_path / "m"))
    assert code == 2 and "0.0.1" in err and not (tmp_path / "m").exists()


def test_a_folder_holds_one_run_with_normal_permissions(tmp_path, cli):
    out = tmp_path / "run"
    small = ("--plugin", "predify", "--n-clean", "20", "--timesteps", "1", "--attack", "none", "--quiet",
             "--out", str(out))
    assert cli("evaluate", *small, "--noise-sigmas", "0.2")[0] == 0
    assert (out / "noise.png").exists()
    (out / "notes.txt").write_text("mine")
    assert cli("evaluate", *small, "--noise-sigmas", "")[0] == 0
    assert not (out / "noise.png").exists(), "an earlier run's plots must not stay beside new results"
    assert (out / "notes.txt").read_text() == "mine", "files pcrobust did not write are left alone"
    probe = tmp_path / "probe"
    probe.write_text("")
    expected = probe.stat().st_mode & 0o777
    for name in ("results.json", "results.csv", "report.html", "clean.png", "plan.toml", "run.json"):
        assert (out / name).stat().st_mode & 0o777 == expected, name
    assert all(path.stat().st_mode & 0o777 == expected for path in (out / "units").rglob("*.json"))
    assert os.access(out / "results.json", os.R_OK)
