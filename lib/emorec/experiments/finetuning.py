"""Table 1 (§3.1, §4.3): fine-tuning 2D-CNNs on RAF-DB's seven basic expressions, one cached run per row.

A row is (architecture, pre-training source, first fine-tuned block). The paper starts from ImageNet
or VGG-Face weights; neither can be downloaded here, so a row asking for them runs only when the
weights file is present and otherwise reports how to enable it. Two embedded sources stand in:

- ``"scratch"``: random initialisation;
- ``"identity"``: the same architecture first trained to tell apart the synthetic identities of the
  RAF-like set (``identities.csv``), VGG-Face's task on our faces — a *synthetic VGG-Face analogue*.
  That pre-training is itself a cached experiment, shared by every row that starts from it.

Training follows §4.3: Adam, batch 16, lr 1e-5 (paper profile), inverse-frequency class weights,
rotation/flip/brightness augmentation, early stopping on a validation split carved from the training
set (identity-disjoint when identities are known), accuracy on the test split. Each finished run keeps
``best.pt`` (:func:`emorec.train.fit`) in its artefact folder, so the video models of §4.4-4.5 can start
from it (:func:`best_expression_checkpoint`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from emorec import paper
from emorec.config import Table1, load as load_config
from emorec.data.rafdb import EMOTIONS, read_identities, read_labels
from emorec.models import (BLOCKS, CNN2D, DEFAULT_INPUT_SIZE, PAPER_NAMES, imagenet_weights_file,
                           vggface_weights_file)
from emorec.models.weights import VGGFACE_FILE
from emorec.train import TrainConfig, fit, predict
from emorec.train import checkpoint as ckpt

from ..paths import resolve
from .cache import ArtefactStore, Experiment, NotRunYet, data_fingerprint

TABLE = "table1"
PRETRAIN_TABLE = "table1_identity"
VGGFACE_TABLE = "vggface_backbone"  # the real VGG-Face weights as a checkpoint of ours
#: The paper's initialisations of the video models (§4.4-4.5), see :func:`video_initialisation`.
VIDEO_INITS = ("VGG-Face", "RAF-DB")
INDEX = "index.json"
IDENTITIES = "identities.csv"  # synthetic RAF-like set only (emorec.data.synthetic)
#: Library modules a Table-1 run depends on: editing one of them reruns the table (DESIGN §7).
MODULES = ("emorec.models", "emorec.train", "emorec.inflation", "emorec.data.rafdb",
           "emorec.experiments.finetuning")
SOURCES = ("imagenet", "vggface", "identity", "scratch")
PUBLISHED = ("imagenet", "vggface")
#: How each source is named in tables; stand-ins say so.
SOURCE_LABELS = {"imagenet": "ImageNet", "vggface": "VGG-Face",
                 "identity": "identity (synthetic VGG-Face analogue)", "scratch": "scratch (random init, ours)"}
#: The paper's pre-training source a row corresponds to (None: no counterpart in Table 1).
PAPER_SOURCE = {"imagenet": "ImageNet", "vggface": "VGG-Face", "identity": "VGG-Face", "scratch": None}
N_CLASSES = len(EMOTIONS)

# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------

def decode_images(paths, input_size=DEFAULT_INPUT_SIZE) -> np.ndarray:
    """Read and resize images once: uint8 array ``[N, H, W, 3]``, RGB (§3.2: faces resized to 100×80)."""
    h, w = (int(v) for v in input_size)
    out = np.empty((len(paths), h, w, 3), np.uint8)
    for i, path in enumerate(paths):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{path}: not a readable image")
        out[i] = cv2.cvtColor(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return out


class RafDataset(Dataset):
    """One split of a RAF-DB basic folder (real or RAF-like), decoded once into memory (§4.1, §4.3).

    Items are ``(image, target)``: RGB float ``[3, H, W]`` in [0, 1] and the class index (emotion
    0..6 in RAF-DB order, or identity 0..K−1 after :meth:`with_identity_targets`). ``table`` holds
    the label file's rows (plus ``identity`` where ``identities.csv`` exists); ``labels`` the targets.
    """

    def __init__(self, root, split: str = "train", input_size=DEFAULT_INPUT_SIZE):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        table = read_labels(root, check_images=True)
        table = table[table["split"] == split].reset_index(drop=True)
        if table.empty:
            raise ValueError(f"{Path(root) / 'EmoLabel' / 'list_patition_label.txt'}: no {split} images listed")
        if (Path(root) / IDENTITIES).exists():
            ids = read_identities(root).set_index("image")["identity"]
            missing = sorted(set(table["image"]) - set(ids.index))
            if missing:
                raise ValueError(f"{Path(root) / 'identities.csv'}: no identity for {missing[:3]}")
            table["identity"] = ids.loc[table["image"]].to_numpy()
        self.table = table
        self.images = decode_images(table["path"], input_size)
        self.labels = table["label"].to_numpy(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(255.0)
        return x, int(self.labels[i])

    @property
    def has_identities(self) -> bool:
        return "identity" in self.table

    def with_identity_targets(self) -> "RafDataset":
        """The same images (shared, not copied) with identity classes 0..K−1 as targets."""
        if not self.has_identities:
            raise ValueError("this RAF folder has no identities.csv (only the synthetic RAF-like set has one)")
        other = object.__new__(RafDataset)
        other.table, other.images = self.table, self.images
        _, other.labels = np.unique(self.table["identity"].to_numpy(), return_inverse=True)
        other.labels = other.labels.astype(np.int64)
        return other


def validation_split(table: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` carved from a training table for early stopping (§4.3).

    Identity-disjoint when the table has an ``identity`` column (whole identities go to validation
    until ``fraction`` of the images is reached); otherwise stratified by label. Never the test set.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    n = len(table)
    val = np.zeros(n, bool)
    if "identity" in table:
        ids = table["identity"].to_numpy()
        for who in rng.permutation(np.unique(ids)):
            if val.sum() >= fraction * n:
                break
            val |= ids == who
    else:
        labels = table["label"].to_numpy()
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            val[members[:int(round(fraction * len(members)))]] = True
    if val.all() or not val.any():
        raise ValueError(f"cannot carve a validation split of {fraction} from {n} training images")
    return np.flatnonzero(~val), np.flatnonzero(val)


def _identity_holdout(identities: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-identity hold-out for the identity pre-training (every identity on both sides)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(identities), bool)
    for who in np.unique(identities):
        members = rng.permutation(np.flatnonzero(identities == who))
        if len(members) >= 3:
            val[members[:max(1, int(round(fraction * len(members))))]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


# ------------------------------------------------------------------------------------------------
# Grids
# ------------------------------------------------------------------------------------------------

def table1_grid(section: Table1 | str) -> list[dict]:
    """The Table-1 configurations of a profile (§4.3, Table 1), as plain dicts.

    ``section`` is the typed ``04_3_finetuning`` section of :func:`emorec.config.load` (or a profile
    name, read from ``params/<profile>.yaml``): its rows (backbone, source, first fine-tuned block)
    with its training settings. ``paper`` lists every row of the paper's Table 1, ResNet50 ImageNet and
    the embedded stand-ins at §4.3's settings (100×80, lr 1e-5, batch 16; the paper flattens VGG's 3×2
    conv5 map, which pool_size (3, 2) reproduces); cpu and smoke thin the networks and use the BN
    variants (from scratch, plain thin VGG-16 stays on the chance plateau for epochs on the RAF-like
    set). Rows with published weights are always full width (the only width those weights exist at).
    """
    if isinstance(section, str):
        section = load_config(section).table1
    shared = dict(width=section.width, input_size=list(section.input_size), pool_size=list(section.pool_size),
                  lr=section.lr, batch_size=section.batch_size, epochs=section.epochs, patience=section.patience,
                  val_fraction=section.val_fraction)
    grid = []
    for backbone, source, block in section.rows:
        row = dict(shared, backbone=backbone, model=PAPER_NAMES[backbone], source=source, block=block,
                   augment=True, class_weighting=True)
        row["pretrain"] = dict(section.pretrain) if source == "identity" else None
        if source in PUBLISHED:
            row["width"] = 1.0
        grid.append(row)
    return grid


def check_row(row: dict) -> None:
    """Raise ValueError naming the problem if ``row`` is not a valid Table-1 configuration (§4.3)."""
    needed = {"backbone", "source", "block", "width", "input_size", "pool_size", "lr", "batch_size",
              "epochs", "patience", "val_fraction", "augment", "class_weighting", "pretrain"}
    missing = needed - set(row)
    if missing:
        raise ValueError(f"Table-1 row lacks {sorted(missing)}: {row}")
    if row["source"] not in SOURCES:
        raise ValueError(f"unknown pre-training source {row['source']!r}; choose one of {SOURCES}")
    if row["block"] not in BLOCKS:
        raise ValueError(f"unknown block {row['block']!r}; choose one of {BLOCKS}")
    if row["backbone"] not in PAPER_NAMES:
        raise ValueError(f"unknown backbone {row['backbone']!r}; choose one of {tuple(PAPER_NAMES)}")
    if (row["source"] == "identity") != isinstance(row["pretrain"], dict):
        raise ValueError(f"row {row['backbone']}/{row['source']}: 'pretrain' settings belong to identity rows only")


def model_config(row: dict, weights=None, num_outputs: int = N_CLASSES, seed: int = 0,
                 finetune_from: str | None = None) -> dict:
    """The :func:`emorec.models.build_model` configuration of a row (§3.1 head: FC 512 → 128 → 7)."""
    return dict(kind="cnn2d", backbone=row["backbone"], task="classification", num_outputs=num_outputs,
                width=row["width"], weights=None if weights is None else str(weights),
                finetune_from=finetune_from or row["block"], pool_size=list(row["pool_size"]), seed=seed)


def train_config(row: dict, seed: int, num_classes: int = N_CLASSES, pretrain: bool = False) -> TrainConfig:
    """§4.3's training settings for a row: Adam, class weights, augmentation, early stopping."""
    opts = row["pretrain"] if pretrain else row
    return TrainConfig(task="classification", lr=opts["lr"], batch_size=row["batch_size"], epochs=opts["epochs"],
                       patience=opts["patience"], class_weighting=row["class_weighting"], num_classes=num_classes,
                       augment=row["augment"], seed=seed, verbose=False, progress=False)


