"""``emorec run``: the book's grids as submitit jobs, outside the notebooks, and the plan (ours).

Steps, in dependency order: ``faces`` (one job per video and frame rate: the crop cache, resumable
per video), ``table1`` (one job per row; rows sharing an identity pre-training wait for the first,
as Table 2's rows sharing frozen-backbone features do),
the video models' initialisations (in this process: they read Table 1's results), then ``table2``
and ``i3d`` (one job per configuration), then ``seeds``: what the chapters train once their grid is
chosen on validation (:func:`seed_runs`: the ``n_seeds`` − 1 further seeds of each configuration chosen
per label, and chapter 4.4's frame-by-frame baseline), one job each. ``emorec run table2`` runs what
Table 2 needs first and Table 2's seeds after it. With ``run: keep_weights: chosen`` a finished grid
(Table 1, Table 2, the i3D) keeps weights only where a later step reads them (:func:`prune_weights`).

Every job goes through submitit: ``--launcher slurm`` uses ``AutoExecutor`` (one SLURM job per
configuration, one GPU each); ``--launcher local`` uses ``LocalExecutor`` with one GPU per job
(``CUDA_VISIBLE_DEVICES``), ``--gpus N`` jobs at a time; on a machine without CUDA, one job at a time.
The artefact store decides what is done: each configuration is first looked up in it read-only
(:func:`missing`; nothing trains in this process), and only the missing ones become jobs, so a
finished configuration is never retrained; an interrupted one resumes inside its ``.partial``
folder from its last epoch checkpoint (:func:`emorec.train.fit`). The chapters then find every
result in the store.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import config as configuration
from .paths import resolve

STEPS = ("faces", "table1", "table2", "i3d", "seeds")
TARGETS = ("faces", "table1", "table2", "i3d", "all")
#: What each target runs, in order (the initialisations run before table2 and i3d; seeds after them).
NEEDS = {"faces": ("faces",), "table1": ("table1",), "table2": ("faces", "table1", "table2", "seeds"),
         "i3d": ("faces", "table1", "i3d", "seeds"), "all": STEPS}
#: The grids whose chosen configurations the ``seeds`` step trains further.
SEEDED = ("table2", "i3d")
#: The grids whose weights nothing later reads are deleted under ``run: keep_weights: chosen``.
PRUNED = ("table1", *SEEDED)
LAUNCHERS = ("local", "slurm")


class JobFailed(RuntimeError):
    """A job ended with an error; the message names the job, its log and the error's last words."""


@dataclass(frozen=True)
class Job:
    """One unit of work: a step, the profile (and ``--params`` file) and which item of the step."""

    step: str
    profile: str
    params_file: str | None
    index: int | None = None  # a row of the step's grid
    video: str | None = None  # faces: the video file
    fps: float | None = None  # faces: the sampling rate
    seed_run: SeedRun | None = None  # seeds: what to train

    def describe(self) -> str:
        if self.step == "faces":
            return f"{self.step} {Path(self.video).name} at {self.fps:g} fps"
        if self.step == "seeds":
            return f"seeds: {self.seed_run.model} seed {self.seed_run.seed}"
        return f"{self.step}[{self.index}]"


@dataclass(frozen=True)
class SeedRun:
    """One run the chapters make after their grid: ``model`` (``cnn_lstm``, ``frame_baseline`` or
    ``i3d``) with ``config`` (a grid row, or the baseline's configuration) and ``seed``."""

    model: str
    config: dict
    seed: int

    @property
    def key(self) -> str:
        return json.dumps([self.model, self.config, self.seed], sort_keys=True, default=str)


def _load(profile: str, params_file) -> configuration.Config:
    from .book import set_weight_environment

    cfg = configuration.load(profile, params_file)
    set_weight_environment(cfg.common)
    return cfg


def grid_of(step: str, cfg: configuration.Config) -> list[dict]:
    """The configurations of ``step`` (``table1``, ``table2`` or ``i3d``) in ``cfg``."""
    if step == "table1":
        from .experiments.finetuning import table1_grid

        return table1_grid(cfg.table1)
    if step == "table2":
        from .experiments.temporal import table2_configurations

        return table2_configurations(cfg.table2, cfg.seed)
    if step == "i3d":
        from .experiments.i3d import i3d_grid

        return i3d_grid(cfg.i3d)
    raise ValueError(f"unknown grid {step!r}; choose one of table1, table2, i3d")


