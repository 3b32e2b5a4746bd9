"""emorec predict's figures drawn in a forked worker (emorec.plots.FigureWorker): the same files as
drawn inline, errors raised in the command, and no process left behind (however the command ends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest

from emorec import plots


def _prediction(n: int = 60, tracks: int = 1) -> tuple[pd.DataFrame, dict]:
    """A frame table and settings as emorec predict writes them (a gap without a face in the middle)."""
    rng = np.random.default_rng(0)
    t = np.arange(n) / 10
    rows = []
    for track in range(tracks):
        values = np.clip(np.cumsum(rng.normal(0, 0.05, (n, 2)), axis=0), -1, 1)
        values[20:25] = np.nan
        table = pd.DataFrame({"time": t, "valence": values[:, 0], "arousal": values[:, 1]})
        rows.append(table.assign(track=track) if tracks > 1 else table)
    model = {"checkpoint": "best.pt", "model": "i3d", "training_data": "synthetic SEWA-like corpus (profile cpu)"}
    settings = {"video": "/videos/clip.mp4", "models": {"valence": model, "arousal": {**model, "checkpoint": "b.pt"}},
                "track": {"track": 0} if tracks > 1 else None}
    return pd.concat(rows, ignore_index=True), settings


@pytest.fixture(autouse=True)
def no_other_thread():
    """The worker forks only a process with one thread: stop tqdm's monitor thread, which an earlier
    test's progress bar may have started (any other thread left running is an earlier test's bug)."""
    from tqdm import tqdm

    if tqdm.monitor is not None:
        tqdm.monitor.exit()
        tqdm.monitor.join()
    assert threading.active_count() == 1, [t.name for t in threading.enumerate()]


def _ended(pid: int) -> bool:
    """No such process, or a zombie whose parent is gone (this sandbox's init may not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _paths(folder) -> dict:
    return {name: folder / f"{name}.png" for name in plots.FIGURES}


def test_the_worker_writes_the_figures_drawn_inline(tmp_path):
    for tracks in (1, 2):
        frames, settings = _prediction(tracks=tracks)
        inline, forked = tmp_path / f"inline{tracks}", tmp_path / f"worker{tracks}"
        inline.mkdir(), forked.mkdir()
        plots.predict_figures(frames, settings, _paths(inline))
        with plots.FigureWorker() as worker:
            assert worker._process is not None and worker._process.is_alive()
            worker(frames, settings, _paths(forked))
            process = worker._process
        assert not process.is_alive()
        for name in plots.FIGURES:
            assert (forked / f"{name}.png").read_bytes() == (inline / f"{name}.png").read_bytes()


def test_an_error_while_drawing_is_raised_in_the_command_with_its_type(tmp_path):
    frames, settings = _prediction()
    missing = tmp_path / "no such folder"
    with plots.FigureWorker() as worker:
        with pytest.raises(FileNotFoundError, match="no such folder"):
            worker(frames, settings, _paths(missing))
    with plots.FigureWorker() as worker:
        with pytest.raises(RuntimeError, match="drawing the figures: KeyError"):
            worker(frames, {k: v for k, v in settings.items() if k != "video"}, _paths(tmp_path))  # a bug
    assert not list(tmp_path.iterdir())


def test_ctrl_c_is_the_commands_and_closing_ends_an_idle_worker():
    worker = plots.FigureWorker()
    pid = worker._process.pid
    time.sleep(0.5)  # let it install its handlers
    os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    assert worker._process.is_alive()  # ignored: the command decides, and closes the pipe
    worker.close()
    assert _ended(pid)


def test_a_killed_command_leaves_no_worker_behind():
    script = textwrap.dedent("""
        import os, signal
        from emorec.plots import FigureWorker
        worker = FigureWorker()
        print(worker._process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    pid = int(proc.stdout.split()[0])
    for _ in range(100):  # the orphan sees the pipe close and returns
        if _ended(pid):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"figure worker {pid} still running after its command was killed")


def test_with_threads_running_it_draws_inline(tmp_path):
    frames, settings = _prediction()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with plots.FigureWorker() as worker:
            assert worker._process is None  # a fork would copy a process whose other threads are gone
            worker(frames, settings, _paths(tmp_path))
    finally:
        stop.set()
        thread.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circumplex.png", "timeseries.png"]
