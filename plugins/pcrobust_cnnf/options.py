"""The model options every CNN-F entry takes (``-o KEY=VALUE``)."""

from __future__ import annotations

from collections.abc import Mapping

from pcrobust.errors import PcrobustError

ETA = 0.1
OPTION_HELP = {
    "eta": f"online update step η of Eq. 6–7, in (0, 1]; 1 is greedy replacement [default: {ETA}]",
}


def parse_eta(options: Mapping[str, str]) -> float:
    """η from ``options`` (default :data:`ETA`); any other key is an error naming what is accepted."""
    unknown = set(options) - set(OPTION_HELP)
    if unknown:
        raise PcrobustError(f"unknown option {sorted(unknown)[0]!r}; available: {', '.join(OPTION_HELP)}")
    try:
        eta = float(options.get("eta", ETA))
    except ValueError:
        raise PcrobustError(f"option eta must be a number, got {options['eta']!r}") from None
    if not 0 < eta <= 1:
        raise PcrobustError(f"option eta must lie in (0, 1], got {eta}")
    return eta
