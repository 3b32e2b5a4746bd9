"""The paper's split protocol (§4.1): AVEC's partitions, raw SEWA-DB through `emorec split`, and split
errors raised when the corpus is indexed, never at training time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emorec import cli
from emorec.data import sewa
from emorec.data.video import write_video

FIX = Path(__file__).parent / "fixtures"
SEWA_V = FIX / "sewa" / "SEW1101" / "SEW1101_Valence_V_Aligned.csv"
SEWA_A = FIX / "sewa" / "SEW1101" / "SEW1101_Arousal_V_Aligned.csv"
AVEC = FIX / "avec" / "labels" / "Devel_DE_01.csv"


def avec_index(n_train: int, n_devel: int) -> pd.DataFrame:
    names = [f"{p}_{c}_{i:02d}" for p, n in (("Train", n_train), ("Devel", n_devel)) for c in ("DE", "HU")
             for i in range(1, n + 1)]
    return pd.DataFrame({"video": names, "subject": names, "group": [n.split("_")[1] for n in names],
                         "partition": [n.split("_")[0].lower() for n in names]})


def test_avec_protocol_devel_is_test_and_train_is_carved_28_to_6_by_subject():
    index = avec_index(34, 14)  # AVEC 2019's official counts per culture
    split = sewa.paper_split(index)
    counts = pd.Series(split).value_counts()
    assert counts.to_dict() == {"train": 56, "test": 28, "validation": 12}  # 28:6 of 68, both cultures
    assert all(split[v] == "test" for v in index["video"] if v.startswith("Devel"))
    validation = sorted(v for v, s in split.items() if s == "validation")
    assert validation == [f"Train_{c}_{i}" for c in ("DE", "HU") for i in range(29, 35)]
    shuffled = index.sample(frac=1.0, random_state=3)
    assert sewa.paper_split(shuffled) == split  # deterministic, whatever the order of the files


def test_raw_protocol_without_partitions_is_28_6_14_by_subject_and_culture():
    videos = [f"SEW{c}{s:02d}{m}" for c in (1, 2, 3) for s in range(10, 18) for m in (1, 2)]  # 48 videos
    index = pd.DataFrame({"video": videos, "subject": videos, "group": [int(v[3]) for v in videos]})
    split = pd.Series(sewa.paper_split(index))
    assert split.value_counts().to_dict() == {"train": 28, "test": 14, "validation": 6}
    by_culture = pd.crosstab(index["group"], split[index["video"]].to_numpy())
    assert (by_culture > 0).all().all()  # every culture in every split


def test_a_subject_with_several_videos_stays_in_one_split():
    videos = [f"Train_DE_{i:02d}" for i in range(1, 13)] + ["Devel_DE_01", "Devel_DE_02"]
    index = pd.DataFrame({"video": videos, "subject": [f"S{(i // 2)}" for i in range(len(videos))],
                          "group": "DE", "partition": [v.split("_")[0].lower() for v in videos]})
    split = sewa.paper_split(index)
    per_subject = index.assign(split=index["video"].map(split)).groupby("subject")["split"].nunique()
    assert (per_subject == 1).all()


def _avec_corpus(root: Path, names: list[str]) -> Path:
    (root / "labels").mkdir(parents=True)
    for name in names:
        (root / "labels" / f"{name}.csv").write_text(AVEC.read_text().replace("Devel_DE_01", name))
        write_video(root / f"{name}.avi", np.zeros((3, 48, 64, 3), np.uint8), 50)
    return root


def test_avec_layout_without_split_file_gets_a_validation_split_at_indexing(tmp_path):
    names = [f"Train_DE_{i:02d}" for i in range(1, 7)] + ["Devel_DE_01"]
    df = sewa.load_sewa(_avec_corpus(tmp_path, names))
    assert dict(zip(df["video"], df["split"])) == {**{n: "train" for n in names[:5]}, "Train_DE_06": "validation",
                                                   "Devel_DE_01": "test"}
    assert set(df["group"]) == {"DE"}


def test_avec_layout_too_small_for_a_validation_split_fails_when_indexed(tmp_path):
    root = _avec_corpus(tmp_path, ["Train_DE_01", "Devel_DE_01"])
    with pytest.raises(ValueError, match=rf"{root}: the validation split is empty"):
        sewa.load_sewa(root)


def _raw_corpus(root: Path, videos: list[str]) -> Path:
    for video in videos:
        folder = root / video
        folder.mkdir(parents=True)
        write_video(folder / f"{video}.avi", np.zeros((3, 48, 64, 3), np.uint8), 50)
        for src in (SEWA_V, SEWA_A):
            (folder / src.name.replace("SEW1101", video)).write_bytes(src.read_bytes())
    return root


RAW = [f"SEW{c}{s}" for c in (1, 2) for s in ("101", "102", "111", "112", "121", "122")]


def test_raw_sewa_without_split_file_is_one_error_saying_how_to_make_one(tmp_path):
    root = _raw_corpus(tmp_path / "sewa", RAW)
    with pytest.raises(ValueError, match=r"emorec split .* --out split.csv") as err:
        sewa.load_sewa(root)
    assert str(root) in str(err.value)


def test_empty_split_in_a_split_file_fails_when_indexed_naming_split_and_root(tmp_path):
    root = _raw_corpus(tmp_path / "sewa", RAW[:3])
    split = tmp_path / "split.csv"
    split.write_text("video,split\nSEW1101,train\nSEW1102,test\nSEW1111,unused\n")
    with pytest.raises(ValueError, match=rf"{root}: the validation split is empty \(splits from {split}\)"):
        sewa.load_sewa(root, split_file=split)
    split.write_text("video,split\nSEW1101,train\nSEW1102,test\nSEW1111,validation\n")
    assert len(sewa.load_sewa(root, split_file=split)) == 3
    split.write_text("video,split\nSEW1101,train\nSEW1102,test\n")
    with pytest.raises(ValueError, match="SEW1111.*not in the split file"):
        sewa.load_sewa(root, split_file=split)


def test_emorec_split_writes_the_protocol_the_corpus_then_reads(tmp_path, capsys):
    root = _raw_corpus(tmp_path / "sewa", RAW)
    out = tmp_path / "split.csv"
    assert cli.main(["split", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = pd.read_csv(out)
    assert written["split"].value_counts().to_dict() == {"train": 7, "test": 3, "validation": 2}  # 28:6:14 of 12
    assert "validation" in printed and str(out) in printed
    df = sewa.load_sewa(root, split_file=out)
    assert (df.groupby("split")["group"].nunique() == 2).all()  # both cultures in every split
    # With SEWA's partition list: Devel -> test, Test -> unused, Train carved by subject.
    partitions = tmp_path / "partitions.txt"
    partitions.write_text("Video Partition\n" + "\n".join(
        f"{v} {p}" for v, p in zip(RAW, ["Train"] * 4 + ["Devel", "Test"] + ["Train"] * 4 + ["Devel", "Test"])))
    assert cli.main(["split", str(root), "--out", str(out), "--partitions", str(partitions)]) == 0
    written = dict(pd.read_csv(out).values)
    assert [written[v] for v in ("SEW1121", "SEW1122", "SEW2121", "SEW2122")] == ["test", "unused"] * 2
    assert sorted(v for v, s in written.items() if s == "validation") == ["SEW2112"]  # 28:6 of 8 subjects: 7 and 1
    df = sewa.load_sewa(root, split_file=out)
    assert len(df) == 10 and "SEW1122" not in set(df["video"])  # the unused videos are left out


def test_emorec_split_mistakes_are_one_line_and_leave_no_file(tmp_path, capsys):
    root = _raw_corpus(tmp_path / "sewa", RAW[:4])
    out = tmp_path / "split.csv"
    partitions = tmp_path / "partitions.txt"
    partitions.write_text("SEW1101 Train\nSEW1102 Training\n")
    assert cli.main(["split", str(root), "--out", str(out), "--partitions", str(partitions)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "partitions.txt: line 2" in err[0] and "Training" in err[0]
    partitions.write_text("SEW1101 Train\nSEW1102 Devel\n")
    assert cli.main(["split", str(root), "--out", str(out), "--partitions", str(partitions)]) == 1
    assert "SEW1111" in capsys.readouterr().err  # videos the list does not name
    assert cli.main(["split", str(root / "SEW1101"), "--out", str(out)]) == 1  # 1 video: splits would be empty
    assert "split is empty" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".split.csv*"))


def test_emorec_split_on_an_avec_copy_follows_its_partitions(tmp_path, capsys):
    names = [f"Train_DE_{i:02d}" for i in range(1, 7)] + ["Devel_DE_01"]
    out = tmp_path / "split.csv"
    assert cli.main(["split", str(_avec_corpus(tmp_path / "avec", names)), "--out", str(out)]) == 0
    written = dict(pd.read_csv(out).values)
    assert written["Devel_DE_01"] == "test" and written["Train_DE_06"] == "validation"
