"""Every failure of the ``emorec`` command is one line: usage errors (exit 2, naming the option), files
that are not ours or not readable (exit 1, naming the file), checkpoints never loaded unsafely.

Each case runs the real command in a subprocess and checks its exit status, that stderr holds
exactly one line naming the option or file, and what is left on disk.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import real_media
from emorec import cli
from emorec.data.video import write_video
from emorec.experiments.temporal import save_cascade
from emorec.models import CNNLSTM
from emorec.train.checkpoint import NOT_LOADED


def emorec(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emorec.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------------
# Usage errors: argparse, one line, exit 2, the option named
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, option, value", [
    (["extract", "v.mp4", "--out", "o", "--fps", "nan"], "--fps", "nan"),
    (["extract", "v.mp4", "--out", "o", "--fps", "inf"], "--fps", "inf"),
    (["extract", "v.mp4", "--out", "o", "--fps", "0"], "--fps", "0"),
    (["predict", "v.mp4", "--checkpoint", "c.pt", "--out", "o", "--fps", "-10"], "--fps", "-10"),
    (["predict", "v.mp4", "--checkpoint", "c.pt", "--out", "o", "--min-face-size", "nan"], "--min-face-size", "nan"),
    (["predict", "v.mp4", "--checkpoint", "c.pt", "--out", "o", "--min-face-size", "5"], "--min-face-size", "5"),
    (["predict", "v.mp4", "--checkpoint", "c.pt", "--out", "o", "--overlap", "1"], "--overlap", "1"),
    (["predict", "v.mp4", "--checkpoint", "c.pt", "--out", "o", "--seq-len", "0"], "--seq-len", "0"),
    (["predict", "v.mp4", "--checkpoint", "c.pt", "--out", "o", "--seq-len", "2.5"], "--seq-len", "2.5"),
    (["evaluate", "c.pt", "--n-boot", "0"], "--n-boot", "0"),
    (["extract", "v.mp4", "--out", "o", "--crop-size", "100", "-80"], "--crop-size", "-80"),
    (["synth", "--workers", "0"], "--workers", "0"),
    (["synth", "--seed", "-1"], "--seed", "-1"),
])
def test_out_of_range_options_are_usage_errors(tmp_path, argv, option, value):
    proc = emorec(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line(proc)
    assert line.startswith(f"emorec {argv[0]}: error: argument {option}: '{value}' is not ")
    assert list(tmp_path.iterdir()) == []  # nothing made


@pytest.mark.parametrize("argv, words", [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["extract", "v.mp4"], "the following arguments are required: --out"),
    (["predict", "v.mp4", "--out", "o", "--checkpoint", "c.pt", "--colour"], "unrecognized arguments: --colour"),
])
def test_other_usage_errors_are_one_line(tmp_path, argv, words):
    proc = emorec(*argv, cwd=tmp_path)
    assert proc.returncode == 2 and words in one_line(proc)


def test_exit_statuses_are_documented_in_the_help():
    proc = emorec("--help")
    assert proc.returncode == 0
    assert "exit status:" in proc.stdout and "2    a usage error" in proc.stdout
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert "exit status" in readme.lower() and "usage error" in readme


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.mkdir(), "is a folder, not a configuration file"),
    (lambda p: p.write_bytes("table: table2\nconfig: {name: caf\u00e9}\n".encode("latin-1")), "not UTF-8 text"),
])
def test_train_configuration_files_that_are_not_yaml_text(tmp_path, make, problem):
    path = tmp_path / "config.yaml"
    make(path)
    proc = emorec("train", path)
    assert proc.returncode == 1 and one_line(proc).startswith(f"emorec train: error: {path}: {problem}")


# --------------------------------------------------------------------------------------------------
# Checkpoints that are not ours: one line, never PyTorch's advice to load unsafely
# --------------------------------------------------------------------------------------------------

class _Payload:
    """A pickle that would create a file if it were ever unpickled with the unsafe unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32],
                 folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A readable video: ``predict`` opens the video before the checkpoint."""
    path = tmp_path_factory.mktemp("video") / "v.avi"
    write_video(path, np.zeros((5, 48, 64, 3), np.uint8), fps=10)
    return path


def _bad_checkpoints(root: Path, model: Path) -> dict:
    marker = root / "code-was-run"
    made = {
        "random.pt": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        "empty.pt": lambda p: p.write_bytes(b""),
        "cut.pt": lambda p: p.write_bytes(model.read_bytes()[:5000]),
        "text.pt": lambda p: p.write_text("model weights\n"),
        "pickle.pt": lambda p: p.write_bytes(pickle.dumps(_Payload(marker))),
        "saved-object.pt": lambda p: torch.save({"model": _Payload(marker)}, p),
    }
    for name, make in made.items():
        make(root / name)
    return {name: root / name for name in made} | {"marker": marker}


def in_process(argv, capsys) -> tuple[int, str]:
    """The command run in this process (for variants of a case the subprocess test already covers)."""
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_a_malicious_pickle_is_refused_for_safety(tmp_path, model_dir, video):
    bad = _bad_checkpoints(tmp_path, model_dir / "model.pt")
    proc = emorec("predict", video, "--checkpoint", bad["pickle.pt"], "--out", tmp_path / "out")
    assert proc.returncode == 1
    assert one_line(proc) == f"emorec predict: error: {bad['pickle.pt']}: not an emorec checkpoint: {NOT_LOADED}"
    assert not bad["marker"].exists()  # nothing in the file was run
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["random.pt", "empty.pt", "cut.pt", "text.pt", "saved-object.pt"])
def test_files_that_are_not_checkpoints_are_refused_for_safety(tmp_path, model_dir, video, name, capsys):
    bad = _bad_checkpoints(tmp_path, model_dir / "model.pt")
    code, err = in_process(["predict", video, "--checkpoint", bad[name], "--out", tmp_path / "out"], capsys)
    assert code == 1
    assert err == f"emorec predict: error: {bad[name]}: not an emorec checkpoint: {NOT_LOADED}\n"
    assert not bad["marker"].exists() and not (tmp_path / "out").exists()


def test_a_pytorch_file_that_is_not_ours_says_so(tmp_path, capsys):
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(2, 3)}, foreign)
    code, err = in_process(["evaluate", foreign, "--profile", "smoke"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"emorec evaluate: error: {foreign}: not an emorec checkpoint: a PyTorch "
                          f"file without the entries emorec.train.fit writes")


def test_a_folder_given_as_checkpoint(tmp_path, model_dir, video, capsys):
    code, err = in_process(["predict", video, "--checkpoint", model_dir, "--out", tmp_path / "out"], capsys)
    assert code == 1
    assert err == f"emorec predict: error: {model_dir}: is a folder, not a checkpoint file\n"


@pytest.mark.parametrize("content, problem", [
    (b'{"config": {"seq_len": 4,', "malformed JSON beside the checkpoint"),
    (b'{"config": {"seq_len": 4, "name": "caf\xe9"}}', "malformed JSON beside the checkpoint"),  # Latin-1
    (b"", "malformed JSON beside the checkpoint"),
    (b'["seq_len", 4]', "expected a JSON object beside the checkpoint, found list"),
    (b'{"config": [4]}', "'config' must be a mapping, found list"),
    (b'{"config": {"seq_len": "four"}}', "'config.seq_len' is 'four'"),
    (b'{"config": {"fps": NaN}}', "'config.fps' is nan"),
])
def test_a_malformed_config_json_beside_the_checkpoint_is_named(tmp_path, model_dir, video, content, problem,
                                                                capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.pt").write_bytes((model_dir / "model.pt").read_bytes())
    (folder / "config.json").write_bytes(content)
    argv = ["predict", video, "--checkpoint", folder / "model.pt", "--out", tmp_path / "out"]
    if content == b'{"config": {"seq_len": 4,':  # one variant through the real command
        proc = emorec(*argv)
        code, line = proc.returncode, one_line(proc)
    else:
        code, err = in_process(argv, capsys)
        line = err.removesuffix("\n")
        assert "\n" not in line
    assert code == 1
    assert line.startswith(f"emorec predict: error: {folder / 'config.json'}: ") and problem in line, line
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# A real-data root whose metadata.csv lacks a column
# --------------------------------------------------------------------------------------------------

FIXTURE_SEWA = Path(__file__).parent / "fixtures" / "sewa" / "SEW1101"


def _sewa_root(root: Path) -> Path:
    """Three 1 s recordings with the fixture's labels, one per split."""
    splits = {"SEW1101": "train", "SEW1102": "validation", "SEW1103": "test"}
    for name in splits:
        folder = root / name
        folder.mkdir(parents=True)
        write_video(folder / f"{name}.avi", np.zeros((50, 48, 64, 3), np.uint8), fps=50)
        for label in FIXTURE_SEWA.iterdir():
            (folder / label.name.replace("SEW1101", name)).write_bytes(label.read_bytes())
    (root / "splits.csv").write_text("video,split\n" + "".join(f"{v},{s}\n" for v, s in splits.items()))
    return root


