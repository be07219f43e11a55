"""How the shipped weights were made: Adam on the mean cross-entropy over timesteps 0..T."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from pcrobust.registry import TrainingRequest
from pcrobust_example.model import DATASET, LateralNet

EPOCHS = 3
BATCH_SIZE = 64
LEARNING_RATE = 2e-3


def train(request: TrainingRequest) -> Path:
    """Train on the 4,000 training digits of ``mnist-5k`` and write the state dict to ``request.out``."""
    torch.manual_seed(request.seed)
    data = request.datasets.get(DATASET).load("train")
    net = LateralNet().train()
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    order = torch.Generator().manual_seed(request.seed)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(data), generator=order).split(BATCH_SIZE):
            logits = net(data.images[batch], net.default_timesteps)
            loss = F.cross_entropy(logits.flatten(0, 1), data.labels[batch].repeat(len(logits)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    request.out.parent.mkdir(parents=True, exist_ok=True)
    with open(request.out, "wb") as handle:  # a file object keeps the archive's inner name, so its bytes, fixed
        torch.save(net.state_dict(), handle)
    return request.out
