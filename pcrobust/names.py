"""File-name-safe forms of section ids and unit keys."""

from __future__ import annotations

import re

_SPELLED = {"ε": "eps", "σ": "sigma", "∞": "inf", "λ": "lambda", "β": "beta", "α": "alpha"}


def slug(text: str) -> str:
    """``"attack bim"`` → ``"attack-bim"``, ``"σ=0.1/images-0000"`` → ``"sigma-0-1-images-0000"``."""
    spelled = "".join(_SPELLED.get(char, char) for char in text.lower())
    cleaned = re.sub(r"[^0-9a-z]+", "-", spelled).strip("-")
    return cleaned or "section"
