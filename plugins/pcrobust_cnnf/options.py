"""The model options every CNN-F entry takes (``-o KEY=VALUE``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pcrobust.errors import PcrobustError

ETA = 0.1
OPTION_HELP = {
    "eta": f"online update step η of Eq. 6–7, in (0, 1]; 1 is greedy replacement [default: {ETA}]",
}
REFERENCE_HELP = {
    **OPTION_HELP,
    "reference": "a released checkpoint of the reference CNN-F code (its state-dict layout), instead of --weights",
}


def parse_eta(options: Mapping[str, str], accepted: Mapping[str, str] = OPTION_HELP) -> float:
    """η from ``options`` (default :data:`ETA`); a key not in ``accepted`` is an error naming what is."""
    unknown = set(options) - set(accepted)
    if unknown:
        raise PcrobustError(f"unknown option {sorted(unknown)[0]!r}; available: {', '.join(accepted)}")
    try:
        eta = float(options.get("eta", ETA))
    except ValueError:
        raise PcrobustError(f"option eta must be a number, got {options['eta']!r}") from None
    if not 0 < eta <= 1:
        raise PcrobustError(f"option eta must lie in (0, 1], got {eta}")
    return eta


def reference_path(weights: Path | None, options: Mapping[str, str]) -> Path | None:
    """The ``-o reference=FILE`` checkpoint, which excludes ``--weights``."""
    if "reference" not in options:
        return None
    if weights is not None:
        raise PcrobustError("pass either --weights FILE or -o reference=FILE, not both")
    return Path(options["reference"])
