"""Safe storage: atomic files, emorec's own folders, locks, all-or-nothing swaps, SIGTERM (ours).

Nothing here is from the paper; it is what lets the crop cache (§3.2.1) and ``emorec predict``'s
outputs live in folders a user also uses. The rules:

* **One atomic writer.** A file is written under a temporary name beside its target and renamed into
  place (:func:`atomic_path`, :func:`write_atomic`): a reader, or a run killed mid-write, sees the
  old file or the complete new one. Temporary names are ``.<name>.<random>.tmp<suffix>``.
* **Folders emorec owns carry a marker** (:data:`MARKER`, naming the writer module, its kind and
  emorec's version). A folder is replaced or removed only if it carries our marker of the expected
  kind and holds nothing but the files that kind of folder holds (so never an input a user put
  there), or if it is empty; otherwise :class:`NotOurs`, one line naming the folder.
* **Locks.** :func:`locked` takes an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside a target
  (removed when released); a second process waits for the first and then finds its finished work. Staging folders and
  temporary files of a target are only made while its lock is held, so whoever holds the lock can
  remove the stale ones a killed (``kill -9``) run left (:func:`remove_stale`); temporary folders
  elsewhere (:func:`scratch_folder`) are locked while in use and removed by the next run when
  their lock is free.
* **All or nothing.** A folder is built under a staging name and swapped in by renames
  (:func:`swap_in`); :func:`preflight` checks a destination (creatable, writable, enough free
  space for an estimate) before any work starts.
* **SIGTERM** is turned into :class:`Terminated` (a ``SystemExit`` with status 143) raised in the
  main thread, so the same ``finally`` clean-up runs as for Ctrl-C (:func:`exit_on_sigterm`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import __version__

MARKER = ".emorec.json"
TERMINATED_STATUS = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


class NotOurs(ValueError):
    """A folder emorec was asked to replace is not one it made (or holds something it did not make)."""


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM: unwinds (running clean-ups) and exits with status 143."""


# --------------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` if the block succeeds,
    removed if it fails or is interrupted (ours). ``suffix`` keeps an extension writers need
    (OpenCV picks the container from it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, write: Callable) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, flush it to disk, then rename
    it into place (ours): readers see the previous file or the complete new one."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """:func:`write_atomic` for a text (UTF-8) file (ours)."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


# --------------------------------------------------------------------------------------------------
# Folders emorec owns
# --------------------------------------------------------------------------------------------------

def write_marker(folder: str | os.PathLike, kind: str, writer: str) -> None:
    """Mark ``folder`` as made by emorec's ``writer`` module, holding a ``kind`` of entry (ours)."""
    write_text_atomic(Path(folder) / MARKER, json.dumps({"kind": kind, "writer": writer,
                                                         "emorec": __version__}, indent=1) + "\n")


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of an emorec folder, or None when there is none (or it is not ours)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "kind" in marker and "writer" in marker else None


def _foreign_entries(folder: Path, kind: str, allowed: Callable[[str], bool]) -> list[str] | None:
    """None if ``folder`` is ours (marker of ``kind``, only allowed names in it), else what is foreign."""
    marker = read_marker(folder)
    names = sorted(p.name for p in folder.iterdir())
    if marker is None or marker.get("kind") != kind:
        return names or None  # an empty folder holds nothing to lose
    return [n for n in names if n != MARKER and not allowed(n)] or None


def check_replaceable(folder: str | os.PathLike, kind: str, allowed: Callable[[str], bool],
                      option: str = "another folder") -> None:
    """Raise :class:`NotOurs` unless ``folder`` is absent, empty, or an emorec folder of ``kind``
    holding only names ``allowed`` accepts (ours: nothing of the user's is ever replaced)."""
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    if folder.is_symlink() or not folder.is_dir():
        raise NotOurs(f"{folder}: exists and is a {'link' if folder.is_symlink() else 'file'}, not a folder; "
                      f"choose {option}")
    foreign = _foreign_entries(folder, kind, allowed)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise NotOurs(f"{folder}: exists and is not an emorec {kind} (it holds {shown}); choose {option}")


def remove_ours(folder: str | os.PathLike, kind: str, allowed: Callable[[str], bool]) -> bool:
    """Delete ``folder`` if it carries emorec's marker of ``kind`` and holds only allowed names; leave
    anything else alone (even an empty folder: it may be a user's). Returns whether it was removed (ours)."""
    folder = Path(folder)
    if (folder.is_symlink() or not folder.is_dir() or (read_marker(folder) or {}).get("kind") != kind
            or _foreign_entries(folder, kind, allowed)):
        return False
    shutil.rmtree(folder)
    return True


def swap_in(stage: str | os.PathLike, target: str | os.PathLike, kind: str, allowed: Callable[[str], bool],
            option: str = "another folder") -> None:
    """Replace ``target`` by the finished folder ``stage`` with renames (ours).

    ``target`` may be absent, empty or an emorec folder of ``kind`` (checked again here, under the
    caller's lock); the old one is renamed aside and deleted only after the new one is in place."""
    stage, target = Path(stage), Path(target)
    check_replaceable(target, kind, allowed, option)
    if not target.exists() or not any(target.iterdir()):
        os.replace(stage, target)  # rename(2) replaces an empty folder atomically
        return
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.old")
    os.replace(target, old)
    try:
        os.replace(stage, target)
    except BaseException:
        os.replace(old, target)  # put the previous one back
        raise
    shutil.rmtree(old)