# ------------------------------------------------------------------------------------------------
# Running the grid
# ------------------------------------------------------------------------------------------------

def classification_scores(true, pred, n_classes: int = N_CLASSES) -> dict:
    """Accuracy, balanced accuracy (mean recall) and macro-F1 over the classes present in ``true``,
    plus the confusion matrix (rows: true class, columns: predicted) — Table 1's metric and two
    imbalance-aware extras."""
    true, pred = np.asarray(true, np.int64), np.asarray(pred, np.int64)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (true, pred), 1)
    present = confusion.sum(1) > 0
    tp = np.diag(confusion).astype(float)
    recall = tp[present] / confusion.sum(1)[present]
    predicted = confusion.sum(0)[present]
    precision = np.divide(tp[present], predicted, out=np.zeros_like(recall), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(recall),
                   where=precision + recall > 0)
    return {"accuracy": float(tp.sum() / len(true)), "balanced_accuracy": float(recall.mean()),
            "macro_f1": float(f1.mean()), "confusion": confusion.tolist()}


class _Data:
    """The decoded train/test splits of one RAF folder, per input size (decoded once per grid)."""

    def __init__(self, root: Path):
        self.root, self._cache = root, {}

    def splits(self, input_size) -> tuple[RafDataset, RafDataset]:
        key = tuple(input_size)
        if key not in self._cache:
            self._cache[key] = (RafDataset(self.root, "train", key), RafDataset(self.root, "test", key))
        return self._cache[key]


