"""Provenance of the numbers a chapter prints: which data, profile, seed and code produced them.

The book's rule (DESIGN §3): every table says where its numbers came from. Chapters print
:func:`provenance` under each table of results.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from . import __version__
from .paths import project_root, resolve


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


def display_path(path) -> str:
    """``path`` as a reader should see it (ours): relative to the repository when inside it, else with
    ``~`` for the home folder, else absolute. Never the machine-specific prefix of a checkout."""
    full = resolve(path).resolve()
    for base, prefix in ((project_root().resolve(), ""), (Path.home().resolve(), "~/")):
        if full == base or base in full.parents:
            rel = full.relative_to(base).as_posix()
            return (prefix + rel) if rel != "." else (prefix.rstrip("/") or ".")
    return full.as_posix()


def dataset_description(name: str, root=None, synthetic: str = "") -> str:
    """The words a provenance line uses for the data actually read (ours): ``"<name> at <root>"``
    for a real copy, else the synthetic stand-in's description."""
    return synthetic if root is None else f"{name} at {display_path(root)}"


def device_name() -> str:
    """The device that training uses: the CUDA GPU's name, else ``cpu``."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def provenance(data: str, profile: str, seed: int | None = None) -> str:
    """One line naming the data, profile, seed, commit and device behind a result.

    ``data`` says in words which data produced it, e.g. ``"synthetic SEWA-like corpus"`` or
    ``"SEWA-DB at ~/data/sewa"`` (:func:`dataset_description`).
    """
    parts = [f"data: {data}", f"profile: {profile}"]
    if seed is not None:
        parts.append(f"seed: {seed}")
    parts += [f"emorec {__version__} @ {git_commit()}", f"device: {device_name()}",
              f"torch {torch.__version__}, Python {platform.python_version()}"]
    return " | ".join(parts)