def face_rates(cfg: configuration.Config) -> list[float]:
    """The frame rates the video models read crops at (Table 2's fps values and the i3D's)."""
    return sorted({float(f) for f in cfg.table2.fps_values} | {float(cfg.i3d.settings["fps"])})


class Inputs:
    """The data and starting weights the configurations of one profile read, each loaded once."""

    def __init__(self, cfg: configuration.Config, progress: bool = False):
        self.cfg, self.progress = cfg, progress
        self._corpora, self._checkpoints = {}, {}

    @property
    def store(self):
        from .experiments import ArtefactStore

        return ArtefactStore(self.cfg.artefact_root, self.cfg.profile)

    def corpus(self, fps: float):
        """The SEWA(-like) corpus at ``fps``, faces extracted (:func:`prepare_corpus`)."""
        from .experiments.corpus import prepare_corpus

        if fps not in self._corpora:
            c = self.cfg.common
            self._corpora[fps] = prepare_corpus(self.cfg.data_root, self.cfg.profile, self.cfg.seed, fps=fps,
                                                sewa_root=c.get("sewa_root"), split_file=c.get("sewa_split_file"),
                                                progress=self.progress)
        return self._corpora[fps]

    def checkpoint(self, init: str) -> Path:
        """The starting weights of a Table-2 configuration, as chapter 4.4 chooses them (§4.4)."""
        from .experiments.finetuning import video_initialisation

        if init not in self._checkpoints:
            got = video_initialisation(init, self.cfg.artefact_root, self.cfg.profile, self.cfg.table2.backbone_2d)
            if got.checkpoint is None:
                raise FileNotFoundError(f"initialisation {init}: {got.used}")
            self._checkpoints[init] = got.checkpoint
        return self._checkpoints[init]


# --------------------------------------------------------------------------------------------------
# The configurations (also what `emorec train` runs)
# --------------------------------------------------------------------------------------------------

def train_table1(rows: list[dict], inputs: Inputs) -> list[dict]:
    """Table-1 rows, trained or loaded (§4.3): the result rows of :func:`run_table1`."""
    from .data.synthetic import ensure_raf_like
    from .experiments.finetuning import run_table1

    cfg = inputs.cfg
    identities = ensure_raf_like(cfg.data_root, cfg.profile, cfg.seed)
    raf = cfg.common.get("rafdb_root") or identities
    return run_table1(rows, raf, cfg.artefact_root, cfg.profile, cfg.seed, identity_root=identities).to_dict("records")


def train_table2(rows: list[dict], inputs: Inputs) -> list[dict]:
    """Table-2 configurations, trained or loaded (§4.4)."""
    from .experiments.temporal import run_cnn_lstm

    return [run_cnn_lstm(row, inputs.corpus(row["fps"]), inputs.checkpoint(row["init"]), inputs.store)
            for row in rows]


def train_i3d(rows: list[dict], inputs: Inputs) -> list[dict]:
    """i3D configurations, trained or loaded (§4.5)."""
    from .experiments import i3d

    for row in rows:
        i3d.check_row(row)
    return [r for row in rows
            for r in i3d.run_grid([row], inputs.corpus(row["fps"]), inputs.store, inputs.cfg.seed).to_dict("records")]


def train_seed(run: SeedRun, inputs: Inputs) -> dict:
    """One of the runs the chapters make after their grid (§4.4, §4.5), trained or loaded."""
    from .experiments import i3d
    from .experiments.temporal import run_cnn_lstm, run_frame_baseline

    corpus = inputs.corpus(run.config["fps"])
    if run.model == "i3d":
        return i3d.run_i3d(run.config, corpus, inputs.store, run.seed)
    train = {"cnn_lstm": run_cnn_lstm, "frame_baseline": run_frame_baseline}[run.model]
    return train({**run.config, "seed": run.seed}, corpus, inputs.checkpoint(run.config["init"]), inputs.store)


TRAIN = {"table1": train_table1, "table2": train_table2, "i3d": train_i3d}
NOT_RUN = "not run yet"