def _unavailable(row: dict, identity_root: Path) -> str | None:
    """None if the row can run, else why not: the models' own FileNotFoundError text for absent
    published weights, or the identity list the stand-in pre-trains on (``identity_root``)."""
    if row["source"] == "identity" and not (identity_root / IDENTITIES).is_file():
        return (f"not applicable: the identity stand-in pre-trains on {identity_root / IDENTITIES}, which only "
                f"the synthetic RAF-like set has (real RAF-DB lists no identities); pass the synthetic set as "
                f"identity_root, or give vgg_face_dag.pth for the VGG-Face rows")
    if row["source"] not in PUBLISHED:
        return None
    path = (imagenet_weights_file(row["backbone"])[0] if row["source"] == "imagenet" else vggface_weights_file())
    if path.is_file():
        return None
    try:  # let emorec.models say what is missing and how to get it
        CNN2D(**{k: v for k, v in model_config(row, row["source"]).items() if k != "kind"})
    except FileNotFoundError as err:
        return f"not available offline: {err}"
    return None


def _pretrain_identity(row: dict, data: _Data, seed: int, fingerprint: str, store: ArtefactStore) -> Experiment:
    """The identity-classification pre-training of the VGG-Face stand-in (§3.1) on ``data`` (a RAF-like
    folder with ``identities.csv``), run or loaded."""
    config = {"task": "identity classification", "backbone": row["backbone"], "width": row["width"],
              "input_size": list(row["input_size"]), "pool_size": list(row["pool_size"]),
              "batch_size": row["batch_size"], "val_fraction": row["val_fraction"], "augment": row["augment"],
              "class_weighting": row["class_weighting"], "pretrain": dict(row["pretrain"]), "seed": seed}
    exp = Experiment(PRETRAIN_TABLE, config, data=fingerprint, modules=MODULES)

    def run(work: Path) -> dict:
        train, _ = data.splits(row["input_size"])
        fit_idx, _ = validation_split(train.table, row["val_fraction"], seed)  # expression validation stays unseen
        ids = train.with_identity_targets()
        inner_train, inner_val = _identity_holdout(ids.labels[fit_idx], row["val_fraction"], seed)
        n_ids = int(ids.labels.max()) + 1
        model = CNN2D(**{k: v for k, v in model_config(row, None, n_ids, seed, "Full").items() if k != "kind"})
        start = time.perf_counter()
        result = fit(model, Subset(ids, fit_idx[inner_train]), Subset(ids, fit_idx[inner_val]),
                     train_config(row, seed, n_ids, pretrain=True), work)
        return {"val_accuracy": float(result.best_metric), "best_epoch": result.best_epoch,
                "epochs_run": len(result.history), "n_identities": n_ids, "n_train": int(len(inner_train)),
                "n_val": int(len(inner_val)), "seconds": round(time.perf_counter() - start, 1)}

    store.run(exp, run)
    return exp


