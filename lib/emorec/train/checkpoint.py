"""Atomic checkpoints and RNG snapshots that load with ``torch.load(..., weights_only=True)``."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import storage

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.json"
FORMAT = 1


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete temporary files a killed writer (:func:`emorec.storage.write_atomic`) left behind (the
    real files are never partial)."""
    for name in (CHECKPOINT, BEST, HISTORY):
        for tmp in Path(run_dir).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def save(obj: dict, path: Path) -> None:
    storage.write_atomic(path, lambda f: torch.save(obj, f))


def save_json(obj, path: Path) -> None:
    text = json.dumps(_json_safe(obj), indent=1)
    storage.write_atomic(path, lambda f: f.write(text.encode()))


NOT_LOADED = "corrupt, or contains objects other than tensors; not loaded, for safety"


def read_tensor_file(path, what: str = "an emorec checkpoint"):
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file (ours).

    PyTorch's own message for a file its safe unpickler refuses advises loading with
    ``weights_only=False``, i.e. running whatever the file contains; it is replaced by ours. A folder
    or a missing path is named as such; a file that cannot be opened raises its OSError (path and reason).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    with path.open("rb") as file, warnings.catch_warnings():  # an unreadable file: its OSError names it
        # the safe unpickler warns about foreign pickle protocols before refusing them
        warnings.filterwarnings("ignore", module=r"torch\._weights_only_unpickler")
        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception:  # the safe unpickler and the zip reader raise many types (OSError too) on foreign bytes
            raise ValueError(f"{path}: not {what}: {NOT_LOADED}") from None


def load_checkpoint(path) -> dict:
    """Read a checkpoint or ``best.pt`` written by :func:`emorec.train.fit` (safe unpickler only)."""
    obj = read_tensor_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "model" not in obj:
        raise ValueError(f"{path}: not an emorec checkpoint: a PyTorch file without the entries "
                         f"emorec.train.fit writes (format {FORMAT}, model)")
    return obj


def record(path, key: str, value) -> None:
    """Add one entry (plain values only) to a checkpoint written earlier, atomically (ours)."""
    saved = load_checkpoint(path)
    saved[key] = value
    save(saved, Path(path))


def load_weights(model: torch.nn.Module, path) -> dict:
    """Load the weights of a checkpoint into ``model``; returns the whole checkpoint dict."""
    ckpt = load_checkpoint(path)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit this model: {err}") from None
    return ckpt


def rng_state(*generators: torch.Generator) -> dict:
    """Global torch / CUDA / NumPy / Python RNG states plus the given generators, as tensors."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, *generators: torch.Generator) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)


def plain(obj):
    """A model's ``config`` as plain dicts/lists/scalars (what the safe unpickler accepts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise ValueError(f"model config value {obj!r} of type {type(obj).__name__} is not a plain value")


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