def _stored(train, item, inputs: Inputs) -> dict | None:
    """``train([item])``'s row read from the store, or None when it is not there (read only)."""
    from .experiments import NotRunYet

    try:
        row = train([item], inputs)[0]
    except (NotRunYet, FileNotFoundError):  # not in the store, or what it starts from not yet
        return None
    return None if str(row.get("status", "ok")).startswith(NOT_RUN) else row


def stored_rows(step: str, inputs: Inputs) -> list[dict | None]:
    """Per configuration of ``step``, its result row (with its ``grid_index``) from the artefact store,
    or None when it is not there. The store decides, read only: nothing is trained here. Rows that
    cannot run on this machine (weights absent) are rows with that status; the chapters report them."""
    from .experiments import read_only

    grid = grid_of(step, inputs.cfg)
    with read_only(f"emorec run {step}"):
        if step == "table1":  # one call: the RAF folder is fingerprinted once
            from .experiments.finetuning import TABLE

            found = [None if str(r["status"]).startswith(NOT_RUN)
                     else {**r, "folder": str(inputs.store.root / TABLE / r["key"]) if isinstance(r["key"], str)
                           else None}  # a row that cannot run here (weights absent) has no folder
                     for r in train_table1(grid, inputs)]
        else:
            found = [_stored(TRAIN[step], row, inputs) for row in grid]
    return [None if r is None else {**row, **r, "grid_index": i} for i, (row, r) in enumerate(zip(grid, found))]


def missing(step: str, inputs: Inputs) -> list[int]:
    """Indices of the configurations of ``step`` not in the artefact store (:func:`stored_rows`)."""
    return [i for i, row in enumerate(stored_rows(step, inputs)) if row is None]


def chosen_rows(step: str, rows: list[dict | None]) -> list[dict]:
    """The rows of a finished ``table2`` or ``i3d`` grid chosen per label on validation, as chapters
    4.4 and 4.5 choose them (:func:`emorec.experiments.evaluation.best_per_label` per initialisation
    and frame rate; :func:`emorec.experiments.i3d.best_per_label` per base model and source)."""
    import pandas as pd

    from .experiments import i3d
    from .experiments.evaluation import best_per_label

    done = [row for row in rows if row is not None]
    if step == "table2":
        return [c["row"] for c in best_per_label(done, ("init", "fps"))]
    if step == "i3d":
        return i3d.best_per_label(pd.DataFrame(done)).to_dict("records") if done else []
    raise ValueError(f"no choice on validation in {step!r}")


def seed_runs(step: str, cfg: configuration.Config, rows: list[dict | None]) -> list[SeedRun]:
    """What chapters 4.4 (``table2``) and 4.5 (``i3d``) train once their grid ``rows`` are chosen on:
    seeds 1 … ``n_seeds`` − 1 of each chosen configuration and, for Table 2, the frame-by-frame
    baseline beside the chosen RAF-DB cascade with ``n_seeds`` seeds (ours); each run once."""
    from .experiments.temporal import baseline_cascades, baseline_config

    grid, chosen = grid_of(step, cfg), chosen_rows(step, rows)
    section = cfg.table2 if step == "table2" else cfg.i3d
    extra = range(cfg.seed + 1, cfg.seed + section.n_seeds)
    model = "cnn_lstm" if step == "table2" else "i3d"
    out = [SeedRun(model, grid[int(row["grid_index"])], s) for row in chosen for s in extra]
    if step == "table2":
        picks = [{"init": r["init"], "fps": r["fps"], "row": r} for r in chosen]
        base = cfg.table2.base(cfg.seed)
        out += [SeedRun("frame_baseline", baseline_config(base, c["row"]), s)
                for c in baseline_cascades(picks, cfg.table2.inits, cfg.table2.fps_values)
                for s in range(cfg.seed, cfg.seed + cfg.table2.n_seeds)]
    return list({run.key: run for run in out}.values())


def missing_seed_runs(wanted: list[SeedRun], inputs: Inputs) -> list[SeedRun]:
    """The runs of ``wanted`` (:func:`seed_runs`) not yet in the artefact store (read only)."""
    from .experiments import read_only

    with read_only("emorec run seeds"):
        return [r for r in wanted if _stored(lambda runs, inp: [train_seed(runs[0], inp)], r, inputs) is None]