def _finetune(row: dict, weights, data: _Data, seed: int, work: Path) -> dict:
    """Fine-tune one row on the expression labels, keep ``best.pt``, score the test split (§4.3)."""
    train, test = data.splits(row["input_size"])
    fit_idx, val_idx = validation_split(train.table, row["val_fraction"], seed)
    model = CNN2D(**{k: v for k, v in model_config(row, weights, N_CLASSES, seed).items() if k != "kind"})
    config = train_config(row, seed)
    start = time.perf_counter()
    result = fit(model, Subset(train, fit_idx), Subset(train, val_idx), config, work)
    seconds = time.perf_counter() - start
    pred = predict(model, test, config).argmax(1)
    pd.DataFrame({"image": test.table["image"], "label": test.labels, "pred": pred}).to_csv(
        work / "test_predictions.csv", index=False)
    scores = classification_scores(test.labels, pred)
    return {"status": "ok", **scores, "val_accuracy": float(result.best_metric), "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "n_train": int(len(fit_idx)), "n_val": int(len(val_idx)),
            "n_test": len(test), "seconds": round(seconds, 1)}


def run_table1(grid: list[dict], data_root, artefact_root="artefacts", profile: str = "cpu",
               seed: int = 0, identity_root=None) -> pd.DataFrame:
    """Run (or load from the artefact cache) every row of a Table-1 grid (§4.3, Table 1).

    ``data_root`` is a RAF-DB basic folder (real, or the RAF-like set of
    :func:`emorec.data.synthetic.ensure_corpora`). Each row is an :class:`Experiment` keyed by its
    configuration, the folder's :func:`data_fingerprint` and the source of :data:`MODULES`; a rerun
    with nothing changed loads instantly. Rows whose published weights are absent are reported, not
    run (and not cached, so adding the file later runs them). The identity stand-in of VGG-Face
    pre-trains on ``identity_root`` (default ``data_root``): real RAF-DB lists no identities, so on a
    real copy the chapter passes the synthetic RAF-like set, whose identities stand in for VGG-Face's
    (a decision of ours: the row then says it starts from the synthetic analogue). Returns one row per
    configuration with accuracies in percent.
    """
    for row in grid:
        check_row(row)
    root = resolve(data_root)
    id_root = root if identity_root is None else resolve(identity_root)
    fingerprint = data_fingerprint(root)
    store, data = ArtefactStore(artefact_root, profile), _Data(root)
    id_data, id_fingerprint = (data, fingerprint) if id_root == root else (_Data(id_root), data_fingerprint(id_root))
    rows, index = [], {"rows": [], "identity": {}}
    for row in grid:
        missing = _unavailable(row, id_root)
        if missing:
            rows.append(_table_row(row, {"status": missing}, None))
            continue
        try:
            exp, result = _run_row(row, store, data, id_data, fingerprint, id_fingerprint, seed, index)
        except NotRunYet as err:  # a chapter that only reads (train_missing: false)
            rows.append(_table_row(row, {"status": str(err)}, None))
            continue
        index["rows"].append({"key": exp.key, "backbone": row["backbone"]})
        rows.append(_table_row(row, result, exp.key))
    _write_index(store.root / TABLE, index)
    return pd.DataFrame(rows)


