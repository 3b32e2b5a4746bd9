"""Provenance of the numbers a chapter prints: which data, profile, seed and code produced them.

The book's rule (DESIGN §3): every table says where its numbers came from. Chapters print
:func:`provenance` under each table of results.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache

import torch

from . import __version__
from .paths import project_root


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit hash of the checkout (with ``+dirty`` when files differ), or ``"unknown"``."""
    try:
        root = project_root()
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name() -> str:
    """The device that training uses: the CUDA GPU's name, else ``cpu``."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def provenance(data: str, profile: str, seed: int | None = None) -> str:
    """One line naming the data, profile, seed, commit and device behind a result.

    ``data`` says in words which data produced it, e.g. ``"synthetic SEWA-like corpus"`` or
    ``"SEWA-DB (real)"``.
    """
    parts = [f"data: {data}", f"profile: {profile}"]
    if seed is not None:
        parts.append(f"seed: {seed}")
    parts += [f"emorec {__version__} @ {git_commit()}", f"device: {device_name()}",
              f"torch {torch.__version__}, Python {platform.python_version()}"]
    return " | ".join(parts)