#: The weight files a configuration's run writes in its own artefact folder (Table 1: ``best.pt``;
#: Table 2: ``model.pt`` and the trainer's ``best.pt``; the i3D: ``best.pt``).
WEIGHT_FILES = ("model.pt", "best.pt")


def read_folders(step: str, rows: list[dict | None], cfg: configuration.Config) -> set[str]:
    """The folders of the finished configurations of ``step`` whose weights a later step reads (ours).

    Table 2 and the i3D: the configurations chosen per label (the seed runs, the baseline and
    ``emorec predict`` start from them). Table 1: per backbone, the row the video models' "RAF-DB"
    initialisation starts from (:func:`emorec.experiments.finetuning.best_expression_checkpoint`, which
    chapter 4.3 lists for every backbone of its grid and chapters 4.4 and 4.5 load); their "VGG-Face"
    is the identity pre-training or the real VGG-Face checkpoint, artefacts of other tables, never
    pruned. Chapter 4.3 itself reads only results (scores, confusions), no weights."""
    if step != "table1":
        return {str(row["folder"]) for row in chosen_rows(step, rows)}
    from .experiments.finetuning import best_expression_checkpoint

    kept = set()
    for backbone in sorted({row["backbone"] for row in rows if row is not None}):
        try:
            kept.add(str(best_expression_checkpoint(cfg.artefact_root, cfg.profile, backbone).parent))
        except FileNotFoundError:  # no row of this backbone starts from VGG-Face: none is an initialisation
            pass
    return kept


def prune_weights(step: str, rows: list[dict | None], cfg: configuration.Config) -> list[Path]:
    """Delete the weights of the finished configurations of a ``table1``, ``table2`` or ``i3d`` grid
    that no later step reads (:func:`read_folders`; the seed runs are experiments of their own, never
    pruned). Only ``model.pt`` and ``best.pt`` inside a configuration's own artefact folder (emorec's
    marker) go; its metrics, predictions and ``result.json`` stay, so the store still counts it as
    finished (ours). Returns the deleted files."""
    from . import storage
    from .experiments.cache import ARTEFACT_KIND

    keep = read_folders(step, rows, cfg)
    deleted = []
    for row in rows:
        if row is None or row.get("status", "ok") != "ok" or str(row["folder"]) in keep:
            continue
        folder = Path(row["folder"])
        if (storage.read_marker(folder) or {}).get("kind") != ARTEFACT_KIND:
            continue  # not a folder emorec made
        for path in sorted(p for name in WEIGHT_FILES for p in folder.rglob(name)):
            path.unlink()
            deleted.append(path)
    return deleted


def extract_video(video: str, fps: float, cfg: configuration.Config) -> dict:
    """The crops of one video at ``fps`` into the corpus's crop cache (§3.2.1); resumable per video."""
    from .data.faces import FaceExtractor, extract_corpus
    from .experiments.corpus import face_cache_root

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = face_cache_root(cfg.data_root, cfg.profile, fps, cfg.common.get("sewa_root"))
    track = next(iter(extract_corpus([video], root, fps=fps, extractor=FaceExtractor(device=device),
                                     progress=False, decode_workers=cfg.run.decode_workers).values()))
    return {"video": video, "fps": fps, "faces": len(track.crops), "frames": len(track.frames)}


def run_job(job: Job) -> dict:
    """What one submitit job runs (a top-level function, so submitit can pickle it)."""
    cfg = _load(job.profile, job.params_file)
    if job.step == "faces":
        return extract_video(job.video, job.fps, cfg)
    if job.step == "seeds":
        return {"step": job.step, "status": train_seed(job.seed_run, Inputs(cfg)).get("status", "ok")}
    result = TRAIN[job.step]([grid_of(job.step, cfg)[job.index]], Inputs(cfg))[0]
    return {"step": job.step, "index": job.index, "status": result.get("status", "ok")}


# --------------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------------

