"""Loading weight files safely: ``torch.load(..., weights_only=True)``, with one line for every way it fails."""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
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
