"""Tables 3-6 (§3.3.2, §4.5): inflated 3D-CNNs on pixel clips, one cached run per configuration.

A configuration (a *row*) is a base model (VGG-11-BN, VGG-16, VGG-16-BN, ResNet50), the source of its
2D weights, and Table 3's inflation options (inflation, initialisation of the non-centre slices,
masking, temporal dilation, target multiplier). :func:`run_i3d` trains it on clips of the face crops
with early stopping on validation CCC, predicts every split, spreads clip predictions over their
frames and scores them with :func:`emorec.experiments.evaluation.evaluate_splits` (§3.4 post-processing
fitted on train/validation, test CCC with a bootstrap interval). :func:`best_per_label` then picks,
per base model × source and per label, the configuration with the best *validation* CCC (Tables 4-6).

Sources of the 2D weights (the paper's "Dataset for Initialization"):

- ``"raf"``: the paper's "RAF-DB", the Table-1 model with the best validation accuracy among those that
  start from VGG-Face (:func:`emorec.experiments.finetuning.best_expression_checkpoint`; never scratch);
- ``"identity"``: the paper's "VGG-Face" as the video chapters give it
  (:func:`~emorec.experiments.finetuning.video_initialisation`): the real ``vgg_face_dag.pth`` when
  present, else the identity-classification pre-training of Table 1, our synthetic stand-in;
- ``"imagenet"``, ``"vggface"``: the published weights; they cannot be downloaded here, so such a row
  reports the models' own FileNotFoundError text, and runs for real when the file is present.

Decisions the paper leaves open: the clips use §4.5's SL 64, OR 0.8 at 10 fps and batch 8, with mean
label fusion (Table 2's best SL/OR at 10 fps used mean for valence); the loss is MSE (§4.4); copied
kernels ignore the initialisation option (every slice is a copy), so the ``paper`` grid runs copied
inflation once, not once per initialisation. The CPU profiles thin the model and the grid (see
:func:`i3d_grid`).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paper, storage
from ..config import I3D as I3DSection, load as load_config
from ..models import BLOCKS, I3D, PAPER_NAMES, PRESETS, STAGES, imagenet_weights_file, parameter_counts, vggface_weights_file
from ..train import TrainConfig, fit, predict
from ..train import checkpoint as ckpt
from . import evaluation
from .cache import ArtefactStore, Experiment, NotRunYet
from .corpus import SPLITS, TARGETS, Corpus, VideoRecord
from .evaluation import evaluate_splits
from .prefix import (cached_clip_sets, file_digest, finetune_block, pixel_clips, shared_prefix,
                     split_predictions, train_suffix)

TABLE = "table6_i3d"
#: Library modules an i3D run depends on: editing one of them reruns the table (DESIGN §7).
MODULES = ("emorec.models", "emorec.inflation", "emorec.train", "emorec.data.clips", "emorec.postprocess",
           "emorec.metrics", "emorec.experiments.evaluation", "emorec.experiments.prefix", "emorec.experiments.i3d")
SOURCES = ("raf", "identity", "imagenet", "vggface")
PUBLISHED = ("imagenet", "vggface")
#: How each source is named in tables; stand-ins say so.
SOURCE_LABELS = {"raf": "RAF (Table 1's best from VGG-Face)", "identity": "identity (synthetic VGG-Face analogue)",
                 "imagenet": "ImageNet", "vggface": "VGG-Face"}
#: The paper's initialisation dataset a source corresponds to.
PAPER_SOURCE = {"raf": "RAF-DB", "identity": "VGG-Face", "imagenet": "ImageNet", "vggface": "VGG-Face"}
_OUR_BACKBONE = {name: key for key, name in PAPER_NAMES.items()}
OPTION_KEYS = ("inflation", "init", "mask_center", "dilation", "multiplier")
DILATIONS = {"I": [1, 1, 1, 1], "VIII": [1, 2, 4, 8]}  # Tables 4-5 print the two patterns of Table 3

#: The settings every i3D row holds (``04_5_i3d: settings:`` in ``params/<profile>.yaml``). ``paper``
#: trains end to end (``shared_prefix: false``); the CPU profiles give the i3D the training budget of
#: chapter 4.4's 2D-CNN-LSTM (the same clips, lr, batch, epochs, patience, head and trainable part):
#: the stages before ``finetune_from`` frozen, frame by frame, their maps the shared prefix computed once
#: (:mod:`emorec.experiments.prefix`); the trainable stages inflated with the row's options.
SETTING_KEYS = ("width", "input_size", "seq_len", "overlap", "eval_overlap", "fps", "tolerance", "fusion",
                "batch_size", "lr", "epochs", "patience", "head_units", "time_kernel", "max_shift", "n_boot")
#: What the section's ``trainable_from`` sets in every row (:func:`budget_overrides`).
BUDGET_KEYS = ("finetune_from", "shared_prefix")


# --------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------

def preset_options(name: str) -> dict:
    """Table 3's configuration ``"C1"`` or ``"C2"`` as row options (from :data:`emorec.models.PRESETS`)."""
    p = PRESETS[name]
    return {"inflation": p["inflation"], "init": p["init"], "mask_center": bool(p["mask_center"]),
            "dilation": [int(d) for d in p["dilation"]], "multiplier": float(p["multiplier"])}


