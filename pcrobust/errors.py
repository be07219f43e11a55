"""Errors that the CLI turns into one clear line and a non-zero exit."""


class PcrobustError(Exception):
    """A user-facing error: bad input, unknown names, unusable files (exit code 2)."""


class UnknownNameError(PcrobustError):
    """A plugin, model, attack or dataset name that nothing registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown {kind} {name!r}; available: {listing}")
