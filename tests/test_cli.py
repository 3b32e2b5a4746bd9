"""The ``emorec`` command, tested through its command line: help, user mistakes as one line and a
non-zero exit, and ``predict`` end to end on a short real-face video with a tiny random CNN-LSTM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from emorec import cli
from emorec.data.video import write_video
from emorec.experiments.temporal import save_cascade
from emorec.models import CNNLSTM
from face_video import write_face_video

N_SOURCE, BLANK = 120, range(50, 70)  # 50 fps; sampled at 10 fps: frames 10-13 show no face
COMMANDS = ("synth", "split", "extract", "train", "evaluate", "predict", "book")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    video = write_face_video(root / "clip.avi", N_SOURCE, BLANK)
    checkpoint = root / "model" / "model.pt"
    checkpoint.parent.mkdir()
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32],
                 checkpoint)
    blank = root / "blank.avi"
    write_video(blank, np.full((20, 240, 320, 3), 110, np.uint8), fps=50)
    junk = root / "junk.avi"
    junk.write_bytes(b"this is not a video" * 50)
    corrupt = root / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:5000])
    foreign = root / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    bad_yaml = root / "bad.yaml"
    bad_yaml.write_text("table: [table2\nconfig: {")
    return {"root": root, "video": video, "checkpoint": checkpoint, "blank": blank, "junk": junk,
            "corrupt": corrupt, "foreign": foreign, "bad_yaml": bad_yaml}


def visible_lines(text: str) -> list[str]:
    """What stays on a terminal: progress bars (redrawn with carriage returns, then erased) do not."""
    return [line.split("\r")[-1].strip() for line in text.split("\n") if line.split("\r")[-1].strip()]


def run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: emorec {command}") and len(out.splitlines()) > 5


def test_top_level_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(f"emorec {c}" in out for c in COMMANDS)


@pytest.mark.parametrize("case, argv, words", [
    ("missing video", ["predict", "{root}/nothing.avi", "--checkpoint", "{checkpoint}"], "nothing.avi"),
    ("unreadable video", ["predict", "{junk}", "--checkpoint", "{checkpoint}"], "junk.avi"),
    ("corrupt checkpoint", ["predict", "{video}", "--checkpoint", "{corrupt}"], "corrupt.pt"),
    ("foreign checkpoint", ["predict", "{video}", "--checkpoint", "{foreign}"], "foreign.pt"),
    ("missing checkpoint", ["predict", "{video}", "--checkpoint", "{root}/none.pt"], "none.pt"),
    ("no face", ["predict", "{blank}", "--checkpoint", "{checkpoint}", "--seq-len", "4"], "no face"),
    ("no sequence length", ["predict", "{video}", "--checkpoint", "{checkpoint}"], "--seq-len"),
    ("bad yaml", ["train", "{bad_yaml}"], "not valid YAML"),
    ("unknown grid", ["train", "table9:cpu:0"], "table9"),
    ("evaluate corrupt", ["evaluate", "{corrupt}", "--profile", "smoke"], "corrupt.pt"),
    ("extract missing", ["extract", "{root}/nothing", "--out", "{root}/cache"], "nothing"),
])
def test_user_mistakes_give_one_line_and_a_non_zero_exit(files, capsys, case, argv, words):
    out_dir = files["root"] / f"out-{case.replace(' ', '-')}"
    argv = [a.format(**files) for a in argv] + (["--out", out_dir] if argv[0] == "predict" else [])
    code, _, err = run(argv, capsys)
    assert code != 0, case
    lines = visible_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"emorec {argv[0]}: error:") and words in lines[0] and "Traceback" not in err
    assert not out_dir.exists()  # nothing half-written


def test_the_installed_entry_point_prints_no_traceback(files):
    proc = subprocess.run([sys.executable, "-m", "emorec.cli", "predict", str(files["junk"]), "--checkpoint",
                           str(files["checkpoint"]), "--out", str(files["root"] / "never")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"emorec predict: error: {files['junk']}: OpenCV cannot open it as "
                                                f"a video: not a video, or truncated or corrupt"]


def test_predict_writes_the_frame_table_figures_and_annotated_video(files, capsys):
    out, cache = files["root"] / "prediction", files["root"] / "cache"
    code, stdout, err = run(["predict", files["video"], "--checkpoint", files["checkpoint"], "--out", out,
                             "--seq-len", 4, "--mp4", "--cache", cache], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["predictions.csv", "clips.csv", "timeseries.png", "circumplex.png", "settings.json", "annotated.mp4",
         ".emorec.json"])
    table = pd.read_csv(out / "predictions.csv")
    # one row per frame sampled at 10 fps from the 50 fps video, in order
    np.testing.assert_array_equal(table["frame"], np.arange(N_SOURCE // 5))
    np.testing.assert_array_equal(table["source_frame"], 5 * np.arange(N_SOURCE // 5))
    np.testing.assert_allclose(table["time"], table["frame"] / 10)
    no_face = table["source_frame"].isin(BLANK)
    assert (table["face"] == ~no_face).all()
    assert table.loc[no_face, ["valence", "arousal", "x1"]].isna().all().all()  # marked, not invented
    assert table.loc[~no_face, ["valence", "arousal"]].notna().all().all()
    for name in ("timeseries.png", "circumplex.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capture = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(table) and capture.get(cv2.CAP_PROP_FPS) == 10
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (240, 320, 3)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["seq_len"] == 4 and settings["model"] == "cnn_lstm" and settings["postprocess"] is None
    assert "x real time" in stdout
    # extract reuses the cache predict filled (same detector, rate and crop size)
    code, stdout, err = run(["extract", files["video"], "--out", cache], capsys)
    assert code == 0, err
    assert f"{int((~no_face).sum())} faces" in stdout


def test_predict_imports_only_what_it_needs(files, tmp_path):
    """No torchvision (1.4 s of imports), facenet-pytorch, scipy.ndimage or pyplot on the predict path:
    MTCNN's nets are emorec.data.mtcnn's, VGG's topology is built from its configuration list."""
    code = ("import sys; from emorec import cli; "
            f"code = cli.main(['predict', {str(files['video'])!r}, '--checkpoint', {str(files['checkpoint'])!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--seq-len', '4']); "
            "heavy = ('torchvision', 'facenet_pytorch', 'scipy.ndimage', 'matplotlib.pyplot', 'seaborn'); "
            "print(code, sorted(m for m in sys.modules if m.startswith(heavy)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stderr


def test_train_lists_a_grid_and_shows_a_configuration_that_reads_back(files, capsys):
    code, out, _ = run(["train", "table2:smoke"], capsys)
    assert code == 0 and "table2:smoke:<index>" in out
    code, out, _ = run(["train", "table2:smoke:0", "--show"], capsys)
    assert code == 0
    shown = yaml.safe_load(out)
    path = files["root"] / "config.yaml"
    path.write_text(out)
    table, profile, config, grid = cli.resolve_configuration(str(path), None)
    assert (table, profile) == ("table2", "smoke") and config == shown["config"] == grid[0]
    del shown["config"]["seq_len"]
    path.write_text(yaml.safe_dump(shown))
    code, _, err = run(["train", path], capsys)
    assert code == 1 and "lacks ['seq_len']" in err