def preset_of(row: dict) -> str | None:
    """``"C1"``/``"C2"`` if the row's options are one of Table 3's configurations, else None."""
    for name in PRESETS:
        if all(row[k] == v for k, v in preset_options(name).items()):
            return name
    return None


def option_grid(full: bool = True) -> list[dict]:
    """Table 3's options: C1 and C2 only, or (``full``) every combination of its five choices, as Tables
    4-5 show combinations (inflation × init × masking × dilation I/VIII × multiplier ×1/×100).

    Copied inflation ignores the initialisation (no slice is left to initialise), so copied kernels
    appear once, with init ``"zero"``: 24 combinations.
    """
    if not full:
        return [preset_options("C1"), preset_options("C2")]
    out = []
    for inflation, init, mask, dil, mult in itertools.product(("centered", "copied"), ("random", "zero"),
                                                               (False, True), ("I", "VIII"), (1.0, 100.0)):
        if inflation == "copied" and init == "random":
            continue
        out.append({"inflation": inflation, "init": init, "mask_center": mask, "dilation": list(DILATIONS[dil]),
                    "multiplier": mult})
    return out


def i3d_grid(section: I3DSection | str, **overrides) -> list[dict]:
    """The i3D configurations of a profile (§4.5, Tables 3-6), as plain dicts.

    ``section`` is the typed ``04_5_i3d`` section of :func:`emorec.config.load` (or a profile name):
    each (base model, source) pair with Table 3's C1 and C2, or every option combination
    (:func:`option_grid`) when ``full_options``, on the shared ``settings``. ``paper``: Table 6's eleven
    pairs plus the identity stand-in for VGG-16 and VGG-16-BN, all 24 combinations, at §4.5's settings
    (SL 64, OR 0.8, 10 fps, batch 8, Adam 1e-5, full width, 100×80). The CPU profiles use the width and
    input size of Table 1's checkpoints of the same profile and the budget of chapter 4.4's cascade:
    conv1-conv4 frozen as the shared prefix (``shared_prefix``), conv5 inflated and trained.
    ``overrides`` (e.g. the chapter's ``trainable_from``, :func:`budget_overrides`) replace settings.
    """
    if isinstance(section, str):
        section = load_config(section).i3d
    unknown = set(section.settings) ^ set(SETTING_KEYS)
    if unknown:
        raise ValueError(f"04_5_i3d settings: expected exactly the keys {list(SETTING_KEYS)}; "
                         f"differs in {sorted(unknown)}")
    grid = []
    for backbone, source in section.pairs:
        for options in option_grid(full=section.full_options):
            row = dict(section.settings, backbone=backbone, base_model=PAPER_NAMES[backbone], source=source,
                       **options)
            row.update(budget_overrides(section.trainable_from), **overrides)
            if source in PUBLISHED:
                row["width"] = 1.0  # published weights exist at full width only
            row["preset"] = preset_of(row)
            grid.append(row)
    return grid


def check_row(row: dict) -> None:
    """Raise ValueError naming the problem if ``row`` is not a valid i3D configuration."""
    needed = set(SETTING_KEYS) | set(BUDGET_KEYS) | set(OPTION_KEYS) | {"backbone", "source"}
    missing = needed - set(row)
    if missing:
        raise ValueError(f"i3D row lacks {sorted(missing)}: {row}")
    if row["source"] not in SOURCES:
        raise ValueError(f"unknown weight source {row['source']!r}; choose one of {SOURCES}")
    if row["backbone"] not in PAPER_NAMES:
        raise ValueError(f"unknown backbone {row['backbone']!r}; choose one of {tuple(PAPER_NAMES)}")
    if len(row["dilation"]) != 4:
        raise ValueError(f"dilation must give Table 3's four blocks, got {row['dilation']}")