def test_evaluate_on_a_root_whose_metadata_lacks_a_column(tmp_path, model_dir):
    # refused while indexing the root, before any face is extracted (labels: see test_readers.py)
    root = _sewa_root(tmp_path / "sewa")
    bad = root / "metadata.csv"
    bad.write_text("video,subject,split\nSEW1101,S1,train\n")
    proc = emorec("evaluate", model_dir / "model.pt", "--sewa-root", root, "--seq-len", 4, cwd=tmp_path)
    assert proc.returncode == 1
    assert one_line(proc).startswith(f"emorec evaluate: error: {bad}: missing column(s) ['group']")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sewa"]  # no cache started


# --------------------------------------------------------------------------------------------------
# The system's errors: path and reason in one line
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("err, line", [
    (PermissionError(13, "Permission denied", "/data/SEW1101.avi"), "/data/SEW1101.avi: Permission denied"),
    (OSError(28, "No space left on device", "/out/crops.npy"), "/out/crops.npy: No space left on device"),
    (OSError(28, "No space left on device"), "No space left on device"),
    (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "/a -> /b: Invalid cross-device link"),
    (MemoryError(), "out of memory"),
])
def test_system_errors_are_one_line_with_path_and_reason(err, line, monkeypatch, capsys):
    def fail(args):
        raise err

    monkeypatch.setattr(cli, "_synth", fail)
    assert cli.main(["synth"]) == 1
    assert capsys.readouterr().err == f"emorec synth: error: {line}\n"


