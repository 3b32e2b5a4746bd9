"""Chapter summaries written before ``emorec run`` made everything (train_missing: false): the readers
(chapters 5 and 6 through read_summary, ``emorec predict`` through book_checkpoints) say what is not run
yet, in one line, instead of failing on a missing part (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emorec.experiments import NotRunYet, read_summary, write_summary
from emorec.experiments.cache import summary_gaps
from emorec.experiments.evaluation import book_checkpoints
from face_video import write_face_video

RUN = "emorec run table2 --profile paper"


def _scores(folder) -> dict:
    return {"folder": str(folder), "val_pp_valence_CCC": 0.4, "val_pp_arousal_CCC": 0.3, "valence_CCC": 0.3,
            "arousal_CCC": 0.2}


def cnn_lstm_summary(folder, n_seeds: int = 2, baseline: bool = True) -> dict:
    """What chapter 4.4 writes: the best cascade and the baseline per label, with their seed runs."""
    best = {label: _scores(folder) for label in ("valence", "arousal")}
    summary = {"data": "synthetic", "seed": 0, "init": "RAF-DB", "best": best, "n_seeds": n_seeds,
               "best_seeds": {label: [best[label]] * n_seeds for label in best}, "baseline": {}, "baseline_seeds": {}}
    if baseline:
        summary["baseline"] = dict(best)
        summary["baseline_seeds"] = dict(summary["best_seeds"])
    return summary


def test_a_complete_summary_is_written_as_given(tmp_path):
    summary = cnn_lstm_summary(tmp_path)
    assert summary_gaps(summary, ("best", "baseline")) == []
    write_summary(tmp_path, "paper", "cnn_lstm", summary, parts=("best", "baseline"), run=RUN)
    assert read_summary(tmp_path, "paper", "cnn_lstm", "04_4_cnn_lstm") == summary


def test_gaps_name_each_missing_label_and_seed_run(tmp_path):
    summary = cnn_lstm_summary(tmp_path, baseline=False)
    summary["best_seeds"]["arousal"] = summary["best_seeds"]["arousal"][:1]
    assert summary_gaps(summary, ("best", "baseline")) == [
        "best arousal: 1 of 2 seeds", "baseline valence", "baseline arousal"]


@pytest.fixture
def without_baseline(tmp_path):
    """A store where chapter 4.4 ran (train_missing: false) after `emorec run` trained the grid but not
    the baseline; chapter 4.5's summary is complete."""
    art = tmp_path / "artefacts"
    model = art / "paper" / "table2" / "k1" / "model.pt"
    model.parent.mkdir(parents=True)
    for name in ("model.pt", "best.pt"):  # the cascade's and the i3D's weights file
        (model.parent / name).write_bytes(b"weights")
    write_summary(art, "paper", "cnn_lstm", cnn_lstm_summary(model.parent, baseline=False),
                  parts=("best", "baseline"), run=RUN)
    write_summary(art, "paper", "i3d", cnn_lstm_summary(model.parent, baseline=False), parts=("best",),
                  run="emorec run i3d --profile paper")
    return art


def test_chapters_5_and_6_read_not_run_yet_instead_of_a_summary_without_its_baseline(without_baseline):
    path = without_baseline / "paper" / "summaries" / "cnn_lstm.json"
    assert "baseline" not in json.loads(path.read_text())  # no part of the incomplete results is left to misread
    with pytest.raises(NotRunYet) as err:  # what chapters 5 and 6 call first
        read_summary(without_baseline, "paper", "cnn_lstm", "04_4_cnn_lstm")
    assert str(err.value) == (f"{path}: chapter 04_4_cnn_lstm's results are incomplete, missing baseline valence; "
                              f"baseline arousal: not run yet — `{RUN}`")
    assert read_summary(without_baseline, "paper", "i3d", "04_5_i3d")["best"]


def test_predict_says_what_is_not_run_yet_in_one_line(without_baseline, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"not run yet — `{RUN}`; or give --checkpoint"):
        book_checkpoints(without_baseline, "paper")
    assert book_checkpoints(without_baseline, "paper", "i3d")  # the complete chapter's model still serves
    video = write_face_video(tmp_path / "clip.avi", 20)
    proc = subprocess.run([sys.executable, "-m", "emorec.cli", "predict", str(video), "--profile", "paper",
                           "--artefact-root", str(without_baseline), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emorec predict: error: ") and f"not run yet — `{RUN}`" in lines[0]
    assert not (tmp_path / "out").exists()