def model_kwargs(row: dict, weights=None) -> dict:
    """Keyword arguments of :class:`emorec.models.I3D` for a row (§3.3.2, Table 3)."""
    return dict(backbone=row["backbone"], width=row["width"], weights=None if weights is None else str(weights),
                inflation=row["inflation"], init=row["init"], mask_center=row["mask_center"],
                dilation=tuple(row["dilation"]), multiplier=row["multiplier"], time_kernel=row["time_kernel"],
                finetune_from=row["finetune_from"], head_units=tuple(row.get("head_units", (512,))),
                frame_stages=frozen_stages(row) if row.get("shared_prefix") else 0, seed=row.get("seed", 0))


def train_config(row: dict, model: I3D) -> TrainConfig:
    """§4.5's training settings: Adam, MSE (§4.4), early stopping on validation CCC, and the model's own
    target multiplier (×100 in C2), applied by the trainer (predictions divided back before metrics)."""
    return TrainConfig(task="regression", lr=row["lr"], batch_size=row["batch_size"], epochs=row["epochs"],
                       patience=row["patience"], loss="mse", multiplier=model.multiplier,
                       seed=row.get("seed", 0), verbose=False, progress=False)


def budget_overrides(trainable_from: str | None) -> dict:
    """Row settings for the chapter's split point: ``"conv4"``/``"conv5"`` trains from there on the
    shared prefix (CPU profiles), None trains end to end from the first stage (the paper)."""
    if trainable_from is None:
        return {"finetune_from": "Full", "shared_prefix": False}
    return {"finetune_from": finetune_block(trainable_from), "shared_prefix": True}


def frozen_stages(row: dict) -> int:
    """How many of the five stages ``finetune_from`` freezes (Table 1's starting block; "Full": 0)."""
    if row["finetune_from"] not in BLOCKS:
        raise ValueError(f"unknown finetune_from {row['finetune_from']!r}; choose one of {BLOCKS}")
    return BLOCKS.index(row["finetune_from"])


def check_corpus(row: dict, corpus: Corpus) -> None:
    """ValueError unless the corpus was prepared at the row's frame rate."""
    if float(corpus.fps) != float(row["fps"]):
        raise ValueError(f"the row asks for {row['fps']} fps but the corpus was prepared at {corpus.fps:g} fps")


def prefix_settings(row: dict) -> tuple[list, str]:
    """(input size, trainable_from) of a shared-prefix row: with the checkpoint and the corpus, the key of
    the prefix it shares with the 2D models (:func:`emorec.experiments.prefix.prefix_experiment`)."""
    return list(row["input_size"]), STAGES[frozen_stages(row)]


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------

def initial_weights(row: dict, store: ArtefactStore):
    """The 2D weights a row starts from: a checkpoint path, or ``"imagenet"``/``"vggface"``.

    ``"raf"`` and ``"identity"`` follow the video models' rule (§4.4-4.5,
    :func:`emorec.experiments.finetuning.video_initialisation`): "RAF-DB" is the best Table-1 row that
    starts from VGG-Face; "VGG-Face" is the real ``vgg_face_dag.pth`` when present, else the identity
    stand-in. Raises FileNotFoundError (the missing file and how to get it) when they are absent, and
    ValueError when the source does not fit the backbone (VGG-Face for a ResNet50)."""
    from . import finetuning  # Table 1's artefacts; imported here so this module loads without them

    if row["source"] in ("raf", "identity"):
        init = finetuning.video_initialisation(PAPER_SOURCE[row["source"]], store.root.parent, store.root.name,
                                               row["backbone"])
        if init.checkpoint is None:
            raise FileNotFoundError(init.used.removeprefix("not available: "))
        return init.checkpoint
    if row["source"] == "vggface" and row["backbone"] not in ("vgg16", "vgg16_bn"):
        raise ValueError(f"VGG-Face weights (vgg_face_dag.pth) are a VGG-16; this book does not convert a "
                         f"VGGFace2 {row['base_model']} (e.g. resnet50_ft_dag.pth), see chapter 04_3_finetuning")
    path = imagenet_weights_file(row["backbone"])[0] if row["source"] == "imagenet" else vggface_weights_file()
    if not path.is_file():
        I3D(**model_kwargs(row, row["source"]))  # raises the models' own FileNotFoundError text
    return row["source"]


