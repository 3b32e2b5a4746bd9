"""The artefact cache: one experiment configuration → one folder of results (DESIGN §7).

Each experiment writes ``artefacts/<profile>/<table>/<key>/`` holding ``config.json``,
``result.json`` and whatever the run saved (checkpoints, predictions). The key hashes three things:

- the configuration (model, data options, training settings, seed);
- a fingerprint of the data it reads (so regenerated or different data reruns it);
- a fingerprint of the source of the library modules it depends on (so editing ``emorec.models``
  reruns the model experiments, and editing a chapter or an unrelated module reruns nothing).

A run works inside ``<key>.partial/`` and is renamed to ``<key>/`` only when it has finished, so a
killed run never looks finished; the next call resumes inside the same ``.partial`` folder (the
trainer picks up its last checkpoint there). A finished run keeps no epoch checkpoint: the
trainer's ``checkpoint.pt`` files (weights, optimiser state, RNG) exist only to resume, and are
deleted when the run finishes (disk budget; ``best.pt`` and the run's own files stay).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .. import storage
from ..paths import resolve
from ..train.checkpoint import CHECKPOINT as EPOCH_CHECKPOINT

SMALL_FILE = 1 << 20  # data files up to 1 MiB are hashed whole; larger ones by size and head/tail


def _module_files(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module named {name!r}")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every module inside it
        return sorted(origin.parent.rglob("*.py"))
    return [origin]


def source_fingerprint(modules: Iterable[str]) -> str:
    """SHA-256 of the source files of the named modules (packages include all their modules)."""
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        for path in _module_files(name):
            digest.update(f"{name}:{path.name}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    size = path.stat().st_size
    if size <= SMALL_FILE:
        return hashlib.sha256(path.read_bytes()).digest()
    with path.open("rb") as handle:  # big videos: size plus both ends is enough to notice a different file
        head = handle.read(SMALL_FILE // 2)
        handle.seek(-SMALL_FILE // 2, os.SEEK_END)
        tail = handle.read()
    return hashlib.sha256(str(size).encode() + head + tail).digest()


def data_fingerprint(root: str | os.PathLike, pattern: str = "**/*") -> str:
    """SHA-256 over the relative names and contents of the files under ``root`` matching ``pattern``."""
    root = resolve(root)
    if not root.exists():
        raise FileNotFoundError(f"data folder {root} does not exist")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.glob(pattern) if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(_file_digest(path))
    return digest.hexdigest()


@dataclass(frozen=True)
class Experiment:
    """One configuration of one table: what is run, on which data, with which code."""

    table: str
    config: dict[str, Any]
    data: str = ""  # data fingerprint
    modules: tuple[str, ...] = field(default_factory=tuple)  # library modules the run depends on

    @property
    def key(self) -> str:
        payload = json.dumps({"table": self.table, "config": self.config, "data": self.data,
                              "code": source_fingerprint(self.modules) if self.modules else ""},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


ARTEFACT_KIND = "artefact folder"


class NotRunYet(LookupError):
    """An experiment is not in the store and this chapter does not train (``train_missing: false``)."""


_read_only: list[str] = []  # the command that would train what is missing, while read_only is active


@contextmanager
def read_only(command: str | None):
    """Inside, :meth:`ArtefactStore.run` raises :class:`NotRunYet` ("not run yet — `<command>`") for an
    experiment not in the store instead of training it; ``command`` None changes nothing (ours: the
    chapters of a profile whose grids ``emorec run`` trains, chapter parameter ``train_missing``)."""
    if command is None:
        yield
        return
    _read_only.append(command)
    try:
        yield
    finally:
        _read_only.pop()


def if_stored(run: Callable, *args, **kwargs):
    """``run(*args, **kwargs)``, or None where it raises :class:`NotRunYet` (an experiment not in the
    store while :func:`read_only` is active): the chapters' optional extras, e.g. further seeds (ours)."""
    try:
        return run(*args, **kwargs)
    except NotRunYet:
        return None


def _write_json(path: Path, obj: Any) -> None:
    storage.write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def drop_epoch_checkpoints(work: Path) -> None:
    """Delete the trainer's resumable state (``checkpoint.pt``, :mod:`emorec.train.checkpoint`) under a
    finished run's working folder, which emorec made (ours: about 3× the weights per run, with Adam)."""
    for path in work.rglob(EPOCH_CHECKPOINT):
        path.unlink()