def _run_row(row: dict, store: ArtefactStore, data: _Data, id_data: _Data, fingerprint: str, id_fingerprint: str,
             seed: int, index: dict) -> tuple[Experiment, dict]:
    """One row: its identity pre-training (if any) and its fine-tuning, each run or loaded."""
    config, weights = dict(row, seed=seed), row["source"] if row["source"] in PUBLISHED else None
    if row["source"] == "identity":
        pre = _pretrain_identity(row, id_data, seed, id_fingerprint, store)
        weights = store.folder(pre) / "best.pt"
        config["pretrained_key"] = pre.key
        index["identity"][row["backbone"]] = pre.key
    exp = Experiment(TABLE, config, data=fingerprint, modules=MODULES)
    return exp, store.run(exp, lambda work: _finetune(row, weights, data, seed, work))


def _table_row(row: dict, result: dict, key: str | None) -> dict:
    pct = {k: 100 * result[k] if k in result else np.nan for k in ("accuracy", "balanced_accuracy", "macro_f1",
                                                                     "val_accuracy")}
    return {"model": PAPER_NAMES[row["backbone"]], "backbone": row["backbone"], "source": row["source"],
            "pretraining": SOURCE_LABELS[row["source"]], "block": row["block"], "width": row["width"],
            "input": "×".join(str(v) for v in row["input_size"]), "status": result["status"], **pct,
            "best_epoch": result.get("best_epoch"), "epochs_run": result.get("epochs_run"),
            "seconds": result.get("seconds"), "confusion": result.get("confusion"), "key": key}


def _write_index(folder: Path, index: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, folder / INDEX)


# ------------------------------------------------------------------------------------------------
# Checkpoints for the video models (§3.3, Figure 2's second transfer)
# ------------------------------------------------------------------------------------------------