def weights_used(row: dict, weights) -> str:
    """What a row really started from, in words (the tables' column, §4.5)."""
    from . import finetuning

    if isinstance(weights, Path):
        return finetuning.describe_checkpoint(weights)
    return f"{SOURCE_LABELS[row['source']]} (published weights)"


def _fitted_to(row: dict, weights) -> dict:
    """A row that starts from one of our checkpoints takes its width: the weights exist at that width only."""
    from . import finetuning

    width = finetuning.checkpoint_width(weights) if isinstance(weights, Path) else None
    return row if width is None else dict(row, width=width)


def unavailable(row: dict, store: ArtefactStore) -> str | None:
    """None if the row can run, else why not (published weights absent offline, Table 1 not run)."""
    try:
        initial_weights(row, store)
    except FileNotFoundError as err:
        kind = "not available offline" if row["source"] in PUBLISHED else "missing"
        return f"{kind}: {err}"
    except ValueError as err:  # e.g. VGG-Face weights requested for a ResNet50
        return f"not applicable: {err}"
    return None


def experiment(row: dict, corpus: Corpus, store: ArtefactStore, seed: int = 0) -> Experiment:
    """The cache entry of a row: its configuration, the starting weights by content, the corpus."""
    check_row(row)
    weights = initial_weights(row, store)
    row = _fitted_to(row, weights)
    config = dict(row, seed=seed, weights=weights if row["source"] in PUBLISHED else file_digest(weights))
    return Experiment(TABLE, config, data=corpus.fingerprint, modules=MODULES)


def run_i3d(row: dict, corpus: Corpus, store: ArtefactStore, seed: int = 0) -> dict:
    """One i3D configuration → one result row, trained now or loaded from the cache (§4.5, Table 6).

    Trains with early stopping on validation CCC (``best.pt`` stays in the artefact folder), predicts
    every split, spreads clip predictions to frames and scores them with
    :func:`~emorec.experiments.evaluation.evaluate_splits`. Rows that cannot run (weights absent)
    return ``{"status": <why>}`` and are not cached, so adding the weights later runs them. ``weights
    used`` says what the row really started from.
    """
    why = unavailable(row, store)
    if why is not None:
        return {**row, "status": why}
    check_corpus(row, corpus)
    exp = experiment(row, corpus, store, seed)
    weights = initial_weights(row, store)
    row = dict(_fitted_to(row, weights), seed=seed)
    if row.get("shared_prefix"):
        if not isinstance(weights, Path):
            raise ValueError(f"a shared-prefix row needs one of our checkpoints, not {weights!r} weights")
        maps = shared_prefix(corpus, weights, *prefix_settings(row), store)
        sets = cached_clip_sets(corpus, maps, row["seq_len"], row["overlap"], row["eval_overlap"], row["tolerance"],
                                row["fusion"])
        result = store.run(exp, lambda work: _train_on_prefix(row, weights, sets, corpus, work))
    else:
        result = store.run(exp, lambda work: _train_and_score(row, weights, corpus, work))
    return {**row, **result, "folder": str(store.folder(exp)), "weights used": weights_used(row, weights)}


def _finish(row: dict, model: I3D, preds: dict, budget: dict, sets: dict, corpus: Corpus, work: Path) -> dict:
    """Score, save the predictions, leave ``best.pt`` as a complete I3D checkpoint (what load_model reads)."""
    settings = train_config(row, model)
    _save_predictions(preds, work / "predictions.npz")
    row_scores = evaluate_splits(preds, max_shift=row["max_shift"], n_boot=row["n_boot"], seed=row["seed"])
    (work / ckpt.CHECKPOINT).unlink(missing_ok=True)  # the resumable state is not needed any more
    ckpt.save({"format": ckpt.FORMAT, "epoch": budget["best_epoch"], "model": model.state_dict(),
               "model_config": ckpt.plain(model.config), "train_config": settings.to_dict(),
               "metric_name": settings.metric_name}, work / ckpt.BEST)
    ckpt.record(work / ckpt.BEST, "trained_on", corpus.trained_on())  # what predict reports
    return {"status": "ok", **row_scores, **budget, "clips": {s: len(d) for s, d in sets.items()}}


