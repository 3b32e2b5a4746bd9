"""Readers of SEWA-DB's continuous valence/arousal labels and a corpus index (§4.1).

Two label formats exist:

* **SEWA-DB raw**: ``<video>_Valence_<type>_Aligned.csv`` and ``<video>_Arousal_<type>_Aligned.csv``
  (``<type>`` = A, V or AV, the annotation condition), comma-separated, a header, column 0 the time
  (0.1 s steps), then one column per annotator. The gold standard is the annotators' mean
  (:func:`read_annotations`, column ``fused``).
* **AVEC 2019 CES** (derived from SEWA): ``labels/<Partition>_<CC>_<NN>.csv``, ``;``-separated,
  ``name;timestamp;arousal;valence;liking`` with quoted names such as ``'Devel_DE_01'``; the AVEC
  2017/2018 releases have the same columns without the header (:func:`read_avec_labels`).

:func:`load_sewa` indexes a corpus directory, the synthetic one (``emorec.data.synthetic``) or a real
copy, and returns one row per labelled video with its files and split.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.data import _text

SPLITS = ("train", "validation", "test")
_AVEC_COLUMNS = ["name", "time", "arousal", "valence", "liking"]
_AVEC_ALIASES = {"name": "name", "instance_name": "name", "id": "name", "timestamp": "time", "time": "time",
                 "frametime": "time", "arousal": "arousal", "valence": "valence", "liking": "liking"}
_ALIGNED = re.compile(r"^(?P<video>.+)_(?P<dim>valence|arousal)_(?P<cond>av|a|v)_aligned\.csv$", re.IGNORECASE)
_AVEC_NAME = re.compile(r"^(?P<part>train|devel|test)_(?P<cc>[a-z]{2})_(?P<nn>\d+)\.csv$", re.IGNORECASE)
_VIDEO_EXT = {".avi", ".mp4", ".mov", ".mkv"}
_CONDITION_PREFERENCE = ("V", "AV", "A")
# The paper's protocol (§4.1): official Devel is the test set; Train is split into train/validation.
_AVEC_PARTITION_SPLIT = {"train": "train", "devel": "test", "test": "unlabelled"}


def read_avec_labels(path) -> pd.DataFrame:
    """AVEC 2017/2018/2019 CES labels: columns ``name, time, arousal, valence, liking`` (§4.1).

    With or without a header; ``;`` or ``,`` separated; names may be quoted. Values must be in
    [-1, 1] and times regular and increasing. ``liking`` is NaN when the file has no such column.
    """
    header, rows, lines = _text.table(path, 4, first_is_name=True)
    if header is None:
        if len(rows[0]) not in (4, 5):
            raise ValueError(f"{path}: {len(rows[0])} columns without a header; expected "
                             f"name;timestamp;arousal;valence[;liking]")
        columns = _AVEC_COLUMNS[:len(rows[0])]
    else:
        columns = [_AVEC_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
        missing = [c for c in ("name", "time", "arousal", "valence") if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing} in header {header}")
    data = {c: [] for c in _AVEC_COLUMNS}
    for fields, k in zip(rows, lines):
        record = dict(zip(columns, fields))
        data["name"].append(record["name"])
        for c in _AVEC_COLUMNS[1:]:
            data[c].append(_text.parse_float(record[c], path, k, c) if c in record else np.nan)
    _check_avec_names(path, data["name"], lines)
    df = pd.DataFrame(data)
    _text.check_time(path, df["time"].to_numpy(), lines)
    for c in ("arousal", "valence") + (("liking",) if "liking" in columns else ()):
        _text.check_range(path, df[c].to_numpy(), c)
    return df


def _check_avec_names(path, names: list, lines: list) -> None:
    """Every row's ``name`` must be the file's recording (``Devel_DE_01`` in ``Devel_DE_01.csv``):
    a file renamed or pasted from another recording would label the wrong video."""
    expected = Path(path).stem
    for name, k in zip(names, lines):
        if name.lower() != expected.lower():
            raise ValueError(f"{path}: line {k}: name {name!r} is another recording than the file's "
                             f"({expected!r})")


def _read_aligned(path) -> pd.DataFrame:
    header, rows, lines = _text.table(path, 2)
    names = header[1:] if header is not None else [f"Annotator{k}" for k in range(1, len(rows[0]))]
    names = [n or f"Annotator{k + 1}" for k, n in enumerate(names)]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate annotator columns {names}")
    cols = ["time"] + list(names)
    values = np.array([[_text.parse_float(f, path, k, c) for f, c in zip(fields, cols)]
                       for fields, k in zip(rows, lines)])
    df = pd.DataFrame(values, columns=cols)
    _text.check_time(path, df["time"].to_numpy(), lines)
    for c in names:
        _text.check_range(path, df[c].to_numpy(), c)
    return df


def read_annotations(paths) -> pd.DataFrame:
    """SEWA raw annotations: columns ``time``, one per annotator, and ``fused`` = their mean (§4.1).

    ``paths`` is one ``*_Aligned.csv`` (time + one column per annotator) or several files on the same
    time axis (each contributes its annotator columns, prefixed by its file stem if names clash).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("read_annotations: no annotation file given")
    out = None
    for path in paths:
        df = _read_aligned(path)
        if out is None:
            out, first = df, path
            continue
        if len(df) != len(out) or not np.allclose(df["time"], out["time"], atol=1e-3):
            raise ValueError(f"{path} and {first}: annotation files are not on the same time axis "
                             f"({len(df)} vs {len(out)} rows)")
        renamed = {c: (f"{path.stem}:{c}" if c in out.columns else c) for c in df.columns[1:]}
        out = pd.concat([out, df.drop(columns="time").rename(columns=renamed)], axis=1)
    annotators = [c for c in out.columns if c != "time"]
    out["fused"] = out[annotators].mean(axis=1)
    return out


