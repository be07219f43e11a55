"""Atomic file writes with the user's normal permissions (the umask decides, as for any new file)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from pcrobust.errors import PcrobustError


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``: readers and a
    killed process never see half a file."""
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_schema_json(file: Path, schema: str, what: str) -> dict[str, Any] | None:
    """The JSON object in ``file`` whose ``schema`` is ``schema``; ``None`` when there is no such file, a one-line
    :class:`PcrobustError` when it is unreadable or of another schema (``what``: "record", "document", ...)."""
    if not file.is_file():
        return None
    try:
        found = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PcrobustError(f"{file} is unreadable: {exc}") from None
    if not isinstance(found, dict) or found.get("schema") != schema:
        raise PcrobustError(f"{file} is not a {schema} {what}")
    return found
