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
# The paper's protocol (§4.1): official Devel is the test set; Train is split by subject into train and
# validation, 28 : 6; the official Test partition is not used. Without partitions: 28 : 6 : 14.
PAPER_TRAIN_VALIDATION = (28, 6)
PAPER_TRAIN_VALIDATION_TEST = (28, 6, 14)
UNUSED = "unused"  # a split file may leave a video out of every split with this value
_PARTITION_SPLIT = {"devel": "test", "test": UNUSED}


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
        if split not in SPLITS + (UNUSED,):
            raise ValueError(f"{path}: line {k}: split {fields[isp]!r} is not one of {SPLITS + (UNUSED,)}")
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


def load_sewa(root, split_file=None, condition=None, require_splits: bool = True) -> pd.DataFrame:
    """Index a SEWA-DB-like corpus: one row per video that has both a video file and labels (§4.1).

    Columns: ``video, subject, group, split, video_path, label_format ("sewa" | "avec"),
    valence_path, arousal_path, label_path, condition, latent_path, partition`` (AVEC's official
    partition, train / devel / test, from the file name; None for raw SEWA names). Files are found
    anywhere under ``root``: videos (``.avi``...), raw ``<video>_<Dim>_<type>_Aligned.csv`` pairs
    (``condition`` picks A, V or AV; default: V, then AV, then A) or AVEC
    ``labels/<Partition>_<CC>_<NN>.csv``.

    Splits come from ``split_file`` (CSV ``video,split`` with train / validation / test, or ``unused``
    to leave a video out), else from ``<root>/splits.csv`` (the synthetic corpus writes one), else, for
    AVEC names, the paper's protocol (:func:`paper_split`: Devel → test, Train → train + validation
    by subject, 28 : 6). A raw SEWA-DB copy without a split file is an error saying how to make one
    (``emorec split``), and so is a split left empty, unless ``require_splits`` is False (then such
    videos are ``"unassigned"``). ``metadata.csv`` (ours), when present, supplies subject and group.
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
                   arousal_path=None, label_path=None, condition=None, partition=None)
        if video in aligned:
            cond, vp, ap = aligned[video]
            row.update(label_format="sewa", valence_path=str(vp), arousal_path=str(ap), condition=cond)
        elif video in avec:
            row.update(label_format="avec", label_path=str(avec[video][0]), partition=avec[video][1])
        else:
            continue
        row["subject"] = meta.get(video, {}).get("subject", video)
        row["group"] = meta.get(video, {}).get("group", culture_of(video))
        latent = root / "latent" / f"{video}.npz"
        row["latent_path"] = str(latent) if latent.exists() else None
        rows.append(row)
    missing = sorted(set(splits) - {r["video"] for r in rows})
    if missing:
        raise ValueError(f"{split_file}: videos {missing[:5]} have no video file with labels under {root}")
    if not rows:
        raise ValueError(f"{root}: no video with matching valence/arousal labels found")
    cols = ["video", "subject", "group", "split", "video_path", "label_format", "valence_path",
            "arousal_path", "label_path", "condition", "latent_path", "partition"]
    index = pd.DataFrame(rows).sort_values("video").reset_index(drop=True)
    if split_file is not None:
        index["split"] = index["video"].map(splits).fillna("unassigned")
    elif index["partition"].notna().all():
        index["split"] = index["video"].map(paper_split(index))
    else:
        index["split"] = "unassigned"
    if require_splits:
        _check_splits(index, root, split_file)
    return index.loc[index["split"] != UNUSED, cols].reset_index(drop=True)


def _check_splits(index: pd.DataFrame, root: Path, split_file) -> None:
    """Every video in a split, and no split empty: checked when the corpus is indexed (§4.1)."""
    unassigned = sorted(index.loc[index["split"] == "unassigned", "video"])
    if unassigned and split_file is None:
        raise ValueError(f"{root}: raw SEWA-DB videos (e.g. {unassigned[0]}) need a split file: write the paper's "
                         f"protocol with `emorec split {root} --out split.csv` and give it as sewa_split_file")
    if unassigned:
        raise ValueError(f"{split_file}: videos {unassigned[:5]} under {root} are not in the split file "
                         f"(give each train, validation, test or {UNUSED})")
    for split in SPLITS:
        if not (index["split"] == split).any():
            source = split_file if split_file is not None else "the paper's protocol (no split file)"
            raise ValueError(f"{root}: the {split} split is empty (splits from {source}); "
                             f"every split needs at least one video")


def culture_of(video: str):
    """The culture of a SEWA / AVEC video from its name: SEWA's digit (``SEW1101`` → 1) or AVEC's
    country code (``Train_DE_01`` → ``"DE"``); None when the name carries none (§4.1)."""
    if (m := re.match(r"^SEW(\d)", video)) is not None:
        return int(m[1])
    if (m := _AVEC_NAME.match(f"{video}.csv")) is not None:
        return m["cc"].upper()
    return None


def _interleaved(subjects: pd.DataFrame) -> list:
    """Subjects in a fixed order that alternates cultures (each culture sorted by name), so that any
    contiguous block of it takes about the same share of every culture."""
    per_culture = [sorted(part["subject"].unique()) for _, part in
                   subjects.assign(group=subjects["group"].astype(str)).groupby("group", sort=True)]
    order = []
    for k in range(max(map(len, per_culture), default=0)):
        order += [names[k] for names in per_culture if k < len(names)]
    return order


def _shares(n: int, ratio: tuple[int, ...]) -> list[int]:
    """``n`` split in ``ratio`` (largest remainders), each part at least 1 when ``n`` allows it."""
    exact = [n * r / sum(ratio) for r in ratio]
    counts = [int(e) for e in exact]
    for j in sorted(range(len(ratio)), key=lambda j: exact[j] - counts[j], reverse=True)[:n - sum(counts)]:
        counts[j] += 1
    for j in range(len(counts)):  # a tiny corpus: borrow from the largest part so no part is empty
        if counts[j] == 0 and max(counts) > 1:
            counts[counts.index(max(counts))] -= 1
            counts[j] = 1
    return counts


def assign_by_subject(subjects: pd.DataFrame, names: tuple[str, ...], ratio: tuple[int, ...]) -> dict:
    """Subject → split for the rows ``subject, group`` of ``subjects``: the subjects in
    :func:`_interleaved` order, cut into consecutive blocks of sizes ``ratio`` (scaled), one per name.
    Deterministic; every subject in exactly one split; cultures spread over all splits (§4.1)."""
    order = _interleaved(subjects)
    out, start = {}, 0
    for name, count in zip(names, _shares(len(order), ratio)):
        out.update({subject: name for subject in order[start:start + count]})
        start += count
    return out


def paper_split(index: pd.DataFrame) -> dict:
    """Video → split by the paper's protocol (§4.1), from ``index`` rows ``video, subject, group,
    partition`` (the official partition: train / devel / test, or None where unknown).

    With partitions: Devel → test, Test → unused, Train → train + validation by subject in the paper's
    28 : 6 proportion. Without: all subjects → train / validation / test, 28 : 6 : 14. Subjects are
    taken culture by culture in turn (:func:`assign_by_subject`), so every split holds every culture."""
    partition = index["partition"] if "partition" in index else pd.Series(None, index=index.index)
    if partition.notna().all():
        train = index[partition == "train"]
        by_subject = assign_by_subject(train, ("train", "validation"), PAPER_TRAIN_VALIDATION)
        return {video: by_subject[subject] if part == "train" else _PARTITION_SPLIT[part]
                for video, subject, part in zip(index["video"], index["subject"], partition)}
    by_subject = assign_by_subject(index, SPLITS, PAPER_TRAIN_VALIDATION_TEST)
    return dict(zip(index["video"], index["subject"].map(by_subject)))


# AVEC 2019 CES (SEWA's German and Hungarian subjects): official subjects per partition and culture.
AVEC2019_PARTITIONS = {"train": 34, "devel": 14}
AVEC2019_CULTURES = ("DE", "HU")


def avec_index(partitions: dict = AVEC2019_PARTITIONS, cultures=AVEC2019_CULTURES) -> pd.DataFrame:
    """Rows ``video, subject, group, partition`` named as AVEC names its files (``Train_DE_01``), one
    subject per video, ``partitions[p]`` per culture: the input :func:`paper_split` sees (§4.1)."""
    names = [(f"{p.capitalize()}_{cc}_{i:02d}", cc, p) for p, n in partitions.items() for cc in cultures
             for i in range(1, n + 1)]
    return pd.DataFrame({"video": [v for v, _, _ in names], "subject": [v for v, _, _ in names],
                         "group": [cc for _, cc, _ in names], "partition": [p for _, _, p in names]})


def split_source(root, split_file=None) -> str:
    """Where :func:`load_sewa` takes the splits of ``root`` from, in words (§4.1)."""
    if split_file is not None:
        return f"the split file {split_file}"
    if (Path(root) / "splits.csv").exists():
        return f"{Path(root) / 'splits.csv'} (written with the corpus)"
    return ("the paper's protocol from the AVEC partitions: Devel -> test, Train -> train + validation "
            "by subject, 28 : 6")


def read_partition_list(path) -> dict:
    """SEWA's (or AVEC's) partition list: lines ``<video> <Train|Devel|Test>`` (comma, semicolon or
    space separated; a header line is allowed) → video → ``"train" | "devel" | "test"`` (§4.1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: partition list not found")
    out = {}
    lines = _text.read_lines(path)
    for k, line in lines:
        fields = [f.strip().strip("'\"") for f in re.split(r"[,;\s]+", line.strip()) if f.strip()]
        if len(fields) < 2:
            raise ValueError(f"{path}: line {k}: expected '<video> <partition>', got {line!r}")
        video, part = fields[0], fields[1].lower()
        if part == "development":
            part = "devel"
        if part not in ("train", "devel", "test"):
            if k == lines[0][0]:
                continue  # a header
            raise ValueError(f"{path}: line {k}: partition {fields[1]!r} is not Train, Devel or Test")
        out[video] = part
    if not out:
        raise ValueError(f"{path}: no '<video> <partition>' lines")
    return out


def write_paper_split(root, out, partition_list=None) -> pd.DataFrame:
    """Write the paper's protocol (§4.1) for a raw SEWA-DB copy at ``root`` as a split file ``out``
    (CSV ``video,split``, written atomically) and return it with each video's subject and group.

    With ``partition_list`` (:func:`read_partition_list`), or AVEC file names, the official partitions
    are used (Devel → test, Train → train + validation 28 : 6 by subject, Test → unused); without
    them the subjects are split 28 : 6 : 14 by subject and culture. Every labelled video under ``root`` must be listed."""
    index = load_sewa(root, require_splits=False)
    if partition_list is not None:
        partitions = read_partition_list(partition_list)
        missing = sorted(set(index["video"]) - set(partitions))
        if missing:
            raise ValueError(f"{partition_list}: videos {missing[:5]} under {root} are not listed")
        index["partition"] = index["video"].map(partitions)
    table = index.assign(split=index["video"].map(paper_split(index)))
    _check_splits(table, Path(root), out)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    table[["video", "split"]].to_csv(tmp, index=False)
    tmp.replace(out)
    return table[["video", "subject", "group", "split"]]


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
