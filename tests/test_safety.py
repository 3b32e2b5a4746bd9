"""What a hostile but realistic user does to ``emorec extract`` and ``emorec predict`` (issue 14):
point --out/--cache at dataset or home folders, run two at once, cut cache files, reuse --out,
send SIGTERM or kill -9. Each case checks the exit status, the single error line naming the path and
what is left on disk; concurrency and signals use real processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from emorec import cli, storage
from emorec.data import faces, video
from emorec.experiments.temporal import save_cascade
from emorec.models import CNNLSTM
from face_video import write_face_video

N_SOURCE = 100  # 2 s at 50 fps: 20 frames at 10 fps
OUTPUTS = [".emorec.json", "circumplex.png", "clips.csv", "predictions.csv", "settings.json", "timeseries.png"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    clip = write_face_video(root / "clip.avi", N_SOURCE)
    (root / "other").mkdir()
    other = write_face_video(root / "other" / "clip.avi", 160, blank=range(0, 40))  # same name, other video
    checkpoint = root / "model" / "model.pt"
    checkpoint.parent.mkdir()
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32],
                 checkpoint)
    return {"root": root, "clip": clip, "other": other, "checkpoint": checkpoint}


def run(argv, capsys) -> tuple[int, str, list[str]]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, visible_lines(err)


def visible_lines(text: str) -> list[str]:
    """What stays on a terminal: progress bars (redrawn with carriage returns, then erased) do not."""
    return [line.split("\r")[-1].strip() for line in text.split("\n") if line.split("\r")[-1].strip()]


def predict_args(files, video_path, out, *extra):
    return ["predict", video_path, "--checkpoint", files["checkpoint"], "--seq-len", 4, "--out", out, *extra]


def entry_of(root: Path, video_path: Path) -> Path:
    return root / f"{video_path.stem}-{hashlib.sha1(video_path.read_bytes()).hexdigest()[:12]}"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries, staging folders or lock files anywhere under ``folder`` (markers aside)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name != storage.MARKER)


# --------------------------------------------------------------------------------------------------
# 1. Never delete what emorec did not make
# --------------------------------------------------------------------------------------------------

def test_extract_into_a_dataset_root_deletes_nothing(files, tmp_path, capsys):
    root = tmp_path / "SEWA"
    (root / "SEW3101").mkdir(parents=True)
    source = root / "SEW3101" / "SEW3101.avi"
    source.write_bytes(files["clip"].read_bytes())
    (root / "SEW3101" / "SEW3101_valence.csv").write_text("time,value\n0.0,0.1\n")
    (root / "SEW3101" / "SEW3101_arousal.csv").write_text("time,value\n0.0,0.2\n")
    before = snapshot(root)
    code, out, err = run(["extract", source, "--out", root], capsys)
    assert code == 0, err
    after = snapshot(root)
    assert {k: after[k] for k in before} == before  # the video and both label files, byte for byte
    entry = entry_of(root, source)
    assert f"-> {entry}" in out and faces.load_track(entry).meta["n_frames"] == N_SOURCE // 5
    assert sorted(p.name for p in root.iterdir()) == ["SEW3101", entry.name]


def test_extract_refuses_a_users_folder_named_like_the_entry(files, tmp_path, capsys):
    entry = entry_of(tmp_path, files["clip"])
    entry.mkdir()
    (entry / "thesis.txt").write_text("years of work")
    code, _, err = run(["extract", files["clip"], "--out", tmp_path], capsys)
    assert code == 1 and err == [f"emorec extract: error: {entry}: exists and is not an emorec face-crop cache "
                                 f"entry (it holds thesis.txt); choose another cache folder"]
    assert snapshot(entry) == {"thesis.txt": b"years of work"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.name]


def test_predict_keeps_the_users_files_in_the_cache_folder(files, tmp_path, capsys):
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    (home / "thesis.txt").write_text("years of work")
    (home / "photos" / "p.jpg").write_bytes(b"\xff\xd8\xff")
    before = snapshot(home)
    code, _, err = run(predict_args(files, files["clip"], tmp_path / "out", "--cache", home), capsys)
    assert code == 0, err
    after = snapshot(home)
    assert {k: after[k] for k in before} == before
    assert sorted(p.name for p in home.iterdir()) == [entry_of(home, files["clip"]).name, "photos", "thesis.txt"]


def test_predict_refuses_an_out_holding_other_files_before_any_work(files, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    code, _, err = run(predict_args(files, files["clip"], out, "--cache", tmp_path / "cache"), capsys)
    assert code == 1 and err == [f"emorec predict: error: {out}: exists and is not an emorec predict output "
                                 f"folder (it holds thesis.txt); choose another --out"]
    assert snapshot(out) == {"thesis.txt": b"years of work"}
    assert not (tmp_path / "cache").exists()  # refused before the faces were extracted


def test_predict_refuses_an_out_that_holds_its_own_input(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(predict_args(files, files["clip"], out), capsys)[0] == 0
    inside = out / "clip.avi"
    inside.write_bytes(files["clip"].read_bytes())
    code, _, err = run(predict_args(files, inside, out), capsys)
    assert code == 1 and len(err) == 1 and f"{out}: exists and is not an emorec" in err[0] and "clip.avi" in err[0]
    assert inside.read_bytes() == files["clip"].read_bytes()


def test_predict_refuses_a_cache_inside_out_and_a_linked_out(files, tmp_path, capsys):
    code, _, err = run(predict_args(files, files["clip"], tmp_path / "out", "--cache", tmp_path / "out" / "c"),
                       capsys)
    assert code == 1 and len(err) == 1 and "the crop cache lies inside --out" in err[0]
    assert not (tmp_path / "out").exists()
    users = tmp_path / "users"
    users.mkdir()
    (users / "keep.txt").write_text("x")
    (tmp_path / "link").symlink_to(users)
    code, _, err = run(predict_args(files, files["clip"], tmp_path / "link"), capsys)
    assert code == 1 and err == [f"emorec predict: error: {tmp_path / 'link'}: exists and is a link, not a folder; "
                                 f"choose another --out"]
    assert snapshot(users) == {"keep.txt": b"x"}


# --------------------------------------------------------------------------------------------------
# 3. Destinations checked before any work
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["extract", "predict-out", "predict-cache"])
@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable"])
def test_a_destination_emorec_cannot_write_is_one_line(files, tmp_path, capsys, command, where):
    (tmp_path / "file").write_text("mine")
    # /proc refuses new files even to root, which chmod would not stop (the tests may run as root)
    bad = {"a file": tmp_path / "file", "under a file": tmp_path / "file" / "sub",
           "unwritable": Path("/proc/emorec-test")}[where]
    argv = {"extract": ["extract", files["clip"], "--out", bad],
            "predict-out": predict_args(files, files["clip"], bad),
            "predict-cache": predict_args(files, files["clip"], tmp_path / "out", "--cache", bad)}[command]
    code, _, err = run(argv, capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith(f"emorec {argv[0]}: error: {bad}:"), err
    assert "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] and (tmp_path / "file").read_text() == "mine"


def test_not_enough_free_space_is_found_before_any_work(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(storage, "free_bytes", lambda folder: 50_000)
    code, _, err = run(["extract", files["clip"], "--out", tmp_path / "cache"], capsys)
    assert code == 1 and len(err) == 1 and "not enough free space (face-crop cache)" in err[0]
    assert str(entry_of(tmp_path / "cache", files["clip"])) in err[0]
    code, _, err = run(predict_args(files, files["clip"], tmp_path / "out", "--mp4"), capsys)
    assert code == 1 and err[0].startswith(f"emorec predict: error: {tmp_path / 'out'}: not enough free space "
                                           f"(--out)") and len(err) == 1
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# 2. Locks and verified entries
# --------------------------------------------------------------------------------------------------

HELPER = textwrap.dedent("""
    # Runs `emorec` with one library step slowed (so a test can signal it there) or with MTCNN calls counted.
    import sys, time
    from pathlib import Path
    from emorec import cli, storage
    from emorec.predict import output
    from emorec.data import faces

    step, flag, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    calls = []
    if step == "count":
        detect = faces.FaceExtractor.all_faces  # the full cascade, with or without tracking
        faces.FaceExtractor.all_faces = lambda self, frames: calls.append(1) or detect(self, frames)
    else:
        owner, name = {"chunk": (faces, "_process_chunk"), "swap": (storage, "swap_in"),
                       "video": (output, "write_annotated_video")}[step]
        original = getattr(owner, name)

        def slowed(*args, **kwargs):
            flag.write_text("here")
            go = flag.with_name(flag.name + ".go")
            for _ in range(2400):  # until the test lets it go on (or signals it here), 2 min at most
                if go.exists():
                    break
                time.sleep(0.05)
            return original(*args, **kwargs)

        setattr(owner, name, slowed)
    code = cli.main(argv)
    print(f"detect calls: {len(calls)}", file=sys.stderr)
    sys.exit(code)
