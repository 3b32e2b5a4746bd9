"""Everything ``emorec predict`` writes into one folder: tables, figures, settings, annotated video (ours)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import storage
from ..data import video
from ..plots import chosen_series, figure_names, predict_figures
from .annotate import write_annotated_video
from .inference import VideoPrediction, _resolve_settings, run_predict
from .model import TARGETS, load_predictors

OUTPUT_FILES = {"csv": "predictions.csv", "clips": "clips.csv", "timeseries": "timeseries.png",
                "circumplex": "circumplex.png", "video": "annotated.mp4", "settings": "settings.json"}
OUTPUT_KIND = "predict output folder"
WRITER = "emorec.predict"
_output_name = storage.allowing(OUTPUT_FILES.values())


def check_output_folder(out_dir, need_bytes: int = 0) -> None:
    """Refuse an ``out_dir`` that ``emorec predict`` may not replace (ours): a file or link, a path
    under a file, an unwritable place, a disk without ``need_bytes`` free, or a folder holding
    anything but a previous run's outputs (so never a user's files, nor the input video or checkpoint)."""
    out_dir = Path(out_dir)
    storage.check_replaceable(out_dir, OUTPUT_KIND, _output_name, "another --out")
    storage.preflight(out_dir, need_bytes, "--out", swapped=True)


def _output_bytes(n_frames: int, annotated_video: bool, width: int, height: int) -> int:
    """A generous estimate of what the outputs take: the tables, two figures and the MP4 at 1/50 of
    the raw frames (OpenCV's mp4v writes about 1/180 on the face test videos, 1/10 on pure noise)."""
    return n_frames * 400 + 4_000_000 + (n_frames * width * height * 3 // 50 if annotated_video else 0)


def save_prediction(result: VideoPrediction, out_dir, annotated_video: bool = False,
                    progress: bool = False, figures=predict_figures) -> dict[str, Path]:
    """Write the CSVs, the two figures, the settings and (optionally) the annotated MP4 into ``out_dir``.

    Everything is written into a marked staging folder ``.<out>.predict-*`` beside ``out_dir`` and
    swapped in with renames, holding a lock on ``out_dir``: ``out_dir`` then holds exactly this run's
    files, and a failure leaves the previous ones untouched. ``out_dir`` must be absent, empty or an
    earlier output of ours (:func:`check_output_folder`); stale staging folders of a killed run are
    removed first (ours). ``figures``: what draws them (:func:`emorec.plots.predict_figures`, or a
    started :class:`emorec.plots.FigureWorker`)."""
    out_dir = Path(out_dir)
    settings = result.settings
    check_output_folder(out_dir, _output_bytes(len(result.frames), annotated_video, settings["video_width"],
                                               settings["video_height"]))
    with storage.locked(out_dir, f"{out_dir}: waiting for another emorec process writing into it"):
        storage.remove_stale(out_dir, OUTPUT_KIND, _output_name)
        stage = storage.staging_dir(out_dir, "predict", OUTPUT_KIND, WRITER)
        try:
            drawn = figure_names(result.frames)
            written = {key: stage / OUTPUT_FILES[key] for key in ("csv", "clips", *drawn, "settings")}
            result.frames.to_csv(written["csv"], index=False, float_format="%.6g")
            result.clips.to_csv(written["clips"], index=False, float_format="%.6g")
            figures(result.frames, settings, {key: written[key] for key in drawn})
            written["settings"].write_text(json.dumps({**result.settings, "timings_s": result.timings}, indent=1))
            if annotated_video:
                main, _ = chosen_series(result.frames, settings)
                written["video"] = write_annotated_video(result.settings["video"], main,
                                                         stage / OUTPUT_FILES["video"], result.settings["fps"],
                                                         progress=progress, shown_as=out_dir / OUTPUT_FILES["video"])
            storage.swap_in(stage, out_dir, OUTPUT_KIND, _output_name, "another --out")
        finally:
            if stage.exists():
                shutil.rmtree(stage)  # made above, in this call
    return {key: out_dir / path.name for key, path in written.items()}


def predict_to_folder(video_path, checkpoint, out_dir, annotated_video: bool = False, progress: bool = False,
                      figures=predict_figures, **kwargs) -> tuple[VideoPrediction, dict[str, Path]]:
    """:func:`run_predict` then :func:`save_prediction`: what ``emorec predict`` does (§6, ours).

    ``checkpoint``: one checkpoint, or ``{label: checkpoint}`` (:func:`run_predict`); the folder is
    written once either way. ``out_dir`` and the crop cache (``cache_dir``) are checked before any
    work: an ``out_dir`` that is not ours, or a cache inside ``out_dir`` (which each run replaces),
    is refused."""
    info = video.video_info(video_path)  # missing or unreadable video: fail before any work
    predictor = kwargs.pop("predictor", None)
    predictors = kwargs.pop("predictors", None) or load_predictors(checkpoint, predictor)
    rate = _resolve_settings(predictors[TARGETS[0]], kwargs.get("fps"), kwargs.get("seq_len"), kwargs.get("overlap"),
                             kwargs.get("tolerance"))["fps"]
    n_frames = len(video.resample_indices(info.n_frames, info.fps, min(rate, info.fps)))
    check_output_folder(out_dir, _output_bytes(n_frames, annotated_video, info.width, info.height))
    cache_dir = kwargs.get("cache_dir")
    if cache_dir is not None and storage.inside(cache_dir, out_dir):
        raise ValueError(f"{cache_dir}: the crop cache lies inside --out {out_dir}, which each run "
                         f"replaces; choose a cache folder outside it")
    if cache_dir is not None:
        storage.preflight(cache_dir, 0, "--cache")  # its free space: before extraction, if not reused
    result = run_predict(video_path, checkpoint, progress=progress, predictors=predictors, **kwargs)
    return result, save_prediction(result, out_dir, annotated_video, progress, figures)

