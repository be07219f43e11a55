"""Train the shipped weights of ``lateral-digits`` and print their test accuracy per timestep.

    python scripts/train.py [--out pcrobust_example/weights/lateral.pt] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pcrobust.plugins import PluginHost
from pcrobust.registry import TrainingRequest
from pcrobust_example import model, training

HERE = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "pcrobust_example" / "weights" / "lateral.pt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    datasets = PluginHost().registries.datasets
    start = time.perf_counter()
    path = training.train(TrainingRequest(args.out, args.seed, {}, datasets))
    print(f"trained in {time.perf_counter() - start:.0f} s: {path}")
    test = datasets.get(model.DATASET).load("test")
    net = model.build(path, {})
    with torch.no_grad():
        correct = (net(test.images).argmax(2) == test.labels).float().mean(1)
    print("test accuracy per timestep:", " ".join(f"{value:.3f}" for value in correct.tolist()))


if __name__ == "__main__":
    main()