def read_sewa_labels(valence_path, arousal_path) -> pd.DataFrame:
    """Gold-standard labels of one video from its two raw files: columns ``time, valence, arousal``.

    Each dimension is the mean of its annotators (§4.1); both files must share the time axis.
    """
    val, aro = read_annotations(valence_path), read_annotations(arousal_path)
    if len(val) != len(aro) or not np.allclose(val["time"], aro["time"], atol=1e-3):
        raise ValueError(f"{valence_path} and {arousal_path}: valence and arousal files have different "
                         f"time axes ({len(val)} vs {len(aro)} rows)")
    return pd.DataFrame({"time": val["time"], "valence": val["fused"], "arousal": aro["fused"]})


def read_video_labels(entry) -> pd.DataFrame:
    """Labels ``time, valence, arousal`` for one row of :func:`load_sewa`, whatever its label format."""
    if entry["label_format"] == "avec":
        df = read_avec_labels(entry["label_path"])
        return df[["time", "valence", "arousal"]].reset_index(drop=True)
    return read_sewa_labels(entry["valence_path"], entry["arousal_path"])


def _read_split_file(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: split file not found")
    header, rows, lines = _text.table(path, 2)
    cols = [h.lower() for h in header] if header is not None else ["video", "split"]
    if "video" not in cols or "split" not in cols:
        raise ValueError(f"{path}: split file needs columns 'video' and 'split', found {header}")
    iv, isp = cols.index("video"), cols.index("split")
    out = {}
    for fields, k in zip(rows, lines):
        split = fields[isp].lower()
        if split not in SPLITS:
            raise ValueError(f"{path}: line {k}: split {fields[isp]!r} is not one of {SPLITS}")
        if fields[iv] in out:
            raise ValueError(f"{path}: line {k}: video {fields[iv]!r} listed twice")
        out[fields[iv]] = split
    return out


def _index_files(root: Path, condition) -> tuple:
    videos, aligned, avec = {}, {}, {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in _VIDEO_EXT and p.is_file():
            videos.setdefault(p.stem, p)
        elif (m := _ALIGNED.match(p.name)) is not None:
            aligned.setdefault(m["video"], {}).setdefault(m["cond"].upper(), {})[m["dim"].lower()] = p
        elif (m := _AVEC_NAME.match(p.name)) is not None and p.parent.name.lower().startswith("label"):
            avec[p.stem] = (p, m["part"].lower())
    chosen = {}
    for video, by_cond in aligned.items():
        order = [condition.upper()] if condition else _CONDITION_PREFERENCE
        for cond in order:
            files = by_cond.get(cond, {})
            if "valence" in files and "arousal" in files:
                chosen[video] = (cond, files["valence"], files["arousal"])
                break
    return videos, chosen, avec


def load_sewa(root, split_file=None, condition=None) -> pd.DataFrame:
    """Index a SEWA-DB-like corpus: one row per video that has both a video file and labels (§4.1).

    Columns: ``video, subject, group, split, video_path, label_format ("sewa" | "avec"),
    valence_path, arousal_path, label_path, condition, latent_path``. Files are found anywhere under
    ``root``: videos (``.avi``...), raw ``<video>_<Dim>_<type>_Aligned.csv`` pairs (``condition`` picks
    A, V or AV; default: V, then AV, then A) or AVEC ``labels/<Partition>_<CC>_<NN>.csv``.

    Splits come from ``split_file`` (CSV ``video,split`` with train / validation / test), else from
    ``<root>/splits.csv`` (the synthetic corpus writes one), else for AVEC names from the partition
    (Train -> train, Devel -> test, as the paper uses the official devel set as test); otherwise
    ``"unassigned"``. ``metadata.csv`` (ours), when present, supplies subject and group.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: SEWA corpus directory not found")
    videos, aligned, avec = _index_files(root, condition)
    if split_file is None and (root / "splits.csv").exists():
        split_file = root / "splits.csv"
    splits = _read_split_file(split_file) if split_file is not None else {}
    meta = _read_metadata(root / "metadata.csv")
    rows = []
    for video, vpath in videos.items():
        row = dict(video=video, video_path=str(vpath), label_format=None, valence_path=None,
                   arousal_path=None, label_path=None, condition=None)
        if video in aligned:
            cond, vp, ap = aligned[video]
            row.update(label_format="sewa", valence_path=str(vp), arousal_path=str(ap), condition=cond)
        elif video in avec:
            row.update(label_format="avec", label_path=str(avec[video][0]))
        else:
            continue
        default_split = _AVEC_PARTITION_SPLIT[avec[video][1]] if video in avec else "unassigned"
        row["split"] = splits.get(video, default_split)
        culture = re.match(r"^SEW(\d)", video)
        row["subject"] = meta.get(video, {}).get("subject", video)
        row["group"] = meta.get(video, {}).get("group", int(culture[1]) if culture else None)
        latent = root / "latent" / f"{video}.npz"
        row["latent_path"] = str(latent) if latent.exists() else None
        rows.append(row)
    missing = sorted(set(splits) - {r["video"] for r in rows})
    if missing:
        raise ValueError(f"{split_file}: videos {missing[:5]} have no video file with labels under {root}")
    if not rows:
        raise ValueError(f"{root}: no video with matching valence/arousal labels found")
    cols = ["video", "subject", "group", "split", "video_path", "label_format", "valence_path",
            "arousal_path", "label_path", "condition", "latent_path"]
    return pd.DataFrame(rows)[cols].sort_values("video").reset_index(drop=True)


METADATA_COLUMNS = ("video", "subject", "group")  # of our metadata.csv (emorec.data.synthetic)


def _read_metadata(path: Path) -> dict:
    """``metadata.csv`` (ours): video -> subject and group; ValueError naming the file, and the line or
    the missing column, for anything else."""
    if not path.exists():
        return {}
    header, rows, lines = _text.table(path, 1)  # too few columns: named below, as missing ones
    columns = [h.lower() for h in header or ()]
    missing = [c for c in METADATA_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (needs {', '.join(METADATA_COLUMNS)}; "
                         f"found {header})")
    iv, isub, ig = (columns.index(c) for c in METADATA_COLUMNS)
    out = {}
    for fields, k in zip(rows, lines):
        group = _text.parse_float(fields[ig], path, k, "group")
        if not group.is_integer():
            raise ValueError(f"{path}: line {k}, column 'group': {fields[ig]!r} is not an integer")
        if fields[iv] in out:
            raise ValueError(f"{path}: line {k}: video {fields[iv]!r} listed twice")
        out[fields[iv]] = {"subject": fields[isub], "group": int(group)}
    return out
