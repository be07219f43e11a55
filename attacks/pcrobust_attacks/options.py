"""The ``backend`` option of the first-party attacks that Foolbox and ART also implement."""

from __future__ import annotations

from typing import Literal

Backend = Literal["pcrobust", "foolbox", "art"]
BACKEND_HELP = "implementation: pcrobust's own, or Foolbox's or ART's, run one timestep per call (for cross-checks)"

DecisionBackend = Literal["pcrobust", "foolbox"]
DECISION_BACKEND_HELP = ("implementation: pcrobust's own, or Foolbox's, run one image and one timestep per call "
                         "(for cross-checks; ART's HopSkipJump fails under NumPy 2 and is not offered)")