def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def executors(launcher: str, gpus: int, folder: Path) -> list:
    """The submitit executors jobs go to: one per concurrent slot (local), or one AutoExecutor (SLURM)."""
    import submitit

    if launcher == "slurm":
        try:
            executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
        except RuntimeError as err:  # submitit: no srun here
            raise ValueError(f"--launcher slurm: {err}") from None
        executor.update_parameters(gpus_per_node=1, tasks_per_node=1, timeout_min=24 * 60, name="emorec")
        return [executor]
    if launcher != "local":
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if _cuda_devices() and gpus > _cuda_devices():
        raise ValueError(f"--gpus {gpus}: this machine has {_cuda_devices()} CUDA device(s)")
    slots = []
    for gpu in range(gpus if _cuda_devices() else 1):
        executor = submitit.LocalExecutor(folder=folder / "%j")
        executor.update_parameters(timeout_min=24 * 60, **(dict(gpus_per_node=1, visible_gpus=[gpu])
                                                           if _cuda_devices() else {}))
        slots.append(executor)
    return slots


def launch(jobs: list[Job], slots: list, at_once: int | None, report=print) -> list[dict]:
    """Run ``jobs`` through submitit, ``at_once`` at a time (None: all at once, as on SLURM, whose queue
    decides), and return their results in order. A failed job raises, naming it and its log."""
    results = []
    width = at_once or len(jobs)
    for start in range(0, len(jobs), width):
        batch = jobs[start:start + width]
        submitted = [(job, slots[i % len(slots)].submit(run_job, job)) for i, job in enumerate(batch)]
        for job, handle in submitted:
            try:
                results.append(handle.result())
            except Exception as err:  # submitit wraps the job's error: name the job and its log
                raise JobFailed(f"job {job.describe()} failed (log: {handle.paths.stderr}): "
                                   f"{' '.join(str(err).split())[-400:]}") from None
            report(f"  done: {job.describe()}")
    return results


def face_jobs(cfg: configuration.Config, params_file) -> list[Job]:
    """One job per video and frame rate of the corpus in use."""
    from .experiments.corpus import sewa_index

    c = cfg.common
    index = sewa_index(cfg.data_root, cfg.profile, cfg.seed, c.get("sewa_root"), c.get("sewa_split_file"))
    return [Job("faces", cfg.profile, params_file, video=str(v), fps=fps)
            for fps in face_rates(cfg) for v in index["video_path"]]


def _shared_start(step: str, row: dict):
    """What a configuration shares with others and makes on first use (None: nothing): the identity
    pre-training of Table 1's stand-in rows, the shared frozen prefix of Table 2's and the i3D's
    configurations in the CPU profiles (one per initialisation and frame rate)."""
    from .experiments.temporal import SHARED

    if step == "table1" and row["source"] == "identity":
        return row["backbone"]
    if step == "table2" and row["backbone"] == SHARED:
        return row["init"], row["fps"]
    if step == "i3d" and row.get("shared_prefix"):
        return row["source"], row["fps"]
    return None


def waves(step: str, cfg: configuration.Config, params_file, todo: list[int]) -> list[list[Job]]:
    """The missing configurations of ``step`` in two waves: first one per shared start (which it makes
    and caches), then every other (which finds it in the store), so that concurrent jobs never make
    the same artefact at once."""
    grid = grid_of(step, cfg)
    first = {}
    for i in todo:
        shared = _shared_start(step, grid[i])
        if shared is not None:
            first.setdefault(shared, i)
    lead = sorted(first.values())
    return [[Job(step, cfg.profile, params_file, index=i) for i in lead],
            [Job(step, cfg.profile, params_file, index=i) for i in todo if i not in lead]]


