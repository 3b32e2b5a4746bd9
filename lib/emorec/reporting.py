"""Provenance of the numbers a chapter prints: which data, profile, seed and code produced them.

The book's rule (DESIGN §3): every table says where its numbers came from. Chapters show
:func:`provenance` under each table of results, and show paths with :func:`display_path` (no
page may print an absolute path of the machine that built it).
"""

from __future__ import annotations

import html
import math
import numbers
import os
import platform
import re
import subprocess
import textwrap
from functools import lru_cache
from pathlib import Path

import pandas as pd
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
    return ProvenanceLine(" | ".join(parts))


class ProvenanceLine(str):
    """A provenance line: plain text when printed, a small wrapped paragraph in a rendered notebook."""

    def _repr_html_(self) -> str:
        return f'<p class="emorec-provenance">{html.escape(self)}</p>'

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def _shown_folders() -> list[tuple[Path, str]]:
    """(folder, how pages write it): the repository root as "" and the home folder as "~", each
    also with symbolic links resolved; the longest first, so a root inside the home folder wins."""
    home = Path.home()
    pairs = [(project_root(), "")] + ([(home, "~")] if home != Path(home.anchor) else [])
    forms = {(form, shown) for folder, shown in pairs for form in (folder, folder.resolve())}
    return sorted(forms, key=lambda pair: len(str(pair[0])), reverse=True)


def display_path(path: str | os.PathLike) -> str:
    """``path`` as a page shows it (ours): relative to the repository root (``artefacts/cpu/...``),
    else under the home folder as ``~/...``, else as given. Relative paths are taken from the root."""
    path = Path(path).expanduser()
    absolute = path if path.is_absolute() else project_root() / path
    for candidate in (absolute, absolute.resolve()):
        for folder, shown in _shown_folders():
            if candidate.is_relative_to(folder):
                rest = candidate.relative_to(folder).as_posix()
                return "/".join(part for part in (shown, rest) if part and part != ".") or "."
    return str(path)


def display_paths_in(text: str) -> str:
    """``text`` (e.g. an error message) with every absolute path under the repository root or the
    home folder written as :func:`display_path` writes it (ours)."""
    for folder, shown in _shown_folders():
        text = text.replace(f"{folder}{os.sep}", f"{shown}/" if shown else "")
    return text


class Table:
    """A result table as a page shows it: an HTML table in a rendered notebook, text when printed.

    ``options`` are those of :meth:`pandas.DataFrame.to_html` and ``to_string`` alike (``index``,
    ``float_format``, ``formatters``, ``na_rep``), so a table can drop its index or round its
    numbers as the paper does, unlike a plain DataFrame's display (ours)."""

    def __init__(self, frame, **options):
        self.frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
        self.options = options

    def _repr_html_(self) -> str:
        return self.frame.to_html(border=0, **self.options)

    def __repr__(self) -> str:
        return self.frame.to_string(**self.options)


def result_table(frame, **options) -> Table:
    """``frame`` shown as a table of results (see :class:`Table`) (ours)."""
    return Table(frame, **options)


SIDES = ("paper", "ours")
_SIDE_COLUMN = re.compile(r"^(?:(?P<before>paper|ours) (?P<rest>.+)|(?P<name>.+) \((?P<after>paper|ours)\))$")


def paper_and_ours_as_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A paper-beside-ours table (columns ``"paper X"``/``"ours X"`` or ``"X (paper)"``/``"X (ours)"``)
    with the paper and ours as two rows under each ``keys`` value, so that it fits a page's column
    (ours). A column of one side only is blank on the other's row; a column naming no side is ours."""
    rows = []
    for _, row in frame.iterrows():
        for side in SIDES:
            entry = {key: row[key] for key in keys} | {"": side}
            for column in frame.columns.drop(keys):
                match = _SIDE_COLUMN.match(column)
                name, owner = ((match["rest"] or match["name"]), (match["before"] or match["after"])) if match \
                    else (column, "ours")
                entry.setdefault(name, "")
                if owner == side:
                    entry[name] = row[column]
            rows.append(entry)
    return pd.DataFrame(rows).set_index(keys + [""])


def short_text(text: str, width: int = 60) -> str:
    """``text`` for a table cell (ours): machine paths as :func:`display_paths_in` writes them,
    cut at a word boundary to at most ``width`` characters, ending in "…" when cut."""
    return textwrap.shorten(display_paths_in(str(text)), width, placeholder=" …")


def wrapped(text: str, width: int = 75, indent: str = "") -> str:
    """``text`` for a printed line of a page (ours): machine paths as :func:`display_paths_in` writes
    them, wrapped to ``width`` characters (the page column holds about 80), continuation lines indented."""
    return textwrap.fill(display_paths_in(str(text)), width, initial_indent=indent,
                         subsequent_indent=indent + "  ", break_on_hyphens=False)


def decimals(places: int):
    """A :func:`result_table` formatter for one column (ours): numbers with ``places`` decimals (as
    the paper prints that measure), a missing number blank, text as it is."""
    def show(value) -> str:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return "" if math.isnan(value) else f"{value:.{places}f}"
        return str(value)
    return show
