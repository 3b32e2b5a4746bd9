"""Issue 10 (item 7): cross-corpus evaluation on AFEW-VA (folders of frames) and Aff-Wild2 (per-frame
labels at the video's rate, -5 excluded), on real-face sequences written in those layouts. The labels
are invented (plausible values in each corpus' range), and said to be."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from emorec.data import faces
from emorec.experiments import crosscorpus as cc
from emorec.experiments.temporal import save_cascade
from emorec.models import CNNLSTM

from face_video import write_face_frames, write_face_video

N_FRAMES = 75


def invented_afewva(root, clips=("001", "002")):
    """AFEW-VA layout: <NNN>/<NNN>.json and the clip's PNG frames; integer labels in -10..10 (invented)."""
    for k, clip in enumerate(clips):
        write_face_frames(root / clip, N_FRAMES)
        frames = {f"{i:05d}": {"valence": int(round(6 * np.sin(i / 9 + k))), "arousal": int(round(4 * np.cos(i / 7))),
                               "landmarks": [[100.0, 80.0]] * 68} for i in range(N_FRAMES)}
        (root / clip / f"{clip}.json").write_text(json.dumps({"actor": f"actor {k}", "frames": frames,
                                                              "video_id": clip}))
    return root


def invented_affwild2(root, invalid=range(10, 25)):
    """Aff-Wild2 layout: a 30 fps video, one label row per frame (-5 on ``invalid`` frames), and a
    two-subject file that must be skipped."""
    (root / "videos").mkdir(parents=True)
    write_face_video(root / "videos" / "vid1.avi", N_FRAMES, fps=30.0)
    folder = root / "VA_Estimation_Challenge" / cc.AFFWILD2_SET
    folder.mkdir(parents=True)
    rows = [(-5, -5) if i in invalid else (round(0.5 * np.sin(i / 11), 3), round(0.3 * np.cos(i / 5), 3))
            for i in range(N_FRAMES)]
    (folder / "vid1.txt").write_text("valence,arousal\n" + "".join(f"{v},{a}\n" for v, a in rows))
    (folder / "vid1_left.txt").write_text("valence,arousal\n" + "0.1,0.1\n" * N_FRAMES)
    return root


def constant_model(folder, value=(0.3, -0.2)):
    """A CNN-LSTM checkpoint (with the settings a Table 2 run records) that predicts ``value`` for every
    clip: its last layer's weights are zero. Its scores can then be computed by hand."""
    model = CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=1)
    last = [m for m in model.temporal.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(value))
    folder.mkdir(parents=True)
    save_cascade(model, (32, 32), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps({"table": "table2", "config": {"seq_len": 4, "fps": 10}}))
    return folder / "model.pt"


def test_afewva_frame_folders_are_read_at_the_stated_rate(tmp_path):
    corpus = cc.read_afewva(invented_afewva(tmp_path / "afewva"))
    assert [s.name for s in corpus.sequences] == ["001", "002"] and corpus.description.startswith("AFEW-VA at ")
    seq = corpus.sequences[0]
    assert seq.frame_rate == cc.AFEWVA_FRAME_RATE
    assert np.allclose(seq.label_times, np.arange(N_FRAMES) / 25.0)
    assert seq.labels[9, 0] == pytest.approx(round(6 * np.sin(1)) / 10)  # -10..10 scaled to [-1, 1]
    track = faces.extract_video(seq.source, tmp_path / "faces" / "001", fps=10, frame_rate=seq.frame_rate,
                                progress=False)
    assert np.allclose(track.frames["time"], np.arange(len(track.frames)) / 10) and len(track.frames) == 30
    assert track.keep_rate == 1.0  # a real face in every frame
    with pytest.raises(ValueError, match="is a directory"):
        faces.extract_video(seq.source, tmp_path / "faces" / "x", fps=10, progress=False)  # no rate stated


def test_affwild2_excludes_invalid_rows_and_skips_two_subject_files(tmp_path):
    corpus = cc.read_affwild2(invented_affwild2(tmp_path / "affwild2"))
    assert [s.name for s in corpus.sequences] == ["vid1"] and "vid1_left" in corpus.skipped
    seq = corpus.sequences[0]
    assert len(seq.labels) == N_FRAMES - 15 and np.abs(seq.labels).max() <= 1
    assert np.allclose(seq.label_times[:11], np.r_[np.arange(10), 25] / 30.0)  # the video's own rate


def test_cross_corpus_scores_are_the_metrics_of_the_valid_labels(tmp_path):
    ckpt = constant_model(tmp_path / "run")
    for corpus in (cc.read_afewva(invented_afewva(tmp_path / "afewva")),
                   cc.read_affwild2(invented_affwild2(tmp_path / "affwild2"))):
        pooled, per_video = cc.evaluate_cross_corpus(corpus, {"valence": ckpt, "arousal": ckpt},
                                                     cc.cache_root_for(tmp_path / "data", corpus), n_boot=50)
        pooled = pooled.set_index("label")
        labels = np.concatenate([s.labels for s in corpus.sequences])
        for d, (label, value) in enumerate(zip(("valence", "arousal"), (0.3, -0.2))):
            # a constant prediction: MAE by hand over the valid labels only (a -5 row would add ~5)
            assert pooled.loc[label, "MAE"] == pytest.approx(np.abs(labels[:, d] - value).mean(), abs=1e-5)
            assert pooled.loc[label, "CCC"] == pytest.approx(0.0, abs=1e-6)
        assert (pooled["videos"] == len(corpus.sequences)).all() and (pooled["label coverage"] > 0.9).all()
        assert len(per_video) == 2 * len(corpus.sequences)
    entries = list((tmp_path / "data" / "cross-afew-va" / "faces" / "10fps").glob("001-*/crops.npy"))
    assert len(entries) == 1  # the clip's entry, <name>-<hash of its frames>


def test_missing_roots_and_empty_layouts_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        cc.read_afewva(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        cc.read_afewva(tmp_path / "empty")
    with pytest.raises(ValueError, match="VA_Estimation_Challenge"):
        cc.read_affwild2(tmp_path / "empty")