def run(target: str, profile: str, params_file=None, launcher: str = "local", gpus: int = 1,
        report=print) -> dict:
    """Run every configuration of ``target`` (and what it needs) not yet in the artefact store, as
    submitit jobs; returns, per step, how many jobs ran."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    params_file = str(Path(params_file).resolve()) if params_file else None
    cfg = _load(profile, params_file)
    slots = executors(launcher, gpus, resolve(cfg.artefact_root) / profile / "submitit")
    at_once = None if launcher == "slurm" else len(slots)
    ran = {}
    for step in NEEDS[target]:
        if step == "faces":
            batches = [face_jobs(cfg, params_file)]
            total = len(batches[0])
        elif step == "seeds":  # the shared starts they read were made by their grid's step
            inputs = Inputs(cfg)
            wanted = [r for s in SEEDED if s in NEEDS[target] for r in seed_runs(s, cfg, stored_rows(s, inputs))]
            batches = [[Job(step, profile, params_file, seed_run=r) for r in missing_seed_runs(wanted, inputs)]]
            total = len(wanted)
        else:
            todo, total = missing(step, Inputs(cfg)), len(grid_of(step, cfg))
            batches = waves(step, cfg, params_file, todo)
        ran[step] = sum(map(len, batches))
        reuse = " (a video already extracted reuses its crop-cache entry)" if step == "faces" else ""
        report(f"[{profile}] {step}: {ran[step]} of {total} to run ({launcher}, {len(slots)} at a time){reuse}")
        for wave in batches:
            if wave:
                launch(wave, slots, at_once, report)
        if step == "table1":  # Table 1's index of the whole grid, which the initialisations read
            train_table1(grid_of("table1", cfg), Inputs(cfg))
        if step in PRUNED and cfg.run.keep_weights == "chosen":
            pruned = prune_weights(step, stored_rows(step, Inputs(cfg)), cfg)
            report(f"[{profile}] {step}: weights of {len(pruned)} file(s) of configurations no later step "
                   "reads deleted (run: keep_weights: chosen)")
    return ran


# --------------------------------------------------------------------------------------------------
# The plan (--dry-run)
# --------------------------------------------------------------------------------------------------

CROP_BYTES = 100 * 80 * 3  # one uint8 crop of the paper's 100×80 (§3.2.1)
#: SEWA-DB's length the issue states (1,525 minutes of video), for the real corpus's line of the plan.
SEWA_DB_MINUTES = 1525
#: Weight files a finished configuration keeps, in units of the model's fp32 weights: ``best.pt``, and
#: Table 2's ``model.pt`` beside the trainer's ``best.pt`` (epoch checkpoints are deleted when a
#: configuration finishes, :func:`emorec.experiments.cache.drop_epoch_checkpoints`).
STORED_COPIES = {"table1": 1, "table2": 2, "i3d": 1}
#: ... and a configuration while it trains: its epoch checkpoint (weights and Adam's two moments) too.
TRAINING_COPIES = 3
MODEL_KIND = {"table1": "cnn2d", "table2": "cnn_lstm", "i3d": "i3d"}
KEEP_NOTE = {"all": "run: keep_weights: all, every configuration keeps its weights",
             "chosen": "run: keep_weights: chosen, Table 1 keeps the weights of the video models' RAF-DB "
                       "initialisation (one row per backbone), Table 2 and the i3D those of the configurations "
                       "chosen per label only"}


def measured_throughput(cfg: configuration.Config) -> dict | None:
    """``artefacts/<profile>/throughput.json`` (written by ``benchmarks/train_step.py --json``) when it
    was measured on this machine's kind of device, else None."""
    path = resolve(cfg.artefact_root) / cfg.profile / "throughput.json"
    if not path.is_file():
        return None
    measured = json.loads(path.read_text())
    return measured if measured.get("device") == _device_name() else None


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _weights_bytes(step: str, row: dict, cfg: configuration.Config) -> int:
    """fp32 bytes of the model of one configuration, counted on the meta device (no memory)."""
    import torch

    from .models import build_model

    if step == "table1":
        spec = dict(kind="cnn2d", backbone=row["backbone"], task="classification", width=row["width"],
                    pool_size=list(row["pool_size"]))
    elif step == "table2":
        width = 1.0 if row["backbone"] == "finetune" else cfg.table1.width  # frozen: Table 1's thin checkpoint
        spec = dict(kind="cnn_lstm", backbone=cfg.table2.backbone_2d, width=width,
                    hidden_size=row["hidden_size"], head_units=row["head_units"], pool_size=row["pool"])
    else:
        spec = dict(kind="i3d", backbone=row["backbone"], width=row["width"], preset="C2")
    with torch.device("meta"):
        model = build_model(spec, pretrained=False)
    return 4 * sum(p.numel() for p in model.parameters())


def _clips(n_frames: int, seq_len: int, overlap: float) -> int:
    step = max(1, round(seq_len * (1 - overlap)))  # DESIGN §6: step = round(SL × (1 − OR))
    return 0 if n_frames < seq_len else (n_frames - seq_len) // step + 1


