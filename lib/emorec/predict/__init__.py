"""Valence and arousal of any video with a trained model: the ``emorec predict`` path (§6, ours).

The paper stops at test scores (§4-5); its conclusion (§6) talks of live applications. This package
runs a checkpoint of the book (a 2D-CNN-LSTM of §3.3.1, an i3D-CNN of §3.3.2, or a frame-by-frame
2D regressor) on a new video with the preprocessing of §3.2 and the post-processing of §3.4:

1. frames are sampled at ``fps`` and MTCNN finds and crops the face (§3.2.1,
   :func:`emorec.data.faces.extract_video`); frames without a face are kept in the table, marked.
   With tracking (``FaceExtractor(track_every=k)``, the command's default) every face has a track
   and the series is the largest consistent track (most frames kept, then the larger mean box;
   :func:`emorec.data.faces.choose_track`), or with ``all_faces`` one series per track;
2. clips of ``seq_len`` consecutive face frames with overlapping ratio ``overlap`` (§3.2.2) go
   through the model. Clips run over each *face segment* (a run of face frames with no gap larger
   than ``tolerance``) from its first frame, and the last clip of a segment is aligned to its end,
   so every face frame of a segment at least ``seq_len`` long is covered (ours: training drops the
   tail instead, :func:`emorec.data.clips.make_windows`);
3. a frame's value is the mean of the clips covering it
   (:func:`emorec.experiments.evaluation.spread_clip_predictions`); frames without a face, or in a
   face segment too short for one clip, stay NaN: marked, never invented;
4. optionally the post-processing of §3.4 (time shift, centring, scaling) fitted on the training
   and validation videos of the run that produced the checkpoint (its ``result.json``), with the
   shift applied in seconds on the frame timeline.

A checkpoint carries its model's configuration (:func:`emorec.models.load_model`); the sequence
length, frame rate and input size the model was trained with are read from the checkpoint
(``input_size``) and from its artefact folder's ``config.json`` when present. The book's video
models also record the data they were trained on (``trained_on``: the corpus, whether its faces
were synthetic, profile, seed, commit), which every output repeats (ours). With one checkpoint per
label (the book's best model per label), faces are extracted once and each label's values come from
its own model.

The package: :mod:`.model` (a checkpoint and what it records), :mod:`.inference` (frames → clip
predictions → timeline), :mod:`.output` (the tables, figures and settings.json of ``--out``),
:mod:`.annotate` (the annotated MP4). The post-processing on a timeline lives in
:mod:`emorec.postprocess`, the figures in :mod:`emorec.plots` (:func:`emorec.plots.predict_figures`),
checkpoint scores on a corpus split in :mod:`emorec.experiments.checkpoint_eval`, still images as
clips in :mod:`emorec.data.video`.
"""

from ..plots import training_caption
from ..postprocess import postprocess_timeline
from .annotate import annotate_frame, write_annotated_video
from .inference import (DEFAULT_FPS, DEFAULT_OVERLAP, FRAME_COLUMNS, VideoPrediction, clip_predictions, clip_table,
                        frame_table, nearest_clip, predict_per_label, predict_video, prediction_windows, run_predict,
                        track_predictions)
from .model import CROP_SIZE, TARGETS, Predictor, load_predictor, load_predictors, per_label_checkpoints
from .output import OUTPUT_FILES, check_output_folder, predict_to_folder, save_prediction

__all__ = ["CROP_SIZE", "DEFAULT_FPS", "DEFAULT_OVERLAP", "FRAME_COLUMNS", "OUTPUT_FILES", "TARGETS", "Predictor",
           "VideoPrediction", "annotate_frame", "check_output_folder", "clip_predictions", "clip_table", "frame_table",
           "load_predictor", "load_predictors", "nearest_clip", "per_label_checkpoints", "postprocess_timeline",
           "predict_per_label", "predict_to_folder", "predict_video", "prediction_windows", "run_predict",
           "save_prediction", "track_predictions", "training_caption", "write_annotated_video"]
