"""One checkpoint scored on a corpus split through the predict path (``emorec evaluate``; §3.4, §4.2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from .corpus import SPLITS, TARGETS
from .evaluation import bootstrap_ccc, fit_and_apply_postprocessing, score, timeline_predictions


def evaluate_checkpoint(checkpoint, corpus, split: str = "test", seq_len: int | None = None,
                        overlap: float | None = None, max_shift: int = 10, n_boot: int = 1000, seed: int = 0,
                        progress: bool = False) -> pd.DataFrame:
    """Score a checkpoint on a split of a prepared corpus (:func:`emorec.experiments.corpus.prepare_corpus`)
    with the paper's metrics (Eqs. (4)-(7), §4.2), before and after the post-processing of §3.4 fitted
    on the training and validation videos only.

    Predictions come from :mod:`emorec.predict`'s path (clips over every face segment, spread over frames) and
    are scored on each video's 10 Hz label timeline as in :mod:`emorec.experiments.evaluation`.
    Returns one row per (label, stage) with CCC and its 95% bootstrap interval over videos, PCC, MAE
    and MAPE."""
    from ..predict.inference import _resolve_settings, track_predictions
    from ..predict.model import load_predictor  # predict sits above experiments: imported when called

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    predictor = load_predictor(checkpoint)
    settings = _resolve_settings(predictor, corpus.fps, seq_len, overlap, None)
    fallback = np.concatenate([r.frame_labels for r in corpus.split("train")]).mean(axis=0)
    splits = {}
    for name in SPLITS:
        records = corpus.split(name)
        preds = [track_predictions(predictor, r.track, settings["seq_len"], settings["overlap"],
                                   settings["tolerance"])[0]
                 for r in tqdm(records, desc=f"predict {name}", unit="video", disable=not progress)]
        splits[name] = timeline_predictions(records, preds, fallback)
    processed, _ = fit_and_apply_postprocessing(splits["train"], splits["validation"], splits[split], max_shift)
    rows = []
    for stage, part in (("raw", splits[split]), ("post-processed", processed)):
        scores, ci = score(part), bootstrap_ccc(part, n_boot, seed)
        for name in TARGETS:
            rows.append({"label": name, "stage": stage, "CCC": scores[f"{name}_CCC"],
                         "CCC_lo": ci[f"{name}_CCC_lo"], "CCC_hi": ci[f"{name}_CCC_hi"],
                         "PCC": scores[f"{name}_PCC"], "MAE": scores[f"{name}_MAE"],
                         "MAPE": scores[f"{name}_MAPE"]})
    return pd.DataFrame(rows)