def test_an_output_path_under_a_file_names_it(tmp_path):
    video = real_media.path("single_face.mp4")
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    proc = emorec("extract", video, "--out", blocker / "cache", "--fps", 2)
    assert proc.returncode == 1
    line = [x for x in proc.stderr.splitlines() if "error" in x]
    assert len(line) == 1 and str(blocker) in line[0] and "Traceback" not in proc.stderr
    assert blocker.read_text() == "mine\n"


# --------------------------------------------------------------------------------------------------
# Videos: a valid real file is valid; a cut one is named as truncated
# --------------------------------------------------------------------------------------------------

def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without the progress bars (lines redrawn with carriage returns and cursor moves)."""
    visible = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.split("\r")[-1]).strip() for line in proc.stderr.split("\n")]
    return [line for line in visible if line and "%|" not in line]


def test_extract_on_a_cut_real_mp4_names_it_truncated(tmp_path):
    data = real_media.path("WolfgangLanger_Pexels.mp4").read_bytes()
    cut = tmp_path / "clip.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])
    proc = emorec("extract", cut, "--out", tmp_path / "cache", "--fps", 2)
    assert proc.returncode == 1
    lines = _error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"emorec extract: error: {cut}: truncated or corrupt video: decoding stopped after")
    assert "partial file" in lines[0]


def test_extract_on_a_valid_mp4_announcing_more_frames_than_it_holds(tmp_path):
    # no_face.mp4 announces 98 frames and holds 95: valid, and without a face (issue 15's message)
    video = real_media.path("no_face.mp4")
    proc = emorec("extract", video, "--out", tmp_path / "cache", "--fps", 2)
    assert proc.returncode == 1
    lines = _error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(f"emorec extract: error: {video}: ") and "no face" in lines[0]
    assert "truncated" not in proc.stderr and "corrupt" not in proc.stderr


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.mkdir(), "is a directory, not a video file"),
    (lambda p: p.write_bytes(b""), "empty file, not a video"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(50_000)), "OpenCV cannot open it as a video"),
])
def test_predict_on_something_that_is_not_a_video(tmp_path, model_dir, make, problem, capsys):
    path = tmp_path / "clip.mp4"
    make(path)
    code, err = in_process(["predict", path, "--checkpoint", model_dir / "model.pt", "--out", tmp_path / "out"],
                           capsys)
    assert code == 1 and err.startswith(f"emorec predict: error: {path}: {problem}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
