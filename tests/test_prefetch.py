"""Decoding ahead in a worker thread (emorec.data.prefetch) and face extraction with it."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

import real_media
from emorec import config, run
from emorec.data import faces, prefetch


def _emorec_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "emorec-decode"]


class Source:
    """An iterator that records what happened to it: items read, closed, and in which thread."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at, self.read, self.closed_in = n, fail_at, 0, None

    def __iter__(self):
        return self

    def __next__(self):
        if self.read == self.fail_at:
            raise ValueError("clip.avi: frame 3 cannot be decoded (corrupt video)")
        if self.read == self.n:
            raise StopIteration
        self.read += 1
        return self.read - 1

    def close(self):
        self.closed_in = threading.current_thread().name


def test_items_come_in_order_and_the_source_is_closed():
    source = Source(50)
    got = prefetch.prefetched(source, 1, depth=4)
    assert list(got) == list(range(50))
    assert source.closed_in == "emorec-decode"
    assert not _emorec_threads()


def test_an_error_of_the_source_is_raised_after_the_items_before_it():
    got = prefetch.prefetched(Source(10, fail_at=3), 1, depth=8)
    assert [next(got) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="clip.avi: frame 3"):
        next(got)
    assert not _emorec_threads()
    with pytest.raises(StopIteration):  # a closed reader stays ended
        next(got)


def test_the_worker_reads_at_most_depth_items_ahead_and_stops_on_close():
    source = Source(10_000)
    got = prefetch.prefetched(source, 1, depth=5)
    assert next(got) == 0
    for _ in range(100):  # let the worker fill the queue
        if source.read >= 6:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.05)
    assert source.read <= 1 + 5 + 1  # the one taken, the queue, and one waiting to be put
    got.close()
    assert source.closed_in == "emorec-decode" and source.read < 10_000
    assert not _emorec_threads()


def test_zero_workers_is_the_source_itself_and_other_counts_are_refused():
    source = Source(3)
    assert prefetch.prefetched(source, 0, depth=4) is source
    for bad in (2, -1, True, 0.5):
        with pytest.raises(ValueError, match="decode_workers must be 0 .* or 1"):
            prefetch.prefetched(Source(3), bad, depth=4)
    with pytest.raises(ValueError, match="decode_workers"):
        faces.extract_video(real_media.path("WolfgangLanger_Pexels.mp4"), "unused", decode_workers=2)


def _extract(path, root, workers):
    # chunks of 8 frames, batches of 4: the decode worker runs across batch and chunk borders
    extractor = faces.FaceExtractor(batch_size=4)
    return faces.extract_video(path, root / path.stem, fps=2, extractor=extractor, chunk_size=8, progress=False,
                               decode_workers=workers)


def test_a_real_clip_gives_the_same_entry_with_and_without_the_worker(tmp_path):
    clip = real_media.path("WolfgangLanger_Pexels.mp4")  # 19.7 s, 640x360: 40 frames at 2 fps
    inline, ahead = _extract(clip, tmp_path / "inline", 0), _extract(clip, tmp_path / "ahead", 1)
    assert len(inline.frames) == 40 and inline.frames["kept"].mean() > 0.9
    pd.testing.assert_frame_equal(inline.frames, ahead.frames)
    np.testing.assert_array_equal(inline.crops, ahead.crops)
    for name in ("crops.npy", "frames.csv"):
        assert (inline.path / name).read_bytes() == (ahead.path / name).read_bytes()
    assert not _emorec_threads()


def test_a_decode_error_inside_the_worker_names_the_file_and_leaves_nothing(tmp_path):
    data = real_media.path("WolfgangLanger_Pexels.mp4").read_bytes()
    cut = tmp_path / "clip.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])  # FFmpeg decodes the first seconds, then finds it cut
    with pytest.raises(ValueError) as err:
        _extract(cut, tmp_path / "cache", 1)
    assert str(err.value).startswith(f"{cut}: truncated or corrupt video: decoding stopped after")
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "clip.mp4"]
    assert not _emorec_threads()


def test_a_faces_job_decodes_with_the_profiles_setting(monkeypatch, tmp_path):
    seen = {}

    def extract_corpus(videos, root, **kwargs):  # what `emorec run faces` asks of the library
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(faces, "extract_corpus", extract_corpus)
    for profile, workers in (("paper", 1), ("cpu", 0)):
        cfg = config.load(profile)
        assert cfg.run.decode_workers == workers
        with pytest.raises(RuntimeError, match="stop here"):
            run.extract_video(str(tmp_path / "clip.avi"), 10.0, cfg)
        assert seen["decode_workers"] == workers


_WORKER_AND_MAIN = """
import sys, threading
from emorec.data import video
log, in_log, written = video._FFmpegLog(), threading.Event(), threading.Event()
def worker():  # as a decode thread: descriptor 2 pointed at FFmpeg's log around an OpenCV call
    with log:
        in_log.set()
        written.wait(5)
with {context}:
    thread = threading.Thread(target=worker)
    thread.start()
    in_log.wait(5)
    print("progress 3/10", file=sys.stderr)
    written.set()
    thread.join()
print("log:", log.lines())
"""


@pytest.mark.parametrize("apart", [True, False])
def test_what_python_writes_while_a_worker_captures_ffmpeg_reaches_stderr_not_its_log(apart):
    context = "video.python_stderr_apart()" if apart else "__import__('contextlib').nullcontext()"
    done = subprocess.run([sys.executable, "-c", _WORKER_AND_MAIN.format(context=context)],
                          capture_output=True, text=True, timeout=120, check=True)
    if apart:
        assert "progress 3/10" in done.stderr and "log: []" in done.stdout
    else:  # the failure this guards against: the line swallowed by the worker's FFmpeg log
        assert "progress 3/10" not in done.stderr and "progress 3/10" in done.stdout
