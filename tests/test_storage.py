"""emorec.storage: the atomic writer, marked folders, locks across real processes, swaps, preflight."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emorec import storage

KIND = "test entry"
ALLOWED = storage.allowing(["a.txt", "b.txt"])


def ours(folder: Path, *files: str) -> Path:
    folder.mkdir(parents=True)
    storage.write_marker(folder, KIND, "tests")
    for name in files:
        (folder / name).write_text(name)
    return folder


def test_atomic_writer_leaves_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        storage.write_atomic(target, fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    storage.write_text_atomic(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_a_folder_is_replaceable_only_if_ours_and_holding_nothing_else(tmp_path):
    storage.check_replaceable(tmp_path / "absent", KIND, ALLOWED)
    (tmp_path / "empty").mkdir()
    storage.check_replaceable(tmp_path / "empty", KIND, ALLOWED)
    storage.check_replaceable(ours(tmp_path / "mine", "a.txt", ".a.txt.x1y2.tmp"), KIND, ALLOWED)
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work")
    with pytest.raises(storage.NotOurs, match=r"user: exists and is not an emorec test entry \(it holds thesis.txt\)"):
        storage.check_replaceable(user, KIND, ALLOWED)
    mixed = ours(tmp_path / "mixed", "a.txt", "video.avi")
    with pytest.raises(storage.NotOurs, match="video.avi"):
        storage.check_replaceable(mixed, KIND, ALLOWED)
    other_kind = tmp_path / "other"
    other_kind.mkdir()
    storage.write_marker(other_kind, "another kind", "tests")
    with pytest.raises(storage.NotOurs):
        storage.check_replaceable(other_kind, KIND, ALLOWED)
    (tmp_path / "file").write_text("x")
    with pytest.raises(storage.NotOurs, match="file: exists and is a file"):
        storage.check_replaceable(tmp_path / "file", KIND, ALLOWED)
    (tmp_path / "link").symlink_to(user)
    with pytest.raises(storage.NotOurs, match="link: exists and is a link"):
        storage.check_replaceable(tmp_path / "link", KIND, ALLOWED)
    assert not storage.remove_ours(user, KIND, ALLOWED) and (user / "thesis.txt").is_file()
    assert not storage.remove_ours(tmp_path / "link", KIND, ALLOWED) and (user / "thesis.txt").is_file()
    assert storage.remove_ours(tmp_path / "mine", KIND, ALLOWED) and not (tmp_path / "mine").exists()


def test_swap_replaces_our_folder_whole_and_refuses_a_users(tmp_path):
    target = ours(tmp_path / "out", "a.txt", "b.txt")
    stage = storage.staging_dir(target, "t", KIND, "tests")
    (stage / "a.txt").write_text("new")
    storage.swap_in(stage, target, KIND, ALLOWED)
    assert sorted(p.name for p in target.iterdir()) == [storage.MARKER, "a.txt"]  # b.txt of the old run: gone
    assert (target / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (target / "notes.txt").write_text("mine")
    stage = storage.staging_dir(target, "t", KIND, "tests")
    with pytest.raises(storage.NotOurs, match="notes.txt"):
        storage.swap_in(stage, target, KIND, ALLOWED)
    assert (target / "notes.txt").read_text() == "mine" and (target / "a.txt").read_text() == "new"


def test_remove_stale_takes_only_our_leftovers_beside_the_target(tmp_path):
    target = tmp_path / "out"
    stale_stage = storage.staging_dir(target, "predict", KIND, "tests")
    (stale_stage / "a.txt").write_text("half")
    stale_old = ours(tmp_path / ".out.0123.old", "b.txt")
    (stale_stage / ".a.txt.k3j4.tmp").write_bytes(b"\0")  # what a writer killed mid-file leaves
    users = tmp_path / ".out.photos"
    users.mkdir()
    (users / "p.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / ".out.notes.tmp").write_text("a user's file with a name like ours")
    removed = storage.remove_stale(target, KIND, ALLOWED)
    assert sorted(removed) == sorted([stale_stage, stale_old])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.notes.tmp", ".out.photos"]
    assert (users / "p.jpg").is_file()


def test_remove_stale_reads_names_with_glob_characters_literally(tmp_path):
    target = tmp_path / "clip[1]"
    ours(tmp_path / ".clip[1].x.old", "a.txt")
    ours(tmp_path / ".clip1.x.old", "a.txt")  # what the pattern [1] would match: another target's
    assert storage.remove_stale(target, KIND, ALLOWED) == [tmp_path / ".clip[1].x.old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clip1.x.old"]


def test_preflight_names_the_path_and_the_reason(tmp_path, monkeypatch):
    storage.preflight(tmp_path / "new" / "deeper", 1000)
    assert not (tmp_path / "new").exists()  # creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"file: exists and is a file, not a folder \(--out\)"):
        storage.preflight(tmp_path / "file", 0, "--out")
    with pytest.raises(ValueError, match=r"file/sub: cannot be created: .*file is a file"):
        storage.preflight(tmp_path / "file" / "sub", 0, "--out")
    # /proc refuses new files even to root (chmod does not: the tests may run as root)
    with pytest.raises(ValueError, match=r"/proc/emorec: cannot write in /proc"):
        storage.preflight("/proc/emorec", 0, "--out")
    monkeypatch.setattr(storage, "free_bytes", lambda folder: 5_000_000)
    with pytest.raises(ValueError, match=r"not enough free space \(--out\): about 12.0 MB needed, 5.0 MB free"):
        storage.preflight(tmp_path, 12_000_000, "--out")


HOLD = textwrap.dedent("""
    import sys, time
    from emorec import storage
    with storage.locked(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
        open(sys.argv[1] + ".done", "w").close()
""")


def test_a_second_process_waits_for_the_lock_and_the_lock_file_goes(tmp_path, capfd):
    target = tmp_path / "entry"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "1"], stdout=subprocess.PIPE, text=True,
                             env=env)
    assert first.stdout.readline().strip() == "held"
    with storage.locked(target, waiting="waiting"):  # blocks until the first process lets go
        finished = Path(f"{target}.done").exists()
    first.wait()
    assert finished  # the first process had finished its work when this one got the lock
    assert not storage.lock_path(target).exists()
    assert capfd.readouterr().err.strip() == "waiting"


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    target = tmp_path / "entry"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "60"], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait()
    assert storage.lock_path(target).exists()  # kill -9 leaves the file; the kernel dropped the lock
    fd = os.open(storage.lock_path(target), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free at once (BlockingIOError otherwise)
    os.close(fd)
    with storage.locked(target):
        pass
    assert not storage.lock_path(target).exists()


def test_marker_names_the_writer_and_version(tmp_path):
    storage.write_marker(tmp_path, KIND, "emorec.tests")
    marker = json.loads((tmp_path / storage.MARKER).read_text())
    assert marker["kind"] == KIND and marker["writer"] == "emorec.tests" and marker["emorec"]
