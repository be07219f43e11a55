"""Weight files: loaded safely (``torch.load(..., weights_only=True)``, one line for every way it fails) and
saved reproducibly, optionally tagged with a format name that loading checks."""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pcrobust.errors import PcrobustError


def load_tensors(path: Path, what: str = "weight file") -> Any:
    """The tensors and plain containers in ``path``, on the CPU; nothing in the file is ever executed.

    A missing file, a file holding Python objects other than tensors (a pickle payload), and a corrupt or
    truncated file each get their own one-line :class:`PcrobustError`."""
    path = Path(path)
    if not path.is_file():
        raise PcrobustError(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols above its own; the error says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL (\S+)", str(exc), re.IGNORECASE)
        if named or zipfile.is_zipfile(path):
            detail = f" (it names {named.group(1)})" if named else ""
            raise PcrobustError(f"{what} {path} was refused as unsafe: it holds Python objects, not only "
                                f"tensors{detail}; nothing in it was run") from None
        raise PcrobustError(f"{what} {path} is not a PyTorch checkpoint (corrupt, or a plain pickle, which is "
                            "refused unread)") from None
    except (RuntimeError, OSError, EOFError, ValueError):
        raise PcrobustError(f"{what} {path} is corrupt or truncated: torch cannot read it") from None


def save_tensors(blob: Mapping[str, Any], path: Path) -> Path:
    """``torch.save(blob)`` into ``path`` (its folder made), through a file object: the archive's inner name, and
    so the file's bytes, then do not depend on the path, and retraining reproduces a shipped file exactly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        torch.save(dict(blob), handle)
    return path


def load_format(path: Path, format_name: str, what: str = "checkpoint") -> dict[str, Any]:
    """The dictionary saved in ``path`` under ``"format": format_name`` (see :func:`load_tensors`); any other
    file is a one-line :class:`PcrobustError`."""
    blob = load_tensors(path, what)
    if not isinstance(blob, dict) or blob.get("format") != format_name:
        raise PcrobustError(f"{path} is not a {format_name} checkpoint")
    return blob