def _current_folder(store: ArtefactStore, table: str, key: str) -> Path | None:
    """The finished artefact ``key`` of ``table`` if it is still valid for today's library source (its
    weights may have been deleted since: ``emorec run`` with ``run: keep_weights: chosen``)."""
    folder = store.root / table / key
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    exp = Experiment(saved["table"], saved["config"], saved["data"], tuple(saved["modules"]))
    ok = exp.key == key and (folder / "result.json").is_file()
    return folder if ok else None


def _read_index(store: ArtefactStore) -> dict:
    path = store.root / TABLE / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no Table-1 results for profile {store.root.name!r}; "
                                f"run chapter 04_3_finetuning first")
    return json.loads(path.read_text())


#: Table-1 sources a "RAF-DB" initialisation may start from, in order of preference: the paper's
#: "VGG-16 pre-trained on VGG-Face and fine-tuned on RAF-DB" (§4.4), else its stand-in. Never scratch.
FROM_VGGFACE = ("vggface", "identity")


def _finished_rows(store: ArtefactStore, backbone: str) -> list[tuple[Path, dict, dict]]:
    """(folder, configuration, result) of the latest Table-1 grid's current runs of ``backbone``."""
    out = []
    for entry in _read_index(store)["rows"]:
        folder = _current_folder(store, TABLE, entry["key"]) if entry["backbone"] == backbone else None
        if folder is not None:
            config = json.loads((folder / "config.json").read_text())["config"]
            out.append((folder, config, json.loads((folder / "result.json").read_text())))
    return out


def best_expression_checkpoint(artefact_root="artefacts", profile: str = "cpu", backbone: str = "vgg16") -> Path:
    """``best.pt`` of the Table-1 model of ``backbone`` that starts from VGG-Face with the highest
    *validation* accuracy (§3.1, §4.3, §4.4): the paper's "RAF-DB" initialisation.

    Rows fine-tuned from the real VGG-Face weights are preferred; without them, rows from the identity
    stand-in; rows from scratch or ImageNet never (the paper's RAF-DB model is VGG-Face's). Load it
    with :func:`emorec.models.load_model`, or pass it as ``weights=`` to ``CNN2D``/``CNNLSTM``/``I3D``.
    Only runs of the latest :func:`run_table1` call that are still valid for the current library count.
    """
    store = ArtefactStore(artefact_root, profile)
    rows = _finished_rows(store, backbone)
    for source in FROM_VGGFACE:
        candidates = [(result["val_accuracy"], -k, folder) for k, (folder, config, result) in enumerate(rows)
                      if config["source"] == source]
        if candidates:  # ties keep the earlier row of the grid
            path = max(candidates)[2] / "best.pt"
            if not path.is_file():  # never pruned by emorec run (emorec.run.read_folders): lost otherwise
                raise FileNotFoundError(f"{path}: the weights of the Table-1 row the video models start from "
                                        f"are missing; train it again (chapter 04_3_finetuning)")
            return path
    ran = sorted({(c["backbone"], c["source"]) for _, c, _ in rows})
    raise FileNotFoundError(f"no current Table-1 checkpoint of {backbone!r} that starts from VGG-Face (or its "
                            f"identity stand-in) under {store.root / TABLE} (finished rows: {ran or 'none'}); "
                            f"run chapter 04_3_finetuning with such rows first (on real RAF-DB, which lists no "
                            f"identities, that needs {VGGFACE_FILE})")


def describe_checkpoint(path) -> str:
    """What a Table-1 checkpoint really is, in words, for the tables of §4.4-4.5 (ours)."""
    folder = Path(path).parent
    if not (folder / "config.json").is_file():
        return f"checkpoint {Path(path).name} (not a Table-1 artefact)"
    saved = json.loads((folder / "config.json").read_text())
    if saved["table"] == VGGFACE_TABLE:
        return f"VGG-Face ({saved['config']['weights_file']}), no fine-tuning"
    if saved["table"] == PRETRAIN_TABLE:
        return SOURCE_LABELS["identity"]
    config, result = saved["config"], json.loads((folder / "result.json").read_text())
    return (f"{PAPER_NAMES[config['backbone']]} from {SOURCE_LABELS[config['source']]}, fine-tuned on RAF "
            f"from {config['block']} (Table 1, val. acc. {100 * result['val_accuracy']:.1f} %)")