def _row_cost(step: str, row: dict, cfg: configuration.Config) -> tuple[int, int]:
    """(frames trained, optimisation steps) of one configuration running all its epochs."""
    if step == "table1":
        n = round(cfg.corpus.rafdb["n_train"] * (1 - row["val_fraction"]))
        epochs = row["epochs"] + (row["pretrain"]["epochs"] if row["pretrain"] else 0)
        return epochs * n, epochs * math.ceil(n / row["batch_size"])
    sewa = cfg.corpus.sewa
    clips = sewa["n_train"] * _clips(int(sewa["duration_s"] * row["fps"]), row["seq_len"], row["overlap"])
    return row["epochs"] * clips * row["seq_len"], row["epochs"] * math.ceil(clips / row["batch_size"])


def _kept(step: str, cfg: configuration.Config, n_configurations: int) -> int:
    """How many configurations of Table 2 or the i3D keep their weights under ``run: keep_weights`` (at
    most the ones chosen per label: per initialisation and frame rate in Table 2, per pair in the i3D)."""
    if cfg.run.keep_weights == "all":
        return n_configurations
    groups = len(cfg.table2.inits) * len(cfg.table2.fps_values) if step == "table2" else len(cfg.i3d.pairs)
    return min(n_configurations, 2 * groups)  # two labels


def _kept_bytes(step: str, grid: list[dict], cfg: configuration.Config) -> int:
    """fp32 bytes of the weights a finished grid keeps under ``run: keep_weights`` (upper bounds). Table 1
    counts each row's own model (its backbones differ) and, with ``chosen``, one row per backbone that
    has rows starting from VGG-Face (:func:`read_folders`)."""
    if step == "table1":
        from .experiments.finetuning import FROM_VGGFACE

        kept = grid if cfg.run.keep_weights == "all" else list(
            {row["backbone"]: row for row in grid if row["source"] in FROM_VGGFACE}.values())
        return sum(_weights_bytes(step, row, cfg) for row in kept)
    return _kept(step, cfg, len(grid)) * _weights_bytes(step, grid[0], cfg) if grid else 0


def grid_plan(step: str, cfg: configuration.Config, frames_per_s: float) -> dict:
    """Configurations, frames per epoch, optimisation steps, disk and hours of one grid (upper bounds:
    every configuration runs all its epochs; early stopping ends most sooner). Disk: the weights the
    grid keeps under ``run: keep_weights``."""
    grid = grid_of(step, cfg)
    costs = [_row_cost(step, row, cfg) for row in grid]
    return {"grid": step, "configurations": len(grid), "frames per epoch (first)": _first_epoch(step, grid, cfg),
            "optimisation steps": sum(c[1] for c in costs), "frames trained": sum(c[0] for c in costs),
            "GB": _kept_bytes(step, grid, cfg) * STORED_COPIES[step] / 1e9,
            "GPU-hours": sum(c[0] for c in costs) / frames_per_s / 3600}


def seeds_plan(step: str, cfg: configuration.Config, frames_per_s: float) -> dict:
    """The ``seeds`` step after grid ``step`` (:func:`seed_runs`), before its choice is known: at most
    two chosen configurations per group (one per label) × (``n_seeds`` − 1), plus Table 2's baseline
    (two labels × ``n_seeds``), each costed as the grid's dearest configuration (an upper bound)."""
    grid = grid_of(step, cfg)
    if step == "table2":
        groups, n_seeds = len(cfg.table2.inits) * len(cfg.table2.fps_values), cfg.table2.n_seeds
        runs = 2 * groups * (n_seeds - 1) + 2 * n_seeds
    else:
        runs = 2 * len(cfg.i3d.pairs) * (cfg.i3d.n_seeds - 1)
    frames, steps = max((_row_cost(step, row, cfg) for row in grid), default=(0, 0))
    weights = _weights_bytes(step, grid[0], cfg) if grid else 0
    return {"grid": f"seeds ({step})", "configurations": runs, "frames per epoch (first)": _first_epoch(step, grid, cfg),
            "optimisation steps": runs * steps, "frames trained": runs * frames,
            "GB": runs * weights * STORED_COPIES[step] / 1e9, "GPU-hours": runs * frames / frames_per_s / 3600}


