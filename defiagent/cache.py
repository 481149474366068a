"""Where defiagent keeps derived data (compiled artifacts, Slither results): safe to delete."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    base = os.environ.get("DEFIAGENT_CACHE_DIR")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = (root if base else root / "defiagent").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
