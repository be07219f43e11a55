"""Named plans shipped with the Predify family (TOML files in ``presets/``)."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Any

PRESETS = {
    "predify-mnist": "the embedded default: clean, Gaussian noise and targeted BIM on the digit network "
                     "(what `pcrobust evaluate --plugin predify` runs)",
    "predify-mnist-paper": "the Predify paper's protocol (noise; targeted L∞ BIM on up to 1,000 images right at "
                           "every timestep) on the digit network",
    "predify-lite0-cpu": "PEfficientNet-Lite0 on the 20 bundled ImageNet images, a reduced CPU budget: clean, "
                         "Gaussian noise at the paper's σ, targeted BIM at every timestep",
    "predify-lite0-corruptions-cpu": "PEfficientNet-Lite0 on the 20 bundled ImageNet images under the 19 ImageNet-C "
                                     "corruptions at severity 3 (T = 3): CE, AlexNet-normalised mCE",
    "predify-lite0-paper": "PEfficientNet-Lite0 with the Predify paper's full budget, for a GPU: T = 10, noise at "
                           "the reference σ, targeted BIM (100 steps, 8 ε) on 1,000 images, 19 × 5 corruptions",
}


def load(name: str) -> dict[str, Any]:
    """The tables of the shipped preset ``name``."""
    return tomllib.loads(files("pcrobust_predify").joinpath("presets", f"{name}.toml").read_text())