def vggface_checkpoint(artefact_root="artefacts", profile: str = "cpu", backbone: str = "vgg16") -> Path:
    """The real VGG-Face weights (``vgg_face_dag.pth``, §3.1) as a ``CNN2D`` checkpoint that the video
    models load like any Table-1 checkpoint (full width; VGG-16-BN keeps fresh BN layers). Cached in
    the artefact store, keyed by the weight file's content. FileNotFoundError when the file is absent."""
    file = vggface_weights_file()
    if not file.is_file():
        CNN2D(backbone, weights="vggface")  # raises the models' own text: the file and how to get it
    store = ArtefactStore(artefact_root, profile)
    exp = Experiment(VGGFACE_TABLE, {"backbone": backbone, "width": 1.0, "weights_file": file.name},
                     data=data_fingerprint(file.parent, file.name), modules=("emorec.models",))

    def run(work: Path) -> dict:
        model = CNN2D(backbone, task="classification", width=1.0, weights="vggface")
        model.config["weights"] = None  # the checkpoint holds the weights: rebuilding needs no other file
        ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config)},
                  work / "best.pt")
        return {"status": "ok"}

    store.run(exp, run)
    return store.folder(exp) / "best.pt"


def checkpoint_width(path) -> float | None:
    """The width multiplier recorded in a checkpoint of ours (None if it records no model): a video
    model that starts from it must have the same width."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    config = saved.get("model_config") if isinstance(saved, dict) else None
    return float(config["width"]) if isinstance(config, dict) and "width" in config else None


@dataclass(frozen=True)
class VideoInit:
    """The 2D weights a video model of §4.4-4.5 starts from: the paper's name, the checkpoint (None when
    it cannot be had) and what this run really uses, or why it cannot run (a table column)."""

    name: str
    checkpoint: Path | None
    used: str


def video_initialisation(name: str, artefact_root="artefacts", profile: str = "cpu",
                         backbone: str = "vgg16") -> VideoInit:
    """The paper's initialisations of the video models (§4.4, §4.5) as this run can give them.

    ``"VGG-Face"``: the real VGG-Face weights when ``vgg_face_dag.pth`` is present (VGG-16 / VGG-16-BN),
    else the identity stand-in of Table 1. ``"RAF-DB"``: :func:`best_expression_checkpoint`, the best
    Table-1 row that starts from VGG-Face, chosen on validation. Stand-ins say so in ``used``.
    """
    if name not in VIDEO_INITS:
        raise ValueError(f"unknown initialisation {name!r}; choose one of {VIDEO_INITS}")
    try:
        if name == "RAF-DB":
            path = best_expression_checkpoint(artefact_root, profile, backbone)
        elif backbone in ("vgg16", "vgg16_bn") and vggface_weights_file().is_file():
            path = vggface_checkpoint(artefact_root, profile, backbone)
        else:
            path = identity_checkpoint(artefact_root, profile, backbone)
    except FileNotFoundError as err:
        return VideoInit(name, None, f"not available: {err}")
    return VideoInit(name, path, describe_checkpoint(path))


def identity_checkpoint(artefact_root="artefacts", profile: str = "cpu", backbone: str = "vgg16") -> Path:
    """``best.pt`` of the identity pre-training (the synthetic VGG-Face analogue, §3.1) used by Table 1."""
    store = ArtefactStore(artefact_root, profile)
    key = _read_index(store)["identity"].get(backbone)
    folder = None if key is None else _current_folder(store, PRETRAIN_TABLE, key)
    if folder is None or not (folder / "best.pt").is_file():
        raise FileNotFoundError(f"no current identity pre-training of {backbone!r} under "
                                f"{store.root / PRETRAIN_TABLE}; run chapter 04_3_finetuning first "
                                f"(profile {profile!r})")
    return folder / "best.pt"


# ------------------------------------------------------------------------------------------------
# Presentation: the paper's values beside ours
# ------------------------------------------------------------------------------------------------

def side_by_side(ours: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 1 of the paper with this run's results beside it (§4.3).

    Each of our rows sits next to its paper counterpart: same model (or, for our BN variants, the
    plain model when the paper has no BN row), same pre-training (stand-ins next to the source they
    replace: identity → VGG-Face) and same block; the "our model" and "our pre-training" columns say
    what actually ran. Paper rows this profile did not run say so; our rows without a counterpart
    (scratch, ResNet50) and the cited baselines follow.
    """
    ref = paper.table1()
    proposed = ref[ref["reference"] == "Proposed"]
    match = {i: _counterpart(o, proposed) for i, o in ours.iterrows()}
    out = []
    for j, p in proposed.iterrows():
        hits = [i for i, m in match.items() if m == j]
        out += [_joined(p, ours.loc[i]) for i in hits] or [_joined(p, None, f"not in the {profile} grid")]
    out += [_joined(None, ours.loc[i]) for i, m in match.items() if m is None]
    out += [_joined(p, None, f"cited baseline ({p['reference']})") for _, p in ref[ref["reference"] != "Proposed"].iterrows()]
    return pd.DataFrame(out)


