"""Parameters saved by the PCX library (``pxu.save_params``: an ``.npz`` keyed by the pytree path of each layer
parameter, e.g. ``.layers[0].nn.weight``) loaded into the equivalent PyTorch modules.

Layouts follow equinox: ``Linear.weight`` is (out, in) and ``Conv.weight`` (out, in, kh, kw), as in torch, but a
convolution's bias is (out, 1, 1); ``ConvTranspose.weight`` is (out, in, kh, kw) applied as a cross-correlation
of the dilated input without flipping, so torch's ``ConvTranspose2d.weight`` (in, out, kh, kw) is that array
flipped in both spatial axes with its first two axes swapped."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pcrobust.errors import PcrobustError


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, refusing pickled objects; a missing or broken file is one line."""
    path = Path(path)
    if not path.is_file():
        raise PcrobustError(f"PCX parameter file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise PcrobustError(f"PCX parameter file {path} is not a readable .npz archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: np.asarray(archive[key]) for key in archive.files}
    except ValueError:
        raise PcrobustError(f"PCX parameter file {path} holds Python objects (pickled arrays), refused unread"
                            ) from None
    except (OSError, zipfile.BadZipFile, EOFError):
        raise PcrobustError(f"PCX parameter file {path} is not a readable .npz archive") from None


def torch_layout(module: nn.Module, name: str, array: np.ndarray) -> Tensor:
    """``array`` (equinox layout) as the tensor ``module.<name>`` expects."""
    value = torch.from_numpy(np.ascontiguousarray(array))
    if isinstance(module, nn.ConvTranspose2d) and name == "weight":
        return value.flip(-1, -2).transpose(0, 1).contiguous()
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d) and name == "bias" and value.dim() == 3:
        return value.reshape(-1)
    return value


def load_pcx_params(path: Path, modules: Mapping[str, nn.Module]) -> None:
    """Copy the arrays of ``path`` into ``modules`` (pytree path prefix → ``nn.Linear``/``nn.Conv2d``/
    ``nn.ConvTranspose2d``): ``{prefix}.weight`` and ``{prefix}.bias`` each. Every parameter must be present with
    the shape its layout implies, and every array of the file used; anything else is a one-line error."""
    arrays = read_npz(path)
    used = set()
    for prefix, module in modules.items():
        for name, parameter in module.named_parameters(recurse=False):
            key = f"{prefix}.{name}"
            if key not in arrays:
                raise PcrobustError(f"PCX parameter file {path} lacks {key!r} (it holds {', '.join(sorted(arrays))})")
            if not np.issubdtype(arrays[key].dtype, np.floating):
                raise PcrobustError(f"PCX parameter {key!r} in {path} is {arrays[key].dtype}, not floating point")
            value = torch_layout(module, name, arrays[key])
            if tuple(value.shape) != tuple(parameter.shape):
                raise PcrobustError(f"PCX parameter {key!r} in {path} has shape {list(arrays[key].shape)}, which does"
                                    f" not fit {type(module).__name__} {list(parameter.shape)}")
            with torch.no_grad():
                parameter.copy_(value.to(parameter.dtype))
            used.add(key)
    extra = sorted(set(arrays) - used)
    if extra:
        raise PcrobustError(f"PCX parameter file {path} holds {extra[0]!r}, which this network has no place for")
