"""Where the book's generated folders live, wherever a chapter is run from.

Chapters take plain relative paths as parameters (``data_root="data"``). Papermill runs them from
the repository root, but a reader who opens ``chapters/x.md`` in Jupyter gets a kernel whose working
directory is ``chapters/``, and nbval re-executes notebooks from their own folder. Resolving relative
paths against the project root makes all three agree.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "EMOREC_ROOT"


def _is_project_root(path: Path) -> bool:
    # The staged copy of the book under _build/ also has a _toc.yml: the library folder tells them apart.
    return (path / "_toc.yml").is_file() and (path / "lib" / "emorec").is_dir()


def project_root() -> Path:
    """The repository root: ``$EMOREC_ROOT`` if set, else the nearest parent of the working
    directory holding ``_toc.yml`` and ``lib/emorec``, else the working directory itself."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if _is_project_root(candidate):
            return candidate
    return cwd


def resolve(path: str | os.PathLike) -> Path:
    """``path`` itself if absolute, else ``path`` relative to :func:`project_root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path
