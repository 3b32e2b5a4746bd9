"""``emorec predict`` after ``make book``: the book's best model per label with no --checkpoint, the
data each model was trained on (printed, in settings.json, a warning for synthetic faces), and videos
in which no face is found (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import real_media
from emorec import predict
from emorec.experiments.evaluation import book_checkpoints
from emorec.experiments.temporal import save_cascade
from emorec.models import CNNLSTM, I3D
from emorec.train import checkpoint as ckpt
from face_video import write_face_video

SYNTHETIC = {"data": "synthetic SEWA-like corpus (profile cpu, seed 0)", "synthetic": True, "profile": "cpu",
             "seed": 0, "commit": "0123abc"}
WARNING = "was trained on synthetic faces only; its output on real faces is not a measurement of their emotion"


def _folder(root: Path, name: str, seq_len: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": {"seq_len": seq_len, "fps": 10, "input_size": [32, 32]}}))
    return folder


def _row(folder: Path, valence: float, arousal: float) -> dict:
    return {"folder": str(folder), "val_pp_valence_CCC": valence, "val_pp_arousal_CCC": arousal}


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A built book in a temporary artefact root: the cascade is better on validation for valence
    (and records synthetic training data), the i3D for arousal (and records nothing, as older files)."""
    root = tmp_path_factory.mktemp("book")
    art = root / "artefacts"
    lstm = _folder(art / "cpu" / "table2", "a1", seq_len=4)
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32],
                 lstm / "model.pt", SYNTHETIC)
    inflated = _folder(art / "cpu" / "i3d", "b2", seq_len=4)
    model = I3D(backbone="vgg11", width=0.125, seed=1, preset="C2")
    ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config)},
              inflated / "best.pt")
    summaries = art / "cpu" / "summaries"
    summaries.mkdir()
    for name, folder, scores in (("cnn_lstm", lstm, (0.5, 0.1)), ("i3d", inflated, (0.2, 0.4))):
        (summaries / f"{name}.json").write_text(json.dumps(
            {"data": SYNTHETIC["data"], "seed": 0, "best": {"valence": _row(folder, *scores),
                                                            "arousal": _row(folder, *scores)}}))
    video = write_face_video(root / "clip.avi", 120)
    return {"root": root, "art": art, "lstm": lstm / "model.pt", "i3d": inflated / "best.pt", "video": video}


def emorec(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emorec.cli", *map(str, argv)], capture_output=True, text=True)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_the_book_checkpoints_are_chosen_per_label_on_validation(book):
    assert book_checkpoints(book["art"], "cpu") == {"valence": book["lstm"], "arousal": book["i3d"]}
    assert book_checkpoints(book["art"], "cpu", "i3d") == {"valence": book["i3d"], "arousal": book["i3d"]}
    assert book_checkpoints(book["art"], "cpu", "cnn_lstm") == {"valence": book["lstm"], "arousal": book["lstm"]}
    with pytest.raises(ValueError, match="unknown model 'lstm'"):
        book_checkpoints(book["art"], "cpu", "lstm")


def test_no_build_says_to_make_the_book(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run `make book PROFILE=smoke` first"):
        book_checkpoints(tmp_path, "smoke")


def test_a_summary_naming_a_removed_checkpoint_says_to_rebuild(book, tmp_path):
    art = tmp_path / "artefacts"
    (art / "cpu" / "summaries").mkdir(parents=True)
    for name in ("cnn_lstm", "i3d"):
        summary = json.loads((book["art"] / "cpu" / "summaries" / f"{name}.json").read_text())
        summary["best"]["valence"]["folder"] = str(tmp_path / "gone")
        (art / "cpu" / "summaries" / f"{name}.json").write_text(json.dumps(summary))
    with pytest.raises(FileNotFoundError, match=r"gone/model.pt: the valence checkpoint .* run `make book` again"):
        book_checkpoints(art, "cpu")


def test_predict_without_a_checkpoint_uses_each_labels_model_and_says_what_it_was_trained_on(book):
    out, cache = book["root"] / "out", book["root"] / "cache"
    proc = emorec("predict", book["video"], "--out", out, "--artefact-root", book["art"], "--cache", cache)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"valence: cnn_lstm {book['lstm']}; training data: {SYNTHETIC['data']} "
                        f"(synthetic faces only; commit 0123abc)")
    assert lines[1] == f"arousal: i3d {book['i3d']}; training data: not recorded"
    assert warnings(proc.stderr) == [f"warning: cnn_lstm {book['lstm']} {WARNING}"]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["checkpoint"] == {"valence": str(book["lstm"]), "arousal": str(book["i3d"])}
    assert settings["models"]["valence"]["trained_on"] == SYNTHETIC
    assert settings["models"]["arousal"]["trained_on"] is None
    assert settings["models"]["arousal"]["training_data"] == "not recorded"
    # each label's column is its own model's, over faces extracted once (the cache holds one entry)
    table = pd.read_csv(out / "predictions.csv")
    assert len(list(cache.iterdir())) == 1
    for label, checkpoint in (("valence", book["lstm"]), ("arousal", book["i3d"])):
        alone = predict.run_predict(book["video"], checkpoint, cache_dir=cache).frames
        np.testing.assert_allclose(table[label], alone[label], rtol=1e-5, atol=1e-6)
    clips = pd.read_csv(out / "clips.csv")
    assert set(clips["labels"]) == {"valence", "arousal"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".emorec.json", "predictions.csv", "clips.csv", "timeseries.png", "circumplex.png", "settings.json"])


