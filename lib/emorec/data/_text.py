"""Tolerant parsing of the small text tables the datasets ship (shared by the readers of §4.1).

Real files come with a UTF-8 byte-order mark, CRLF line endings, quoted fields and trailing blank
lines; all of that is accepted. Anything that would silently corrupt labels (missing or non-numeric
values, NaN, gaps or reversals in time, values out of range, an empty file) raises ValueError naming
the file and the problem; a missing file raises FileNotFoundError naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_lines(path) -> list:
    """Non-blank lines of a text file (BOM, CRLF/CR and trailing blanks tolerated): ``[(line_no, text)]``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from None
    lines = [(k + 1, line.strip()) for k, line in enumerate(text.splitlines())]
    lines = [(k, line) for k, line in lines if line]
    if not lines:
        raise ValueError(f"{path}: empty file")
    return lines


def sniff_separator(line: str) -> str:
    """``;`` (AVEC), tab, or ``,`` (SEWA raw, Aff-Wild2), whichever splits the line most."""
    return max([";", "\t", ","], key=line.count)


def split_fields(line: str, sep: str) -> list:
    """Split on ``sep`` and strip blanks and surrounding single or double quotes from each field."""
    out = []
    for field in line.split(sep):
        field = field.strip()
        if len(field) >= 2 and field[0] == field[-1] and field[0] in "'\"":
            field = field[1:-1].strip()
        out.append(field)
    return out


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_float(text: str, path, line_no: int, column: str) -> float:
    """A float, or ValueError naming file, line and column (NaN and inf refused)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: line {line_no}, column {column!r}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{path}: line {line_no}, column {column!r}: {text!r} is not a finite number")
    return value


def table(path, n_min_columns: int, first_is_name: bool = False) -> tuple:
    """Parse a delimited numeric table: ``(header or None, rows of fields, line numbers)``.

    The first line is a header when one of its fields is not a number (a leading name column, as in
    AVEC's files, is never a number and is skipped in that test). Every row must have the header's
    width, or the first row's when there is no header.
    """
    lines = read_lines(path)
    sep = sniff_separator(lines[0][1])
    rows = [split_fields(text, sep) for _, text in lines]
    numbers = [k for k, _ in lines]
    header = None
    probe = rows[0][1:] if first_is_name else rows[0]
    if not all(is_number(f) for f in probe):
        header, rows, numbers = rows[0], rows[1:], numbers[1:]
    width = len(header) if header is not None else len(rows[0]) if rows else 0
    if width < n_min_columns:
        raise ValueError(f"{path}: {width} column(s), expected at least {n_min_columns}")
    if not rows:
        raise ValueError(f"{path}: header but no data rows")
    for fields, k in zip(rows, numbers):
        if len(fields) != width:
            raise ValueError(f"{path}: line {k} has {len(fields)} fields, expected {width}")
    return header, rows, numbers


NEGATIVE_TIME_SLACK_S = 1e-3  # "-0.0001" is a rounded 0; anything earlier would shift the labels


def _where(lines, row: int) -> str:
    return f"line {lines[row]}" if lines is not None else f"data row {row + 1}"


def check_time(path, times: np.ndarray, lines=None, max_gap_factor: float = 1.5) -> None:
    """Time must not be negative (beyond ``NEGATIVE_TIME_SLACK_S`` of rounding: labels before the video
    starts are misaligned by that much) and must increase strictly with a regular step; a step over
    1.5x the usual one means missing rows. ``lines`` (the rows' line numbers) lets errors name the line."""
    negative = np.flatnonzero(times < -NEGATIVE_TIME_SLACK_S)
    if negative.size:
        k = negative[0]
        raise ValueError(f"{path}: {_where(lines, k)}: time {times[k]:g} s is negative (labels before the "
                         f"video starts would be misaligned with it)")
    if len(times) < 2:
        return
    step = np.diff(times)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        k = bad[0]
        raise ValueError(f"{path}: time is not increasing at {_where(lines, k + 1)} ({times[k]:g} then "
                         f"{times[k + 1]:g})")
    usual = float(np.median(step))
    gap = np.flatnonzero(step > max_gap_factor * usual)
    if gap.size:
        k = gap[0]
        raise ValueError(f"{path}: time gap (missing rows) between {times[k]:g} and {times[k + 1]:g} "
                         f"at {_where(lines, k + 1)} (usual step {usual:g})")


def check_range(path, values: np.ndarray, column: str, lo: float = -1.0, hi: float = 1.0) -> None:
    """Values must lie in [lo, hi] (1e-6 slack for rounding)."""
    values = np.asarray(values, float)
    bad = np.flatnonzero((values < lo - 1e-6) | (values > hi + 1e-6) | ~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{path}: column {column!r} has {bad.size} value(s) outside [{lo:g}, {hi:g}], "
                         f"first {values[bad[0]]:g} at data row {bad[0] + 1}")