def _train_on_prefix(row: dict, weights, sets: dict, corpus: Corpus, work: Path) -> dict:
    model = I3D(**model_kwargs(row, weights))
    _, trainee = model.split(frozen_stages(row))
    preds, budget = train_suffix(trainee, sets, train_config(row, model), corpus, work)
    return _finish(row, model, preds, budget, sets, corpus, work)


def _train_and_score(row: dict, weights, corpus: Corpus, work: Path) -> dict:
    """End to end on pixel clips (the paper's setting)."""
    start = time.perf_counter()
    model = I3D(**model_kwargs(row, weights))
    settings = train_config(row, model)
    args = (row["seq_len"], row["eval_overlap"], row["input_size"], row["tolerance"], row["fusion"])
    sets = {s: pixel_clips(corpus.split(s), *args) for s in SPLITS}
    sets["fit"] = pixel_clips(corpus.split("train"), row["seq_len"], row["overlap"], *args[2:])
    trained = fit(model, sets["fit"], sets["validation"], settings, work)
    seconds = time.perf_counter() - start
    fallback = np.concatenate([r.frame_labels for r in corpus.split("train")]).mean(axis=0)
    preds = {s: split_predictions(corpus.split(s), sets[s], predict(model, sets[s], settings), fallback)
             for s in SPLITS}
    budget = {"trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
              "frames_seen": len(sets["fit"]) * row["seq_len"] * len(trained.history),
              "train_seconds": round(seconds, 1), "epochs_run": len(trained.history), "best_epoch": trained.best_epoch}
    return _finish(row, model, preds, budget, sets, corpus, work)


def _save_predictions(preds: dict, path: Path) -> None:
    arrays = {f"{split}/{video}": p for split, sp in preds.items() for video, p in zip(sp.videos, sp.preds)}
    storage.write_atomic(path, lambda f: np.savez(f, **arrays))


def load_predictions(folder, split: str = "test") -> dict[str, np.ndarray]:
    """The saved label-timeline predictions [L, 2] of a finished run, per video of ``split`` (before
    post-processing)."""
    with np.load(Path(folder) / "predictions.npz") as saved:
        return {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith(split + "/")}


