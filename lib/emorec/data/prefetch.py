"""Decoding ahead in a worker thread while the detector runs (ours; issue 11's decode worker pool).

A face-extraction job alternates two kinds of work: decoding frames (OpenCV/FFmpeg) and running
MTCNN on them (PyTorch). Both release the GIL, so one background thread that decodes the next frames
while the detector works on the current batch keeps a GPU, or the second CPU core, busy during
decoding. :func:`prefetched` wraps any iterator this way: the items come out in the same order and
are the same objects as without it, so the results cannot differ; an error raised by the iterator
is raised to the reader at the same position, after the items before it; the queue between the
two is bounded, so memory holds at most ``depth`` items ahead whatever the video's length.

One video is decoded in order (a stream cannot be split exactly by seeking), so there is at most one
worker per video: ``workers`` is 0 (decode inline, in the reader's thread) or 1. Videos in parallel
are separate jobs of ``emorec run faces``.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

#: Accepted values of ``workers`` (the ``run: decode_workers`` setting).
WORKERS = (0, 1)
_ITEM, _END, _ERROR = range(3)
_POLL_S = 0.1  # how often a worker waiting on a full queue checks whether the reader has gone


class Prefetched(Iterator[T]):
    """The items of ``source``, read ahead by one worker thread into a queue of ``depth`` items.

    ``close()`` (also called when the reader is garbage-collected or leaves a ``with`` block) stops
    the worker and closes ``source`` in the worker's thread, which is the only thread that ever runs
    it; a reader interrupted by an error or Ctrl-C so releases the video at once."""

    def __init__(self, source: Iterator[T], depth: int):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._work, name="emorec-decode", daemon=True)
        self._thread.start()

    def _put(self, message: tuple) -> bool:
        """Queue ``message`` unless the reader has closed us; False when it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._source:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as err:  # handed to the reader, raised there at the same position
            self._put((_ERROR, err))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value
        self.close()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the worker and wait for it (at most the frame it is decoding); idempotent."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> "Prefetched[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self._stop.set()


def check_workers(workers: int) -> int:
    """``workers`` as an int, or ValueError when it is not one of :data:`WORKERS`."""
    if isinstance(workers, bool) or workers not in WORKERS:
        raise ValueError(f"decode_workers must be 0 (decode inline) or 1 (one thread decodes ahead; one video "
                         f"decodes in order, so a second worker has nothing to do), got {workers!r}")
    return int(workers)


def prefetched(source: Iterator[T], workers: int, depth: int) -> Iterator[T]:
    """``source`` itself when ``workers`` is 0, else its items read ahead, at most ``depth`` of them, by
    one worker thread (:class:`Prefetched`). Either way the caller closes the result when done."""
    if check_workers(workers) == 0:
        return source
    return Prefetched(source, depth)
