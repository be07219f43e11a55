"""Errors that the CLI turns into one clear line and a non-zero exit."""


class PcrobustError(Exception):
    """A user-facing error: bad input, unknown names, unusable files (exit code 2)."""


class UnknownNameError(PcrobustError):
    """A plugin, model, attack or dataset name that nothing registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown {kind} {name!r}; available: {listing}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), for one-line reports."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