def _first_epoch(step: str, grid: list[dict], cfg: configuration.Config) -> int:
    if not grid:
        return 0
    row = grid[0]
    if step == "table1":
        return round(cfg.corpus.rafdb["n_train"] * (1 - row["val_fraction"]))
    sewa = cfg.corpus.sewa
    return sewa["n_train"] * _clips(int(sewa["duration_s"] * row["fps"]), row["seq_len"], row["overlap"]) * row["seq_len"]


def faces_plan(cfg: configuration.Config, frames_per_s: float) -> list[dict]:
    """Face extraction: sampled frames, crop-cache disk and hours, for this profile's corpus and for
    the real SEWA-DB (1,525 minutes) at the same rates."""
    sewa = cfg.corpus.sewa
    seconds = (sewa["n_train"] + sewa["n_val"] + sewa["n_test"]) * sewa["duration_s"]
    rows = []
    for name, total in ((f"{cfg.profile} corpus" if not cfg.common.get("sewa_root") else "sewa_root", seconds),
                        ("real SEWA-DB (1,525 min)", SEWA_DB_MINUTES * 60)):
        for fps in face_rates(cfg):
            n = int(total * fps)
            rows.append({"corpus": name, "fps": fps, "frames": n, "crop cache GB": n * CROP_BYTES / 1e9,
                         "hours": n / frames_per_s / 3600})
    return rows


def plan(target: str, cfg: configuration.Config) -> str:
    """The ``--dry-run`` report: per grid configurations, frames, steps, disk and time, and totals."""
    import pandas as pd

    measured = measured_throughput(cfg) or {}
    found = dict(measured.get("frames_per_s") or {})
    if measured.get("mtcnn_frames_per_s"):
        found["mtcnn"] = measured["mtcnn_frames_per_s"]
    rates = {**cfg.run.assumed_frames_per_s, "mtcnn": cfg.run.assumed_mtcnn_frames_per_s, **found}
    assumed = sorted(set(rates) - set(found))
    where = f" on {measured['device']} ({measured.get('source', 'benchmarks/train_step.py')})" if found else ""
    lines = [f"plan for `emorec run {target} --profile {cfg.profile}` (nothing is run)",
             f"frames/s: {', '.join(f'{k} {v:g}' for k, v in rates.items())}",
             f"  MEASURED{where}: {', '.join(sorted(found)) or 'none'}; ASSUMED (params/{cfg.profile}.yaml, "
             f"run: assumed_*, not measured on this device): {', '.join(assumed) or 'none'}", ""]
    steps = NEEDS[target]
    total_hours = total_gb = 0.0
    if "faces" in steps:
        faces = pd.DataFrame(faces_plan(cfg, rates["mtcnn"]))
        lines += ["faces (one job per video and frame rate):", faces.to_string(index=False, float_format="{:.2f}".format), ""]
        mine = faces[faces["corpus"] != "real SEWA-DB (1,525 min)"]
        total_hours += mine["hours"].sum()
        total_gb += mine["crop cache GB"].sum()
    grids = [grid_plan(s, cfg, float(rates[MODEL_KIND[s]])) for s in steps if s in MODEL_KIND]
    grids += [seeds_plan(s, cfg, float(rates[MODEL_KIND[s]])) for s in SEEDED if "seeds" in steps and s in steps]
    if grids:
        table = pd.DataFrame(grids)
        lines += ["grids (upper bounds: every configuration runs all its epochs; disk of the finished "
                  "configurations: best.pt, and Table 2's model.pt; a configuration in training holds "
                  f"{TRAINING_COPIES}x its weights more, its epoch checkpoint; {KEEP_NOTE[cfg.run.keep_weights]}):",
                  table.to_string(index=False, float_format="{:.2f}".format), ""]
        total_hours += table["GPU-hours"].sum()
        total_gb += table["GB"].sum()
    used = {MODEL_KIND.get(step, "mtcnn") for step in steps if step != "seeds"}  # the rates this plan's totals rest on
    basis = "measured" if used <= set(found) else ("ASSUMED" if not used & set(found) else "partly ASSUMED")
    lines.append(f"total: {total_hours:.1f} GPU-hours ({total_hours / 24:.1f} GPU-days), {total_gb:.1f} GB "
                 f"— computed from the frames/s above ({basis})")
    return "\n".join(lines)
