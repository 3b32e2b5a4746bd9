"""The ``emorec`` command: the book's tools from a shell.

``emorec synth``     generate the embedded synthetic corpora (SEWA-like videos, RAF-like images)
``emorec split``     the paper's train/validation/test protocol for a raw SEWA-DB copy → a split file
``emorec extract``   faces of a video or a folder of videos → the crop cache (MTCNN, §3.2.1)
``emorec train``     one configuration of Table 1, 2 or the i3D grid (by name, or from a YAML file)
``emorec run``       a grid's missing configurations as submitit jobs (local or SLURM); --dry-run: the plan
``emorec evaluate``  a checkpoint on a split, with the paper's metrics and post-processing (§3.4, §4.2)
``emorec predict``   valence/arousal of any video: CSV, figures, optional annotated MP4 (§6, ours)
``emorec book``      execute the chapters with papermill and build the HTML (what ``make book`` runs)

Mistakes in the input (a missing or unreadable video, a file that is not one of our checkpoints, a
video without a face, a bad YAML file) end with one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import math
import sys
import time
from pathlib import Path

from . import book, storage
from .run import JobFailed
from .paths import project_root

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
TABLES = ("table1", "table2", "i3d")
TABLE2_CHAPTER = "04_4_cnn_lstm"

EXIT_STATUS = """exit status:
  0    done
  1    a problem with the input or the system (a missing, unreadable or corrupt file, a folder that
       cannot be written, a full disk, ...): one line on stderr naming the file and the reason
       (--traceback shows the whole traceback instead)
  2    a usage error (unknown command or option, a missing argument, an option's value out of its
       range, e.g. --fps nan): one line on stderr naming the option
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM), after the same clean-up as for Ctrl-C"""


# --------------------------------------------------------------------------------------------------
# synth
# --------------------------------------------------------------------------------------------------

def _synth(args) -> int:
    from .data.synthetic import ensure_corpora

    start = time.perf_counter()
    paths = ensure_corpora(args.data_root, args.profile, args.seed, args.workers)
    print(f"SEWA-like videos: {paths['sewa']}\nRAF-like images: {paths['rafdb']}\n"
          f"ready in {time.perf_counter() - start:.1f} s")
    return 0


# --------------------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------------------

def _split(args) -> int:
    from .data.sewa import write_paper_split

    table = write_paper_split(args.sewa_root, args.out, partition_list=args.partitions)
    counts = table.groupby("split").agg(videos=("video", "size"), subjects=("subject", "nunique"))
    print(counts.reindex(["train", "validation", "test"]).to_string())
    print(f"split file: {args.out} (give it as sewa_split_file)")
    return 0


# --------------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------------

def video_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else the video files directly inside the folder (sorted)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such video file or folder")
    if path.is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not found:
        raise ValueError(f"{path}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    return found


def _extract(args) -> int:
    from .data.faces import FaceExtractor, extract_corpus

    videos = video_files(Path(args.path))
    extractor = FaceExtractor(min_face_size=args.min_face_size, track_every=args.track_every or None)
    tracks = extract_corpus(videos, args.out, fps=args.fps, crop_size=tuple(args.crop_size), extractor=extractor,
                            progress=True)
    for name, track in tracks.items():
        which = "" if track.track is None else f", face track {track.track} of {len(track.meta['tracks'])}"
        print(f"{name}: {len(track.frames)} sampled frames, {len(track.crops)} faces "
              f"(keep rate {track.keep_rate:.1%}{which}) -> {track.path}")
    return 0


# --------------------------------------------------------------------------------------------------
# train: named configurations of the book's grids, or one from a YAML file
# --------------------------------------------------------------------------------------------------

def profile_config(profile: str, params_file=None):
    """The typed configuration of ``profile`` (``params/<profile>.yaml`` with ``params_file`` over it,
    :func:`emorec.config.load`); the weight locations it names are exported for the library."""
    from . import config

    cfg = config.load(profile, params_file)
    book.set_weight_environment(cfg.common)
    return cfg


def named_grid(table: str, profile: str, params_file=None) -> list[dict]:
    """The configurations of ``table`` (``table1``, ``table2`` or ``i3d``) that the book runs in ``profile``."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    cfg = profile_config(profile, params_file)
    if table == "table1":
        from .experiments.finetuning import table1_grid

        return table1_grid(cfg.table1)
    if table == "table2":
        from .experiments.temporal import table2_configurations

        return table2_configurations(cfg.table2, cfg.seed)
    from .experiments.i3d import i3d_grid

    return i3d_grid(cfg.i3d)