def test_model_option_picks_one_book_model_or_a_path(book, tmp_path):
    proc = emorec("predict", book["video"], "--out", tmp_path / "a", "--artefact-root", book["art"], "--model", "i3d")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"valence and arousal: i3d {book['i3d']}; training data: not recorded"
    assert warnings(proc.stderr) == []
    settings = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert settings["checkpoint"] == str(book["i3d"]) and settings["model"] == "i3d"
    both = emorec("predict", book["video"], "--out", tmp_path / "b", "--model", book["lstm"], "--checkpoint",
                  book["lstm"])
    assert both.returncode == 1 and both.stderr.strip().splitlines()[-1] == (
        "emorec predict: error: give either --checkpoint or --model, not both")


def test_predict_without_a_build_says_to_run_make_book(book, tmp_path):
    out = tmp_path / "out"
    proc = emorec("predict", book["video"], "--out", out, "--artefact-root", tmp_path / "none")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"emorec predict: error: no book build of profile 'cpu' under {tmp_path / 'none'} (chapter 04_4_cnn_lstm's "
        f"summary is missing): run `make book` first, or give --checkpoint"]
    assert not out.exists()


def test_a_video_without_a_face_fails_in_one_line_or_gives_an_empty_table(book, tmp_path):
    no_face = real_media.path("no_face.mp4")
    out = tmp_path / "out"
    proc = emorec("predict", no_face, "--out", out, "--checkpoint", book["lstm"])
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1].split("\r")[-1].strip()
    prefix = f"emorec predict: error: {no_face}: no face found in any of "
    assert last.startswith(prefix) and last.endswith(" sampled frames"), last
    n_sampled = int(last[len(prefix):].split()[0])
    assert n_sampled > 30 and not out.exists() and not list(tmp_path.iterdir())
    proc = emorec("predict", no_face, "--out", out, "--checkpoint", book["lstm"], "--allow-no-face")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == n_sampled and not table["face"].any()
    assert table[["valence", "arousal"]].isna().all().all()
    # the time series says there is no face; a trajectory without values is not drawn
    assert (out / "timeseries.png").is_file() and not (out / "circumplex.png").exists()
    assert json.loads((out / "settings.json").read_text())["frames_with_value"] == 0.0


def test_a_checkpoint_records_plain_training_data_the_safe_loader_reads(tmp_path):
    path = tmp_path / "model.pt"
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32], path,
                 SYNTHETIC)
    assert torch.load(path, weights_only=True)["trained_on"] == SYNTHETIC
    predictor = predict.load_predictor(path)
    assert predictor.synthetic_warning() == f"warning: cnn_lstm {path} {WARNING}"