def _counterpart(o, proposed: pd.DataFrame):
    """Index of the paper row our row ``o`` stands beside, or None."""
    source = PAPER_SOURCE[o["source"]]
    for model in dict.fromkeys((o["model"], o["model"].removesuffix("-BN"))):
        hit = proposed[(proposed["model"] == model) & (proposed["pretraining"] == source)
                       & (proposed["block"] == o["block"])]
        if len(hit):
            return hit.index[0]
    return None


def _joined(p, o, note: str = "") -> dict:
    ok = o is not None and o["status"] == "ok"
    if o is not None and not ok:
        note = o["status"]
    block = p["block"] if p is not None else o["block"]
    return {"paper model": p["model"] if p is not None else "",
            "paper pre-training": _text_or(p["pretraining"] if p is not None else "", "NA"),
            "block": _text_or(block, "NA"),
            "paper acc. (%)": p["accuracy"] if p is not None else np.nan,
            "our model": o["model"] if o is not None else "",
            "our pre-training": o["pretraining"] if o is not None else "",
            "our acc. (%)": o["accuracy"] if ok else np.nan,
            "our balanced acc. (%)": o["balanced_accuracy"] if ok else np.nan,
            "our macro-F1 (%)": o["macro_f1"] if ok else np.nan,
            "note": note}


def _text_or(value, default: str) -> str:
    return value if isinstance(value, str) else default  # the paper prints NA where pandas has None/NaN


def plot_confusion(ax, confusion, title: str = "") -> None:
    """Row-normalised confusion matrix (true emotion × predicted) of a Table-1 model (§4.3), counts in the cells."""
    counts = np.asarray(confusion, float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{int(n)}", ha="center", va="center", fontsize=8,
                color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(N_CLASSES), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(N_CLASSES), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def plot_block_effect(ax, ours: pd.DataFrame) -> None:
    """Test accuracy against the first fine-tuned block: the paper's curves (dashed) and ours (§4.3)."""
    ref = paper.table1()
    x = np.arange(len(BLOCKS))
    for (model, source), part in ref[ref["block"].isin(BLOCKS)].groupby(["model", "pretraining"], sort=False):
        if len(part) > 1:
            pos = [BLOCKS.index(b) for b in part["block"]]
            ax.plot(pos, part["accuracy"], "--o", alpha=0.6, label=f"paper: {model}, {source}")
    done = ours[ours["status"] == "ok"]
    for (model, label), part in done.groupby(["model", "pretraining"], sort=False):
        if len(part) > 1:
            part = part.assign(pos=[BLOCKS.index(b) for b in part["block"]]).sort_values("pos")
            ax.plot(part["pos"], part["accuracy"], "-s", label=f"ours: {model}, {label}")
    ax.set_xticks(x, BLOCKS)
    ax.set_xlabel("first fine-tuned block (earlier blocks frozen)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
