"""Reader of Aff-Wild2 (ABAW) valence-arousal annotation files (§4.1: an in-the-wild VA corpus).

Layout: ``VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>[_left|_right].txt``, header
``valence,arousal``, one row per video frame; -5 marks a frame without a valid annotation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emorec.data import _text

INVALID = -5.0


def read_va(path) -> pd.DataFrame:
    """One Aff-Wild2 VA file: columns ``frame, valence, arousal, valid``.

    ``frame`` is the 0-based video frame index (row order; the cropped-aligned image of frame ``f`` is
    ``{f + 1:05d}.jpg``). A row with -5 in either column is ``valid=False`` with NaN values; every
    other value must be in [-1, 1].
    """
    header, rows, lines = _text.table(path, 2)
    names = [h.lower() for h in header] if header is not None else ["valence", "arousal"]
    if "valence" not in names or "arousal" not in names:
        raise ValueError(f"{path}: expected columns valence, arousal; found header {header}")
    iv, ia = names.index("valence"), names.index("arousal")
    values = np.array([[_text.parse_float(f[iv], path, k, "valence"), _text.parse_float(f[ia], path, k, "arousal")]
                       for f, k in zip(rows, lines)])
    valid = ~np.any(values == INVALID, axis=1)
    values[~valid] = np.nan
    for j, dim in enumerate(("valence", "arousal")):
        _text.check_range(path, values[valid, j], dim)
    return pd.DataFrame({"frame": np.arange(len(values)), "valence": values[:, 0],
                         "arousal": values[:, 1], "valid": valid})
