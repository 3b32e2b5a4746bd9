"""Reader of AFEW-VA clip annotations (§4.1: another in-the-wild valence/arousal corpus).

Layout: ``<NNN>/<NNN>.json`` beside the clip's frames ``<NNN>/<frame>.png``; the JSON holds
``{"actor": ..., "frames": {"00000": {"valence": -2, "arousal": 3, "landmarks": [[x, y], ...]}, ...},
"video_id": "001"}`` with integer values in -10..10, divided by 10 here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from emorec.data import _text


def read_clip(json_path) -> pd.DataFrame:
    """One AFEW-VA clip: columns ``frame, valence, arousal`` (values / 10, in [-1, 1]) sorted by frame.

    Frames must be consecutive; values must be numbers in -10..10.
    """
    path = Path(json_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: AFEW-VA annotation file not found")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a valid JSON file ({err})") from None
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, dict) or not frames:
        raise ValueError(f"{path}: no 'frames' object with annotations")
    rows = []
    for key, ann in frames.items():
        if not str(key).strip().isdigit():
            raise ValueError(f"{path}: frame key {key!r} is not a frame number")
        if not isinstance(ann, dict) or "valence" not in ann or "arousal" not in ann:
            raise ValueError(f"{path}: frame {key}: missing 'valence' or 'arousal'")
        values = []
        for dim in ("valence", "arousal"):
            v = ann[dim]
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ValueError(f"{path}: frame {key}: {dim} {v!r} is not a number")
            values.append(_text.parse_float(str(v), path, 0, f"frames/{key}/{dim}"))
        rows.append((int(key), values[0] / 10.0, values[1] / 10.0))
    df = pd.DataFrame(rows, columns=["frame", "valence", "arousal"]).sort_values("frame").reset_index(drop=True)
    gaps = df["frame"].diff().dropna()
    if (gaps != 1).any():
        k = int(gaps.index[(gaps != 1).to_numpy()][0])
        raise ValueError(f"{path}: frames not consecutive: {df['frame'][k - 1]} is followed by {df['frame'][k]}")
    for dim in ("valence", "arousal"):
        _text.check_range(path, df[dim].to_numpy(), dim)
    return df