class ArtefactStore:
    """``artefacts/<profile>/`` as a cache of finished experiments."""

    def __init__(self, root: str | os.PathLike = "artefacts", profile: str = "cpu"):
        self.root = resolve(root) / profile

    def folder(self, experiment: Experiment) -> Path:
        return self.root / experiment.table / experiment.key

    def load(self, experiment: Experiment) -> dict | None:
        """The stored result of a finished run, or None."""
        result = self.folder(experiment) / "result.json"
        return json.loads(result.read_text()) if result.is_file() else None

    def run(self, experiment: Experiment, fn: Callable[[Path], dict]) -> dict:
        """The result of ``experiment``: loaded if finished before, else ``fn(work_dir)`` run now.

        ``fn`` receives the run's working folder (resumed if a previous attempt was killed) and
        returns a JSON-serialisable dict; the folder becomes the finished artefact only after
        ``fn`` returns."""
        done = self.load(experiment)
        if done is not None:
            return done
        if _read_only:
            raise NotRunYet(f"not run yet — `{_read_only[-1]}`")
        final = self.folder(experiment)
        work = final.with_name(final.name + ".partial")
        # Refused before the work, not after it: a folder at ``final`` that emorec did not make.
        storage.check_replaceable(final, ARTEFACT_KIND, lambda name: True, "another artefact root")
        work.mkdir(parents=True, exist_ok=True)
        storage.write_marker(work, ARTEFACT_KIND, "emorec.experiments.cache")
        _write_json(work / "config.json", {"table": experiment.table, "config": experiment.config,
                                           "data": experiment.data, "modules": list(experiment.modules)})
        result = fn(work)
        drop_epoch_checkpoints(work)
        _write_json(work / "result.json", result)
        storage.swap_in(work, final, ARTEFACT_KIND, lambda name: True, "another artefact root")
        return json.loads((final / "result.json").read_text())

    def results(self, table: str) -> list[dict]:
        """Every finished run of ``table`` as ``{"config": ..., "result": ...}``."""
        rows = []
        for folder in sorted((self.root / table).glob("*/result.json")):
            config = json.loads((folder.parent / "config.json").read_text())
            rows.append({"config": config["config"], "result": json.loads(folder.read_text())})
        return rows


#: The labels every part of a chapter's summary holds (§4.2).
SUMMARY_LABELS = ("valence", "arousal")


def summary_gaps(summary: dict, parts: Iterable[str]) -> list[str]:
    """What ``summary`` lacks (ours): each of ``parts`` (e.g. ``"best"``, ``"baseline"``) must hold both
    labels, and ``<part>_seeds`` the ``n_seeds`` runs of each label (when the summary records seeds)."""
    gaps = []
    for part in parts:
        for label in SUMMARY_LABELS:
            runs = len((summary.get(f"{part}_seeds") or {}).get(label, []))
            if label not in (summary.get(part) or {}):
                gaps.append(f"{part} {label}")
            elif "n_seeds" in summary and runs < summary["n_seeds"]:
                gaps.append(f"{part} {label}: {runs} of {summary['n_seeds']} seeds")
    return gaps


def write_summary(artefact_root, profile: str, name: str, summary: dict, parts: Iterable[str] = (),
                  run: str | None = None) -> Path:
    """Save a chapter's headline results (e.g. the best models of Table 2) for later chapters.

    Chapter 5 compares the best models of chapters 4.4 and 4.5 without retraining or repeating
    their grids: it reads these summaries. Written atomically, as JSON. A summary missing any of
    ``parts`` (:func:`summary_gaps`: a chapter that only reads, ``train_missing: false``, before
    ``emorec run`` made everything) is never written: in its place goes the line "not run yet —
    `<run>`" naming what is missing, which :func:`read_summary` raises, so a later chapter or
    ``emorec predict`` says it instead of failing on a missing part (ours)."""
    folder = resolve(artefact_root) / profile / "summaries"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    gaps = summary_gaps(summary, parts)
    _write_json(path, {"not_run": f"missing {'; '.join(gaps)}: not run yet — `{run}`"} if gaps else summary)
    return path


def read_summary(artefact_root, profile: str, name: str, chapter: str) -> dict:
    """A summary written by :func:`write_summary`; a clear error naming the chapter that writes it, and
    :class:`NotRunYet` ("... not run yet — `emorec run …`") for one that chapter could not complete."""
    path = resolve(artefact_root) / profile / "summaries" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run chapter {chapter} with profile {profile!r} first "
                                f"(python -m emorec.book --profile {profile} --only {chapter})")
    summary = json.loads(path.read_text())
    if "not_run" in summary:
        raise NotRunYet(f"{path}: chapter {chapter}'s results are incomplete, {summary['not_run']}")
    return summary