""")


def start(step: str, flag: Path, *argv, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HELPER, step, str(flag), *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(flag: Path, proc: subprocess.Popen) -> None:
    """Until the slowed step has started (the process writes ``flag`` there)."""
    for _ in range(1200):
        if flag.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before the slowed step: {proc.communicate()[1]}")
        time.sleep(0.1)
    raise AssertionError("the slowed step never started")


def emorec(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emorec.cli", *map(str, argv)], capture_output=True, text=True)


def test_two_extracts_of_different_videos_with_the_same_name_give_two_entries(files, tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "emorec.cli", "extract", str(v), "--out", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in (files["clip"], files["other"])]
    results = [p.communicate() + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    a, b = faces.load_track(entry_of(tmp_path, files["clip"])), faces.load_track(entry_of(tmp_path, files["other"]))
    assert (len(a.frames), len(b.frames)) == (20, 32)
    assert (a.meta["source"]["sha1"], b.meta["source"]["sha1"]) == tuple(
        hashlib.sha1(v.read_bytes()).hexdigest() for v in (files["clip"], files["other"]))
    assert int(b.frames["kept"].sum()) == len(b.crops) == 24  # the first 40 source frames have no face
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.path.name, b.path.name])


def test_a_second_extract_of_the_same_video_waits_and_reuses_the_entry(files, tmp_path):
    out = tmp_path / "cache"
    first = start("chunk", tmp_path / "flag", "extract", files["clip"], "--out", out)
    wait_for(tmp_path / "flag", first)  # the first holds the entry's lock, in its extraction
    second = start("count", tmp_path / "unused", "extract", files["clip"], "--out", out)
    entry = entry_of(out, files["clip"])
    seen = ""
    while "waiting for another emorec process" not in seen:  # the second is blocked on the lock
        line = second.stderr.readline()
        assert line, f"the second run ended without waiting: {seen}"
        seen += line
    assert f"{entry}: waiting for another emorec process extracting into it" in seen
    (tmp_path / "flag.go").write_text("")
    err1, err2 = first.communicate()[1], second.communicate()[1]
    assert (first.returncode, second.returncode) == (0, 0), (err1, err2)
    assert "detect calls: 0" in err2  # reused, not extracted again
    assert sorted(p.name for p in out.iterdir()) == [entry.name] and leftovers(out) == []


def test_two_predicts_into_one_out_take_turns_and_leave_one_whole_run(files, tmp_path):
    out = tmp_path / "out"
    first = start("video", tmp_path / "flag", *predict_args(files, files["clip"], out, "--mp4"))
    wait_for(tmp_path / "flag", first)  # the first holds the lock of --out, staging its files
    second = start("count", tmp_path / "unused", *predict_args(files, files["other"], out))
    seen = ""
    while "waiting for another emorec process" not in seen:
        line = second.stderr.readline()
        assert line, f"the second run ended without waiting: {seen}"
        seen += line
    assert f"{out}: waiting for another emorec process writing into it" in seen
    (tmp_path / "flag.go").write_text("")
    results = [p.communicate() + (p.returncode,) for p in (first, second)]
    assert [r[2] for r in results] == [0, 0], results
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS  # the second run's files, whole
    assert json.loads((out / "settings.json").read_text())["video"] == str(files["other"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flag", "flag.go", "out"]


@pytest.mark.parametrize("cut", ["frames.csv", "crops.npy"])
def test_a_cut_cache_file_is_named_on_load_and_extracted_again(files, tmp_path, capsys, cut):
    code, out, err = run(["extract", files["clip"], "--out", tmp_path], capsys)
    entry = entry_of(tmp_path, files["clip"])
    good = snapshot(entry)
    path = entry / cut
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{path}: .* bytes, but meta.json records .* \\(cut or altered\\)"):
        faces.load_track(entry)
    code, out, err = run(["extract", files["clip"], "--out", tmp_path], capsys)
    assert code == 0 and "20 sampled frames, 20 faces" in out, err
    assert snapshot(entry).keys() == good.keys() and snapshot(entry)[cut] == good[cut]
    # predict over a cut entry: extracted again too, never a numpy shape or mmap error
    path.write_bytes(path.read_bytes()[:100])
    code, out, err = run(predict_args(files, files["clip"], tmp_path / "out", "--cache", tmp_path), capsys)
    assert code == 0 and "face in 100%" in out, err
    # a cut entry holding a user's file is not replaced: one line naming it
    path.write_bytes(path.read_bytes()[:100])
    (entry / "notes.txt").write_text("mine")
    code, _, err = run(["extract", files["clip"], "--out", tmp_path], capsys)
    assert code == 1 and len(err) == 1 and f"{entry}: exists and is not an emorec" in err[0]
    assert (entry / "notes.txt").read_text() == "mine"


def test_a_frame_table_altered_to_the_same_size_is_caught_by_its_counts(files, tmp_path):
    entry = entry_of(tmp_path, files["clip"])
    faces.extract_video(files["clip"], entry, progress=False)
    table = entry / "frames.csv"
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:1] + lines[2:] + [lines[1]]) + "\n")  # same bytes, rows reordered
    with pytest.raises(ValueError, match="frames.csv: crop indices are not 0..19 in order"):
        faces.load_track(entry)


# --------------------------------------------------------------------------------------------------
# 3. All or nothing
# --------------------------------------------------------------------------------------------------

def test_a_reused_out_holds_exactly_this_runs_files(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(predict_args(files, files["clip"], out, "--mp4"), capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS + ["annotated.mp4"])
    code, _, err = run(predict_args(files, files["other"], out), capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS  # the other video's annotated.mp4 is gone
    assert json.loads((out / "settings.json").read_text())["video"] == str(files["other"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_written_video_short_of_frames_is_not_reported(files, tmp_path, capsys, monkeypatch):
    real_writer = cv2.VideoWriter

    class DroppingWriter:  # what a full disk does to an encoder: frames never arrive
        def __init__(self, *args):
            self.writer, self.count = real_writer(*args), 0  # wrapped, not subclassed: cv2 types dislike that

        def isOpened(self):
            return self.writer.isOpened()

        def write(self, image):
            self.count += 1
            if self.count % 3:
                self.writer.write(image)

        def release(self):
            self.writer.release()

    out = tmp_path / "out"
    assert run(predict_args(files, files["clip"], out), capsys)[0] == 0
    before = snapshot(out)
    monkeypatch.setattr("emorec.predict.annotate.cv2.VideoWriter", DroppingWriter)
    code, _, err = run(predict_args(files, files["clip"], out, "--mp4"), capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith(
        f"emorec predict: error: {out / 'annotated.mp4'}: the written video decodes to 14 of its 20 frames"), err
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_cut_video_file_fails_the_written_video_check(tmp_path):
    path = tmp_path / "v.mp4"
    video.write_video(path, np.full((30, 64, 80, 3), 120, np.uint8), 10, fourcc="mp4v")
    assert video.decoded_frame_count(path) == 30
    path.write_bytes(path.read_bytes()[:-200])  # the index (moov atom) at the end is lost
    with pytest.raises(ValueError, match=r"v.mp4: the written video decodes to 0 of its 30 frames"):
        video.check_written_video(path, 30)


# --------------------------------------------------------------------------------------------------
# 7. SIGTERM like SIGINT; what kill -9 left is removed at the next start
# --------------------------------------------------------------------------------------------------

def test_sigterm_during_extract_cleans_up_and_a_rerun_works(files, tmp_path, capsys):
    out = tmp_path / "cache"
    proc = start("chunk", tmp_path / "flag", "extract", files["clip"], "--out", out)
    wait_for(tmp_path / "flag", proc)
    proc.terminate()
    _, err = proc.communicate()
    assert proc.returncode == 143
    assert [line for line in visible_lines(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)) if "emorec" in line] == [
        "emorec extract: terminated (SIGTERM); removing temporary files"]  # progress bars' cursor moves aside
    assert "Traceback" not in err
    entry = entry_of(out, files["clip"])
    assert not entry.exists() and leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == [f"{entry.name}.partial"]  # the resumable chunks
    code, stdout, err = run(["extract", files["clip"], "--out", out], capsys)
    assert code == 0 and "20 sampled frames, 20 faces" in stdout, err
    assert sorted(p.name for p in out.iterdir()) == [entry.name]


def test_sigterm_during_predict_leaves_nothing_and_a_rerun_works(files, tmp_path, capsys):
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    proc = start("video", tmp_path / "flag", *predict_args(files, files["clip"], out, "--mp4"),
                 env={**os.environ, "TMPDIR": str(scratch)})
    wait_for(tmp_path / "flag", proc)  # the outputs are being staged
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 143 and "Traceback" not in err
    assert [line for line in visible_lines(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)) if "emorec" in line] == [
        "emorec predict: terminated (SIGTERM); removing temporary files"]  # progress bars' cursor moves aside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flag", "tmp"] and list(scratch.iterdir()) == []
    assert run(predict_args(files, files["clip"], out, "--mp4"), capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS + ["annotated.mp4"])


def test_staging_left_by_kill_9_is_removed_at_the_next_predict(files, tmp_path, capsys):
    out = tmp_path / "out"
    proc = start("video", tmp_path / "flag", *predict_args(files, files["clip"], out, "--mp4"))
    wait_for(tmp_path / "flag", proc)
    proc.kill()
    proc.communicate()
    assert len(list(tmp_path.glob(".out.predict-*"))) == 1 and not out.exists()
    (tmp_path / ".out.photos").mkdir()  # a user's folder with a name like ours: not touched
    assert run(predict_args(files, files["clip"], out), capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.photos", "flag", "out"]


def test_a_temporary_crop_cache_left_by_kill_9_is_removed_at_the_next_predict(files, tmp_path, capsys,
                                                                              monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = start("chunk", tmp_path / "flag", *predict_args(files, files["clip"], tmp_path / "out"),
                 env={**os.environ, "TMPDIR": str(scratch)})
    wait_for(tmp_path / "flag", proc)  # extracting faces into a temporary folder (no --cache)
    proc.kill()
    proc.communicate()
    assert len([p for p in scratch.glob("emorec-faces-*") if p.is_dir()]) == 1
    (scratch / "emorec-faces-mine").mkdir()  # without our marker: not touched
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    assert run(predict_args(files, files["clip"], tmp_path / "out"), capsys)[0] == 0
    assert sorted(p.name for p in scratch.iterdir()) == ["emorec-faces-mine"]


def test_staging_left_by_kill_9_is_removed_at_the_next_extract(files, tmp_path, capsys):
    out = tmp_path / "cache"
    proc = start("swap", tmp_path / "flag", "extract", files["clip"], "--out", out)
    wait_for(tmp_path / "flag", proc)  # the entry is assembled in its staging folder
    proc.kill()
    proc.communicate()
    entry = entry_of(out, files["clip"])
    assert len(list(out.glob(f".{entry.name}.assemble-*"))) == 1
    code, stdout, err = run(["extract", files["clip"], "--out", out], capsys)
    assert code == 0 and "20 faces" in stdout, err
    assert sorted(p.name for p in out.iterdir()) == [entry.name]