def load_train_yaml(path: Path) -> dict:
    """A YAML file holding one configuration: ``table`` (table1 | table2 | i3d), ``config`` (a mapping,
    as ``emorec train <table>:<profile>:<i> --show`` prints it) and optionally ``profile``."""
    import yaml

    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a configuration file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(spec, dict) or spec.get("table") not in TABLES or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{path}: expected a mapping with 'table' (one of {', '.join(TABLES)}) and 'config' "
                         f"(a mapping of settings)")
    unknown = set(spec) - {"table", "config", "profile"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (allowed: table, config, profile)")
    return spec


def resolve_configuration(name: str, profile: str | None,
                          params_file=None) -> tuple[str, str, dict | None, list[dict]]:
    """``table:profile[:index]`` or a YAML file → (table, profile, configuration or None, its grid)."""
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        spec = load_train_yaml(Path(name))
        profile = spec.get("profile") or profile or "cpu"
        grid = named_grid(spec["table"], profile, params_file)
        missing = sorted(set(grid[0]) - set(spec["config"]) - {"preset", "model", "base_model"}) if grid else []
        if missing:
            raise ValueError(f"{name}: the {spec['table']} configuration lacks {missing}")
        return spec["table"], profile, spec["config"], grid
    parts = name.split(":")
    if len(parts) not in (2, 3) or parts[0] not in TABLES:
        raise ValueError(f"{name!r} is neither a YAML file nor a name like table2:cpu:0 "
                         f"(<{'|'.join(TABLES)}>:<profile>[:<index>])")
    grid = named_grid(parts[0], parts[1], params_file)
    if len(parts) == 2:
        return parts[0], parts[1], None, grid
    try:
        index = int(parts[2])
        config = grid[index]
    except (ValueError, IndexError):
        raise ValueError(f"{name!r}: index must be 0..{len(grid) - 1} for the {parts[1]} grid of {parts[0]}") from None
    return parts[0], parts[1], config, grid


def _describe(table: str, config: dict) -> str:
    keys = {"table1": ("backbone", "source", "block", "width"),
            "table2": ("init", "fps", "seq_len", "overlap", "fusion"),
            "i3d": ("backbone", "source", "preset", "inflation", "init", "mask_center", "dilation", "multiplier")}[table]
    return ", ".join(f"{k}={config.get(k)}" for k in keys)


def _train_row(table: str, row: dict, cfg) -> str:
    """Train (or load) one configuration as `emorec run` does; print its scores; the weights file."""
    from .experiments import ArtefactStore
    from .experiments.finetuning import TABLE
    from .run import TRAIN, Inputs

    result = TRAIN[table]([row], Inputs(cfg, progress=True))[0]
    if result.get("status", "ok") != "ok":
        raise ValueError(f"this configuration cannot run: {result['status']}")
    if table == "table1":
        print(f"test accuracy {result['accuracy']:.1f}% (validation {result['val_accuracy']:.1f}%)")
        return str(ArtefactStore(cfg.artefact_root, cfg.profile).root / TABLE / result["key"] / "best.pt")
    _print_scores(result)
    return str(Path(result["folder"]) / ("model.pt" if table == "table2" else "best.pt"))


def _print_scores(row: dict) -> None:
    for label in ("valence", "arousal"):
        print(f"{label}: test CCC {row[f'{label}_CCC']:.3f} [{row[f'{label}_CCC_lo']:.3f}, "
              f"{row[f'{label}_CCC_hi']:.3f}] after post-processing (raw {row[f'raw_{label}_CCC']:.3f}); "
              f"validation CCC {row[f'val_pp_{label}_CCC']:.3f}")


def _train(args) -> int:
    import yaml

    table, profile, config, grid = resolve_configuration(args.configuration, args.profile, args.params)
    if config is None:
        print(f"{len(grid)} configurations of {table} in the {profile} profile "
              f"(train one with `emorec train {table}:{profile}:<index>`):")
        for i, row in enumerate(grid):
            print(f"  {i:3d}  {_describe(table, row)}")
        return 0
    if args.show:
        print(yaml.safe_dump({"table": table, "profile": profile, "config": config}, sort_keys=False), end="")
        return 0
    cfg = profile_config(profile, args.params)
    if args.data_root or args.artefact_root:
        common = {**cfg.common, **{k: v for k, v in (("data_root", args.data_root),
                                                     ("artefact_root", args.artefact_root)) if v}}
        cfg = dataclasses.replace(cfg, common=common)
    print(f"training {table} ({profile}): {_describe(table, config)}", flush=True)
    checkpoint = _train_row(table, config, cfg)
    pruned = "" if Path(checkpoint).is_file() else " (deleted: no later step reads it, run: keep_weights: chosen)"
    print(f"checkpoint: {checkpoint}{pruned}")
    return 0


# --------------------------------------------------------------------------------------------------
# run: the grids as submitit jobs, or the plan
# --------------------------------------------------------------------------------------------------

def _run(args) -> int:
    from . import run

    if args.dry_run:
        print(run.plan(args.target, profile_config(args.profile, args.params)))
        return 0
    run.run(args.target, args.profile, args.params, launcher=args.launcher, gpus=args.gpus)
    return 0


# --------------------------------------------------------------------------------------------------
# evaluate and predict
# --------------------------------------------------------------------------------------------------

def _evaluate(args) -> int:
    from .experiments.checkpoint_eval import evaluate_checkpoint
    from .experiments.corpus import prepare_corpus
    from .predict import DEFAULT_FPS, load_predictor

    predictor = load_predictor(args.checkpoint)  # a bad checkpoint fails before any data work
    fps = args.fps or predictor.trained.get("fps", DEFAULT_FPS)
    # The data of Table 2's chapter in this profile (and --params) when run in a clone; options given
    # on the line win.
    in_clone = (project_root() / "params" / f"{args.profile}.yaml").is_file()
    values = (profile_config(args.profile, args.params).chapter_values(TABLE2_CHAPTER) if in_clone or args.params
              else {"data_root": "data", "sewa_root": None, "sewa_split_file": None, "seed": 0})
    data = {key: getattr(args, key) if getattr(args, key) is not None else values[key]
            for key in ("data_root", "sewa_root", "sewa_split_file", "seed")}
    corpus = prepare_corpus(data["data_root"], args.profile, data["seed"], fps=fps, sewa_root=data["sewa_root"],
                            split_file=data["sewa_split_file"], progress=True)
    table = evaluate_checkpoint(args.checkpoint, corpus, args.split, seq_len=args.seq_len, overlap=args.overlap,
                                n_boot=args.n_boot, seed=data["seed"], progress=True)
    print(f"{Path(args.checkpoint)} on the {args.split} videos of {corpus.description} at {fps:g} fps "
          f"(post-processing fitted on train/validation):")
    print(table.to_string(index=False, float_format="{:.3f}".format))
    return 0


def _predict_checkpoints(args):
    """The checkpoint(s) to predict with: --checkpoint, --model PATH, or the book's per label."""
    from .experiments.evaluation import BOOK_MODELS, book_checkpoints

    if args.checkpoint is not None and args.model is not None:
        raise ValueError("give either --checkpoint or --model, not both")
    if args.checkpoint is not None:
        return args.checkpoint
    model = args.model or "best"
    if model not in ("best", *BOOK_MODELS):
        return model  # a checkpoint path
    artefact_root = args.artefact_root or "artefacts"
    return book_checkpoints(artefact_root, args.profile, model)


@contextlib.contextmanager
def _importing():
    """Imports without the cyclic garbage collector, their objects then frozen (ours): torch, pandas
    and OpenCV create some 250,000 objects, and each full collection while they are imported scans
    them all (measured: 0.9 s of 5.5 s of imports on a loaded 2-core machine); frozen, later
    collections skip them. Module objects live as long as the process anyway."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _predict(args) -> int:
    from .plots import FigureWorker  # before torch: its process imports matplotlib meanwhile

    with FigureWorker() as figures:
        return _predict_with(args, figures)


def _predict_with(args, figures) -> int:
    with _importing():
        from .data.faces import FaceExtractor
        from .predict import load_predictors, predict_to_folder

    if args.all_faces and not args.track_every:
        raise ValueError("--all-faces needs face tracking (--track-every K > 0): without it there are no tracks")
    predictors = load_predictors(_predict_checkpoints(args))  # a bad checkpoint fails before any work
    for label, predictor in _distinct_models(predictors).items():
        print(f"{label}: {predictor.kind} {predictor.checkpoint}; training data: {predictor.training_data()}")
        if predictor.synthetic_warning():
            print(predictor.synthetic_warning(), file=sys.stderr)
    result, files = predict_to_folder(args.video, None, args.out, annotated_video=args.mp4, progress=True,
                                      figures=figures, fps=args.fps, seq_len=args.seq_len, overlap=args.overlap,
                                      cache_dir=args.cache, postprocess=args.postprocess, predictors=predictors,
                                      extractor=FaceExtractor(min_face_size=args.min_face_size,
                                                              track_every=args.track_every or None),
                                      allow_no_face=args.allow_no_face, all_faces=args.all_faces)
    s, frames = result.settings, result.frames
    if s["track"] is not None:
        t = s["track"]
        others = f"; all {len(s['tracks'])} tracks written (--all-faces)" if args.all_faces else ""
        print(f"face track {t['track']}, the largest consistent one: {t['frames']} frames, "
              f"{t['first_time']:.1f}-{t['last_time']:.1f} s{others}")
    if "track" in frames.columns:
        frames = frames[frames["track"] == (s["track"] or {}).get("track", -1)]
    spent = sum(result.timings.values())
    print(f"{Path(args.video).name}: {len(frames)} frames at {s['fps']:g} fps, face in {s['faces_found']:.0%}, "
          f"values for {s['frames_with_value']:.0%} (SL {s['seq_len']}, OR {s['overlap']:g}; "
          f"post-processing {'applied' if s['postprocess'] else 'none'})")
    means = (f"mean valence {frames['valence'].mean():+.3f}, mean arousal {frames['arousal'].mean():+.3f}"
             if frames["valence"].notna().any() else "no values (no face found)")
    print(f"{means}; {s['duration_s'] / spent:.1f}x real time (faces {result.timings['faces']:.1f} s, "
          f"model {result.timings['model']:.1f} s)")
    for path in files.values():
        print(f"  {path}")
    return 0


def _distinct_models(predictors: dict) -> dict:
    """``{"valence and arousal": p}`` for one model, else ``{label: p}``."""
    if len({p.checkpoint for p in predictors.values()}) == 1:
        return {" and ".join(predictors): next(iter(predictors.values()))}
    return predictors


# --------------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------------

def _first_paragraph(text: str | None) -> str:
    return (text or "").strip().split("\n\n")[0]


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (exit status 2) pointing to ``--help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")


def _number(kind: type, low: float, low_open: bool = False, high: float = math.inf):
    """An argparse type: a finite ``kind`` above ``low`` (or from ``low`` on) and below ``high``;
    argparse's error names the option."""
    expected = f"{'an integer' if kind is int else 'a finite number'} {'>' if low_open else '>='} {low:g}" + \
        (f" and < {high:g}" if high < math.inf else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and value < high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}")
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE = _number(float, 0, low_open=True)
COUNT = _number(int, 1)
SEED = _number(int, 0)
OVERLAP = _number(float, 0, high=1)  # §3.2.2: OR in [0, 1)
FACE_SIZE = _number(float, 12)  # MTCNN's smallest cell (emorec.data.faces.FaceExtractor)
TRACK_EVERY = _number(int, 0)  # 0: no tracking
DEFAULT_TRACK_EVERY = 10  # predict's default (emorec.data.faces.FaceTracker; chapter 3.2 says why)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emorec", description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                     epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("synth", help="generate the embedded synthetic corpora",
                            description="Generate, from a seed, the SEWA-like video corpus and the RAF-like image "
                                        "set into <data-root>/<profile>/ (in the real datasets' formats; reused "
                                        "when already there).")
    p.add_argument("--profile", default="cpu", choices=book.PROFILES, help="corpus size (default: %(default)s)")
    p.add_argument("--data-root", default="data", help="data folder, relative to the repository root (default: %(default)s)")
    p.add_argument("--seed", type=SEED, default=0, help="seed (default: %(default)s)")
    p.add_argument("--workers", type=COUNT, default=None, help="processes (default: min(2, CPUs))")
    p.set_defaults(run=_synth)

    p = commands.add_parser("split", help="the paper's split protocol for a raw SEWA-DB copy → split file",
                            description="Write the paper's protocol (§4.1) for a raw SEWA-DB copy as a split file "
                                        "(CSV video,split): with --partitions (SEWA's or AVEC's partition list, "
                                        "lines '<video> <Train|Devel|Test>') Devel becomes test, Train is split "
                                        "by subject into train and validation 28:6 and Test is left unused; "
                                        "without it the subjects are split 28:6:14, culture by culture. "
                                        "Deterministic.")
    p.add_argument("sewa_root", help="the SEWA-DB folder (videos and *_Aligned.csv labels anywhere below)")
    p.add_argument("--out", required=True, help="the split file to write")
    p.add_argument("--partitions", default=None, help="partition list (<video> <Train|Devel|Test> per line)")
    p.set_defaults(run=_split)

    p = commands.add_parser("extract", help="faces of a video or a folder → crop cache",
                            description="Detect the face in each sampled frame with MTCNN, crop it and cache the "
                                        "crops (§3.2.1): one entry <out>/<video stem>-<hash>/ per video (the "
                                        "hash: 12 hex digits of the video's SHA-1), holding crops.npy, "
                                        "frames.csv (one row per sampled frame), meta.json and emorec's "
                                        "marker .emorec.json. --out is a folder emorec adds entries to; "
                                        "nothing else in it is touched. An entry is reused when the video and "
                                        "settings are unchanged and its files match meta.json, else extracted "
                                        "again; resumable; a second run on the same video waits for the "
                                        "first and reuses its entry.")
    p.add_argument("path", help="a video file, or a folder of video files")
    p.add_argument("--out", required=True, help="cache root")
    p.add_argument("--fps", type=POSITIVE, default=10.0, help="sampling rate in frames per second (default: %(default)s)")
    p.add_argument("--crop-size", type=COUNT, nargs=2, default=[100, 80], metavar=("H", "W"),
                   help="crop height and width (default, the paper's: 100 80)")
    p.add_argument("--min-face-size", type=FACE_SIZE, default=80, help="smallest face searched for, in pixels (default: %(default)s)")
    p.add_argument("--track-every", type=TRACK_EVERY, default=0, metavar="K",
                   help="full MTCNN every K-th sampled frame, the faces tracked in between, and each video's "
                        "largest consistent face track cached (as predict); 0 (default): the full cascade on "
                        "every frame, the most probable face of each")
    p.set_defaults(run=_extract)

    p = commands.add_parser("train", help="train one configuration of a table",
                            description="Train (or load from the artefact cache) one configuration of the book's "
                                        "grids: Table 1 (table1), Table 2's 2D-CNN-LSTM (table2) or the i3D "
                                        "grid of Tables 4-6 (i3d). Name it <table>:<profile>:<index>, e.g. "
                                        "table2:cpu:0 (entry 0 of the cpu grid; <table>:<profile> alone lists "
                                        "the grid), or give a YAML file with 'table', 'config' and optionally "
                                        "'profile' (`--show` prints one to start from). Results go to "
                                        "artefacts/<profile>/, where the book finds them. Table 2 and i3D start "
                                        "from Table 1's checkpoints: train those first (or run chapter 4.3).")
    p.add_argument("configuration", help="table2:cpu:0, table1:smoke, or a YAML file")
    p.add_argument("--profile", default=None, choices=book.PROFILES,
                   help="profile of a YAML configuration without one (default: cpu)")
    p.add_argument("--show", action="store_true", help="print the configuration as YAML and stop")
    p.add_argument("--data-root", default=None, help="data folder (default: the book's)")
    p.add_argument("--artefact-root", default=None, help="artefact folder (default: the book's)")
    p.add_argument("--params", default=None, metavar="FILE.yaml",
                   help="parameters file merged over the profile, as for the book (data roots, split file, weights)")
    p.set_defaults(run=_train)

    p = commands.add_parser("run", help="run a grid's missing configurations as submitit jobs (or --dry-run: the plan)",
                            description="Run every configuration of a grid that is not yet in the artefact store, "
                                        "each as one submitit job, in dependency order (faces; Table 1; the video "
                                        "models' initialisations; Table 2 and i3D): --launcher local runs them on "
                                        "this machine, one GPU per job, --gpus at a time (one at a time without "
                                        "CUDA); --launcher slurm submits them to SLURM. A finished configuration "
                                        "is loaded, never retrained; an interrupted one resumes from its last "
                                        "epoch checkpoint. --dry-run prints the plan: per grid configurations, "
                                        "frames, optimisation steps, disk and GPU-hours.")
    p.add_argument("target", choices=("faces", "table1", "table2", "i3d", "all"), help="what to run")
    p.add_argument("--profile", default="cpu", choices=book.PROFILES, help="parameter set (default: %(default)s)")
    p.add_argument("--params", default=None, metavar="FILE.yaml", help="parameters file merged over the profile")
    p.add_argument("--launcher", default="local", choices=("local", "slurm"), help="where jobs run (default: %(default)s)")
    p.add_argument("--gpus", type=COUNT, default=1, help="local: GPUs used at once, one job each (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    p.set_defaults(run=_run)

    p = commands.add_parser("evaluate",
                            help="score a checkpoint on a split (the paper's metrics)",
                            description="Predict every video of the corpus with a checkpoint, fit the post-"
                                        "processing of §3.4 on the train and validation videos, and print CCC "
                                        "(with a 95% bootstrap interval over videos), PCC, MAE and MAPE (§4.2) "
                                        "on the chosen split, before and after post-processing.")
    p.add_argument("checkpoint", help="a model.pt or best.pt written by the book or `emorec train`")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"),
                   help="split to score (default: %(default)s)")
    p.add_argument("--profile", default="cpu", choices=book.PROFILES, help="which synthetic corpus (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="data folder (default: the book's)")
    p.add_argument("--sewa-root", default=None, help="a real SEWA-DB copy instead of the synthetic corpus "
                                                     "(default: the book's, from the profile and --params)")
    p.add_argument("--sewa-split-file", default=None, help="CSV video,split for --sewa-root")
    p.add_argument("--seed", type=SEED, default=None, help="seed (default: the book's)")
    p.add_argument("--params", default=None, metavar="FILE.yaml",
                   help="parameters file merged over the profile, as for the book (data roots, split file, weights)")
    p.add_argument("--fps", type=POSITIVE, default=None, help="sampling rate (default: the model's, else 10)")
    p.add_argument("--seq-len", type=COUNT, default=None, help="frames per clip (default: the model's)")
    p.add_argument("--overlap", type=OVERLAP, default=None, help="overlapping ratio of clips (default: 0.5)")
    p.add_argument("--n-boot", type=COUNT, default=1000, help="bootstrap resamples for the CCC interval (default: %(default)s)")
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("predict", help="valence/arousal of any video",
                            description="Per-frame valence and arousal of a video with the book's models. "
                                        "Without --checkpoint, each label is predicted by the best temporal "
                                        "model of the latest book build of --profile under --artefact-root "
                                        "(chosen on validation, as chapters 5 and 6; run `make book` first); "
                                        "--model chooses another. The data each model was trained on is "
                                        "printed and written into settings.json and the figures; a model "
                                        "trained on synthetic faces only is warned about. "
                                        "Writes into --out: predictions.csv (one row per sampled frame: time, "
                                        "face found and box, valence, arousal, the values before post-"
                                        "processing, the nearest clip's values; empty where no face was found), "
                                        "clips.csv, timeseries.png, circumplex.png (the trajectory, coloured by "
                                        "time), settings.json and, with --mp4, annotated.mp4 (face box and a "
                                        "live valence/arousal marker). --out must be new, empty, or the output "
                                        "of an earlier predict (marked .emorec.json): it then ends holding "
                                        "exactly this run's files, swapped in at the end; a folder holding "
                                        "anything else is refused before any work. --cache is a folder emorec "
                                        "adds crop-cache entries to (as `emorec extract --out`).")
    p.add_argument("video", help="the video file")
    p.add_argument("--checkpoint", default=None,
                   help="a model.pt or best.pt written by the book or `emorec train` (default: the book's, see --model)")
    p.add_argument("--model", default=None, metavar="best|cnn_lstm|i3d|PATH",
                   help="best (default): per label, the book's better temporal model on validation; cnn_lstm "
                        "or i3d: that chapter's best configuration per label; or a checkpoint path")
    p.add_argument("--profile", default="cpu", choices=book.PROFILES, help="the book build whose models are used (default: %(default)s)")
    p.add_argument("--artefact-root", default=None, help="where the book's artefacts are (default: artefacts)")
    p.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    p.add_argument("--fps", type=POSITIVE, default=None, help="sampling rate (default: the model's, else 10)")
    p.add_argument("--seq-len", type=COUNT, default=None,
                   help="frames per clip (default: the model's, from its artefact folder)")
    p.add_argument("--overlap", type=OVERLAP, default=None, help="overlapping ratio of clips (default: 0.5)")
    p.add_argument("--postprocess", default="auto", choices=("auto", "none"),
                   help="auto (default): the §3.4 post-processing recorded beside the checkpoint, if any; none: raw model output")
    p.add_argument("--mp4", action="store_true", help="also write annotated.mp4")
    p.add_argument("--cache", default=None, help="keep the face crops in this folder (default: temporary)")
    p.add_argument("--min-face-size", type=FACE_SIZE, default=80, help="smallest face searched for, in pixels (default: %(default)s)")
    p.add_argument("--allow-no-face", action="store_true",
                   help="a video without any face gives an all-empty table (exit 0) instead of an error")
    p.add_argument("--track-every", type=TRACK_EVERY, default=DEFAULT_TRACK_EVERY, metavar="K",
                   help="full MTCNN every K-th sampled frame, the faces tracked in between (§3.2.1 for long "
                        "videos); the series is the largest consistent face track (most frames, then largest "
                        "mean box); 0: the full cascade on every frame, its most probable face (default: %(default)s)")
    p.add_argument("--all-faces", action="store_true",
                   help="one series per face track: predictions.csv and clips.csv get a first column 'track', "
                        "timeseries.png one line per track, settings.json lists the tracks (needs tracking)")
    p.set_defaults(run=_predict)

    p = commands.add_parser("book",
                            help="execute the chapters with papermill and build the HTML (what `make book` runs)",
                            description=_first_paragraph(book.__doc__))
    book.add_arguments(p)
    p.set_defaults(run=book.run_from_args)
    return parser


def _one_line(err: BaseException) -> str:
    """The error as one line; an OSError as ``<path>: <the system's reason>``."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        target = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{err.filename}{target}: {err.strerror}"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    if isinstance(err, MemoryError):
        return f"out of memory{': ' + str(err) if str(err) else ''}"
    return " ".join(str(err).split()) or type(err).__name__


# What a user's input or the system can cause: reported in one line. Anything else is a bug in
# emorec and keeps its traceback.
EXPECTED_ERRORS = (ValueError, OSError, MemoryError, book.BookError, JobFailed)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emorec`` command; returns the exit status (see ``EXIT_STATUS``)."""
    args = build_parser().parse_args(argv)
    storage.exit_on_sigterm(f"emorec {args.command}")  # clean up as for Ctrl-C, exit status 143
    try:
        return args.run(args)
    except EXPECTED_ERRORS as err:
        if args.traceback:
            raise
        print(f"emorec {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"emorec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
