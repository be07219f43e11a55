"""The ``backend`` option of the first-party attacks that Foolbox and ART also implement."""

from __future__ import annotations

from typing import Literal

Backend = Literal["pcrobust", "foolbox", "art"]
BACKEND_HELP = "implementation: pcrobust's own, or Foolbox's or ART's, run one timestep per call (for cross-checks)"