def run_grid(grid: list[dict], corpus: Corpus, store: ArtefactStore, seed: int = 0) -> pd.DataFrame:
    """Every row of a grid (:func:`run_i3d`), as a DataFrame with one row per configuration; a row not
    in the store while :func:`~emorec.experiments.cache.read_only` is active has its status say so."""
    rows = []
    for row in grid:
        try:
            rows.append(run_i3d(row, corpus, store, seed))
        except NotRunYet as err:
            rows.append({**row, "status": str(err)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Tables 4-6: the best configuration per label, chosen on validation
# --------------------------------------------------------------------------------------------------

def best_per_label(results: pd.DataFrame, by: str = "val_pp") -> pd.DataFrame:
    """Per base model × source and per label, the row with the best VALIDATION CCC (Tables 4-6), by
    :func:`emorec.experiments.evaluation.best_per_label`; one row per pick with its ``label``."""
    picks = evaluation.best_per_label(results.to_dict("records"), ("backbone", "source"), by)
    return pd.DataFrame([p["row"] | {"label": p["label"], "selected_by": f"{by}_{p['label']}_CCC"} for p in picks])


def _options_text(row) -> dict:
    dil = {tuple(v): k for k, v in DILATIONS.items()}.get(tuple(row["dilation"]), str(list(row["dilation"])))
    return {"Inflation": str(row["inflation"]).capitalize(), "Dilation": dil,
            "Masking": "Yes" if row["mask_center"] else "No",
            "Init (non-centre)": "n/a (copied)" if row["inflation"] == "copied" else str(row["init"]).capitalize(),
            "Mult": f"×{float(row['multiplier']):g}"}


def table3_side_by_side() -> pd.DataFrame:
    """Table 3 as printed in the paper beside our presets (:data:`emorec.models.PRESETS`), and whether
    they agree (§4.5)."""
    printed = paper.table3()
    ours = {}
    for name in ("C1", "C2"):
        o = preset_options(name)
        ours[name] = [o["inflation"].capitalize(), o["init"].capitalize(), "Yes" if o["mask_center"] else "No",
                      ", ".join(str(d) for d in o["dilation"]), f"×{o['multiplier']:g}"]
    out = pd.DataFrame({"C1 (paper)": printed["C1"], "C1 (ours)": ours["C1"], "C2 (paper)": printed["C2"],
                        "C2 (ours)": ours["C2"]}, index=printed.index)
    out["agree"] = (out["C1 (paper)"] == out["C1 (ours)"]) & (out["C2 (paper)"] == out["C2 (ours)"])
    return out


def _our_pick(best: pd.DataFrame, base_model: str, paper_init: str, label: str):
    """Our best row for a paper (base model, initialisation): the published source if it ran, else the
    stand-in mapped to the same paper dataset."""
    if best.empty:
        return None
    mine = best[(best["base_model"] == base_model) & (best["label"] == label)
                & (best["source"].map(PAPER_SOURCE) == paper_init)]
    if mine.empty:
        return None
    published = mine[mine["source"].isin(PUBLISHED)]
    return (published if not published.empty else mine).iloc[0]


def _weights_text(row) -> str:
    """What a result row started from (a row made elsewhere may name only its source)."""
    used = row.get("weights used")
    return used if isinstance(used, str) else SOURCE_LABELS[row["source"]]


def _status_for(results: pd.DataFrame, base_model: str, paper_init: str) -> str:
    if results.empty:
        return "not run"
    mine = results[(results["base_model"] == base_model) & (results["source"].map(PAPER_SOURCE) == paper_init)]
    return "not in this profile's grid" if mine.empty else str(mine["status"].iloc[0])


def table45_side_by_side(results: pd.DataFrame, label: str, by: str = "val_pp") -> pd.DataFrame:
    """Table 4 (valence) or 5 (arousal): the paper's best configuration per base model and initialisation
    beside ours (chosen on validation), plus rows we ran that the paper does not have."""
    if label not in TARGETS:
        raise ValueError(f"label must be one of {TARGETS}, got {label!r}")
    printed = paper.table4() if label == "valence" else paper.table5()
    best = best_per_label(results, by) if len(results) else pd.DataFrame()
    rows = []
    for p in printed.itertuples(index=False):
        paper_text = _options_text({"inflation": p.inflation, "dilation": DILATIONS[p.dilation],
                                    "mask_center": p.masking, "init": p.centered_init, "multiplier": p.multiplier})
        paper_text["Init (non-centre)"] = p.centered_init.capitalize()  # as printed, copied rows included
        ours = _our_pick(best, p.base_model, p.init, label)
        entry = {"Base model": p.base_model, "Initialisation": p.init}
        entry.update({f"{k} (paper)": v for k, v in paper_text.items()})
        if ours is None:
            entry["ours"] = _status_for(results, p.base_model, p.init)
        else:
            entry.update({f"{k} (ours)": v for k, v in _options_text(ours).items()})
            entry["ours"] = _weights_text(ours)
        rows.append(entry)
    return pd.DataFrame(rows)


def table6_side_by_side(results: pd.DataFrame, by: str = "val_pp") -> pd.DataFrame:
    """Table 6: PCC, CCC and MAPE on test for the best configuration per label, the paper's beside ours,
    with the 95% bootstrap interval of our CCC (over test videos)."""
    best = best_per_label(results, by) if len(results) else pd.DataFrame()
    rows = []
    for p in paper.table6().itertuples(index=False):
        entry = {"Base model": p.base_model, "Initialisation": p.init}
        for label in TARGETS:
            ours = _our_pick(best, p.base_model, p.init, label)
            entry[f"{label} PCC (paper)"] = getattr(p, f"{label}_PCC")
            entry[f"{label} PCC (ours)"] = np.nan if ours is None else ours[f"{label}_PCC"]
            entry[f"{label} CCC (paper)"] = getattr(p, f"{label}_CCC")
            entry[f"{label} CCC (ours)"] = np.nan if ours is None else ours[f"{label}_CCC"]
            entry[f"{label} CCC 95% CI (ours)"] = ("" if ours is None else
                                                   f"[{ours[f'{label}_CCC_lo']:.3f}, {ours[f'{label}_CCC_hi']:.3f}]")
            entry[f"{label} MAPE % (paper)"] = getattr(p, f"{label}_MAPE")
            entry[f"{label} MAPE % (ours)"] = np.nan if ours is None else ours[f"{label}_MAPE"]
        used = {_weights_text(_our_pick(best, p.base_model, p.init, t)) for t in TARGETS
                if _our_pick(best, p.base_model, p.init, t) is not None}
        entry["ours from"] = "; ".join(sorted(used)) if used else _status_for(results, p.base_model, p.init)
        rows.append(entry)
    return pd.DataFrame(rows)


def configuration_table(results: pd.DataFrame) -> pd.DataFrame:
    """Every configuration that ran: options, validation CCC (selection) and test CCC, one row each."""
    columns = (["Base model", "Source", "Weights used", "Preset", "Inflation", "Dilation", "Masking", "Init (non-centre)", "Mult"]
               + [f"{split} {label} CCC" for label in TARGETS for split in ("val", "test")] + ["best epoch"])
    rows = []
    for _, r in results.iterrows():
        if r.get("status") != "ok":
            continue
        entry = {"Base model": r["base_model"], "Source": SOURCE_LABELS[r["source"]],
                 "Weights used": _weights_text(r), "Preset": r["preset"] or "—"}
        entry.update(_options_text(r))
        for label in TARGETS:
            entry[f"val {label} CCC"] = r[f"val_pp_{label}_CCC"]
            entry[f"test {label} CCC"] = r[f"{label}_CCC"]
        entry["best epoch"] = r["best_epoch"]
        rows.append(entry)
    return pd.DataFrame(rows, columns=columns)


def parameter_table(grid: list[dict]) -> pd.DataFrame:
    """Parameters of the 2D network and of its inflated i3D-CNN for the base models of a grid, at the grid's
    width and at full width (§4.5: "three times greater")."""
    rows = []
    for backbone, width in dict.fromkeys((r["backbone"], r["width"]) for r in grid):
        for w in dict.fromkeys((width, 1.0)):
            c = parameter_counts(backbone, w)
            rows.append({"Base model": PAPER_NAMES[backbone], "width": w, "2D params": c["params_2d"],
                         "i3D params": c["params_3d"], "ratio": c["ratio"], "conv ratio": c["conv_ratio"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------

def plot_validation_ccc(ax, results: pd.DataFrame) -> None:
    """Validation CCC (after post-processing) of every configuration that ran, valence and arousal side by
    side: how sensitive the i3D is to Table 3's options (§4.5)."""
    table = configuration_table(results)
    if table.empty:
        ax.text(0.5, 0.5, "no configuration ran (see the status column above)", ha="center", va="center")
        ax.axis("off")
        return
    names = [f"{r['Base model']} / {r['Source'].split(' ')[0]} / {r['Preset'] if r['Preset'] != '—' else 'mix'}"
             for _, r in table.iterrows()]
    y = np.arange(len(table))
    for k, (label, colour) in enumerate(zip(TARGETS, ("tab:blue", "tab:orange"))):
        ax.barh(y + (k - 0.5) * 0.38, table[f"val {label} CCC"], height=0.38, color=colour, label=label)
    ax.set_yticks(y, names, fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("validation CCC (after post-processing)")
    ax.legend(fontsize=8, loc="lower right")


def plot_traces(axes, record: VideoRecord, pred: np.ndarray, title: str = "") -> None:
    """Predicted (before post-processing) and annotated valence/arousal of one video on its label timeline."""
    for d, (ax, label) in enumerate(zip(axes, TARGETS)):
        ax.plot(record.label_times, record.labels[:, d], color="black", lw=1.2, label="annotation (fused)")
        ax.plot(record.label_times, pred[:, d], color="tab:red", lw=1.0, label="i3D prediction")
        ax.set_ylabel(label)
        ax.set_ylim(-1, 1)
    axes[0].set_title(title, fontsize=9)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("time (s)")


__all__ = ["best_per_label", "budget_overrides", "check_corpus", "check_row", "configuration_table", "experiment", "i3d_grid",
           "initial_weights", "load_predictions", "model_kwargs", "option_grid", "parameter_table",
           "plot_traces", "plot_validation_ccc", "prefix_settings", "preset_of", "preset_options", "run_grid",
           "run_i3d", "table3_side_by_side", "table45_side_by_side", "table6_side_by_side",
           "train_config", "unavailable", "weights_used"]
