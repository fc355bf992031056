"""Output paths asked about before the work: a run that ends on a path it cannot write has
lost the run. Shared by the command line and the series commands."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["unwritable"]


def unwritable(path: Path, *, folder: bool = False) -> str | None:
    """Why ``path`` cannot be written (a file; with ``folder``, a folder to write into), or
    None; creates the folders it needs."""
    target = path if folder else path.parent
    if not folder and path.is_dir():
        return f"{path} is a folder, not a file to write"
    if folder and path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder to write into"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {target}: {exc.strerror or exc}"
    if not os.access(target, os.W_OK):
        return f"{target} is not writable"
    return None
