"""The PVGG16-sized benchmark network and the engine-vs-reference-vs-floor script, at a tiny image size."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import torch

from pcrobust.models import evaluation_mode

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
PVGG16_PCODER_MODULES = [  # the ReLU outputs before each max-pool
    "features[3]", "features[8]", "features[15]", "features[22]", "features[29]"]


def benchmark_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_pvgg16_sized_network_gives_logits_at_every_timestep() -> None:
    pvgg16 = benchmark_module("pvgg16")
    before = torch.random.get_rng_state()
    model = pvgg16.pvgg16_random(32, 2, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert list(model.layer_paths) == PVGG16_PCODER_MODULES
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with evaluation_mode(model), torch.no_grad():
        logits = model(images, 2)
        backbone = model.backbone(model.normalization(images))
    assert logits.shape == (3, 2, 1000) and bool(logits.isfinite().all())
    assert torch.allclose(logits[0], backbone, atol=1e-6)  # t = 0 is the VGG16 alone
    assert not torch.equal(logits[0], logits[2])  # the feedback changes the logits after t = 0


def test_engine_vs_floor_runs_at_a_tiny_size_and_compares_with_the_reference() -> None:
    done = run_benchmark("engine_vs_floor.py", "--size", "32", "--timesteps", "1", "--n", "1", "--steps", "1")
    assert done.returncode == 0, done.stderr
    assert "1 images at 32², timesteps 0..1" in done.stdout
    lines = {line.split("  ")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert lines["success counts identical"].endswith("True")
    assert float(lines["images·timesteps·steps per second"].split()[-6]) > 0
    assert "engine time / floor" in lines and "engine speed-up over foolbox" in lines


def test_attack_benchmarks_share_their_options() -> None:
    for script in ("rpgd_vs_foolbox.py", "hsj_per_timestep.py"):
        done = run_benchmark(script, "--help")
        assert done.returncode == 0, done.stderr
        for option in ("--n", "--timesteps", "--epsilons", "--steps", "--repeats", "--batch-size", "--threads"):
            assert option in done.stdout
    options = benchmark_module("per_timestep").attack_options("x", n=6, epsilons="1,2", epsilons_help="budgets",
                                                              steps=8, steps_help="iterations")
    args = options.parse_args(["--n", "3"])
    assert (args.n, args.timesteps, args.epsilons, args.steps, args.repeats, args.batch_size, args.threads) == (
        3, 2, "1,2", 8, 3, 500, 1)