def staging_dir(target: str | os.PathLike, tag: str, kind: str, writer: str) -> Path:
    """A new marked staging folder ``.<name>.<tag>-<random>`` beside ``target`` (ours)."""
    target = Path(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-", dir=target.parent))
    write_marker(stage, kind, writer)
    return stage


def remove_stale(target: str | os.PathLike, kind: str, allowed: Callable[[str], bool]) -> list[Path]:
    """Remove what a killed run left beside ``target``: its marked staging or swapped-out folders
    ``.<name>.*`` of ``kind``, with the temporary files inside them (ours). Call it holding
    ``target``'s lock: every writer of these names holds that lock, so none of them is still alive."""
    target = Path(target)
    stale = sorted(target.parent.glob(f".{glob_escape(target.name)}.*"))
    return [path for path in stale if remove_ours(path, kind, allowed)]


def allowing(names: Iterable[str]) -> Callable[[str], bool]:
    """The names a kind of folder holds: ``names`` and the temporary files of their writers (ours)."""
    names = frozenset(names)
    return lambda n: n in names or any(n.startswith(f".{m}.") and ".tmp" in n for m in names)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped (ours)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# --------------------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------------------

def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` beside it (ours)."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _acquire(path: Path, waiting: str | None, block: bool = True) -> int | None:
    """An fd holding the exclusive lock on the file now at ``path`` (None if busy and not ``block``):
    a holder removes the file before it lets go, so a waiter that wakes up on a removed file tries
    again with the new one."""
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not block:
                os.close(fd)
                return None
            if waiting and not told:
                print(waiting, file=sys.stderr, flush=True)
                told = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        held = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


@contextlib.contextmanager
def locked(target: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``target``'s lock file ``.<name>.lock`` for the block (ours).

    When another process holds it, ``waiting`` (if given) is printed once on stderr and the call
    blocks until that process finishes or dies (the kernel releases a dead process's lock). The
    lock file is removed on leaving; one a killed process left is simply taken over."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, waiting)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # still holding the lock: waiters then retry on a new file
        os.close(fd)


SCRATCH_KIND = "scratch folder"


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A marked temporary folder ``<tmp>/<prefix>*``, locked while in use and removed after (ours).
    Those a killed process left (their lock is free) are removed first."""
    _remove_dead_scratch(prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with locked(folder):
            write_marker(folder, SCRATCH_KIND, "emorec.storage")  # under the lock: never taken for dead
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # made above


def _remove_dead_scratch(prefix: str) -> None:
    for folder in Path(tempfile.gettempdir()).glob(f"{glob_escape(prefix)}*"):
        if folder.is_symlink() or not folder.is_dir() or (read_marker(folder) or {}).get("kind") != SCRATCH_KIND:
            continue
        path = lock_path(folder)
        fd = _acquire(path, None, block=False)
        if fd is None:
            continue  # its process is alive
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)


# --------------------------------------------------------------------------------------------------
# Checks before any work
# --------------------------------------------------------------------------------------------------

def free_bytes(folder: str | os.PathLike) -> int:
    """Free space for an unprivileged writer on the disk holding ``folder`` (ours)."""
    return shutil.disk_usage(folder).free


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def preflight(folder: str | os.PathLike, need_bytes: int = 0, option: str = "the folder",
              swapped: bool = False) -> None:
    """Check that ``folder`` is, or can be created as, a writable folder with about ``need_bytes``
    free (ours); with ``swapped``, that its parent is (``folder`` is then replaced by a rename
    there). Raises ValueError naming ``folder`` and the reason; creates nothing."""
    folder = Path(folder)
    base = _existing_ancestor(folder.absolute().parent if swapped else folder.absolute())
    if not base.is_dir():
        where = "exists and is a file" if base == folder.absolute() else f"cannot be created: {base} is a file"
        raise ValueError(f"{folder}: {where}, not a folder ({option})")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(f"{folder}: cannot write in {base} ({reason}) ({option})") from None
    free = free_bytes(base)
    if need_bytes > free:
        raise ValueError(f"{folder}: not enough free space ({option}): about {_mb(need_bytes)} needed, "
                         f"{_mb(free)} free on its disk")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def one_line(err: BaseException) -> str:
    """An exception's message on one line (ours)."""
    return " ".join(str(err).split()) or type(err).__name__


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, after resolving links (ours)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


# --------------------------------------------------------------------------------------------------
# SIGTERM
# --------------------------------------------------------------------------------------------------

def exit_on_sigterm(command: str) -> None:
    """Handle SIGTERM as Ctrl-C is handled (ours): print one line, raise :class:`Terminated` in the
    main thread so every ``finally`` clean-up runs (temporary files, staging folders; resumable
    chunks are kept), and exit with status 143. A second SIGTERM during the clean-up is ignored."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        from tqdm import tqdm  # its write() clears the progress bars first, so the line stays readable

        tqdm.write(f"{command}: terminated (SIGTERM); removing temporary files", file=sys.stderr)
        raise Terminated(TERMINATED_STATUS)

    signal.signal(signal.SIGTERM, handler)
