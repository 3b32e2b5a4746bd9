"""``emorec predict`` speed as a multiple of real time (video seconds per second of work).

The video is a synthetic SEWA-like corpus video (320×240, 50 fps, like SEWA's chats), sampled at 10
fps; the model is the ``cpu`` profile's 2D-CNN-LSTM (VGG-16-BN at width 0.25, 48×40 input, LSTM 128):
the best valence model of chapter 4.4 when its summary exists, otherwise the same architecture with
random weights (same cost; the script says which). torch and OpenCV are limited to ``--threads``
threads (2, the book's machine). Printed: the whole ``run_predict`` (face extraction into a fresh
cache, clips, model; no figures or MP4) as a real-time factor, and its parts measured one by one on
the same frames: decoding, MTCNN detection (tracked as ``emorec predict`` does by default, or with
``--track-every 0`` on every frame) and cropping, the model. Target: ≥ 1× real time.

    .venv/bin/python benchmarks/predict.py
    .venv/bin/python benchmarks/predict.py --video some.avi --repeat 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from emorec import predict
from emorec.cli import DEFAULT_TRACK_EVERY
from emorec.data import faces, video


def cpu_checkpoint(artefact_root: str, work: Path) -> tuple[Path, int, str]:
    """The cpu CNN-LSTM checkpoint of chapter 4.4, or a random one of the same architecture."""
    from emorec.experiments import read_summary

    try:
        best = read_summary(artefact_root, "cpu", "cnn_lstm", "04_4_cnn_lstm")["best"]["valence"]
        return Path(best["folder"]) / "model.pt", int(best["seq_len"]), "chapter 4.4's best valence model (cpu)"
    except FileNotFoundError:
        from emorec.experiments.temporal import save_cascade
        from emorec.models import CNNLSTM

        model = CNNLSTM(backbone="vgg16_bn", width=0.25, finetune_from="Frozen", hidden_size=128,
                        head_units=(512, 128), seed=0)
        path = work / "model.pt"
        save_cascade(model, (48, 40), path)
        return path, 16, "random weights, the cpu architecture (no cpu summary of chapter 4.4 yet)"


def default_video(data_root: str) -> Path:
    from emorec.data.synthetic import ensure_corpora

    root = ensure_corpora(data_root, "cpu", 0)["sewa"]
    meta = pd.read_csv(root / "metadata.csv")
    return root / "videos" / f"{sorted(meta.loc[meta['split'] == 'test', 'video'])[0]}.avi"


def parts(path: Path, fps: float, predictor: predict.Predictor, seq_len: int,
          extractor: faces.FaceExtractor) -> dict[str, float]:
    """Decoding, detection (tracked or not) + cropping and the model, each timed alone on the same frames."""
    start = time.perf_counter()
    frames = video.read_video(path, fps)[0]
    decode = time.perf_counter() - start
    start = time.perf_counter()
    crops = []
    detect_faces = extractor.sequence()
    for b in range(0, len(frames), extractor.batch_size):
        batch = frames[b:b + extractor.batch_size]
        found = detect_faces(batch)  # every face (track) in the batch
        crops += [faces.crop_face(batch[i], box, predict.CROP_SIZE) for i, box in zip(found.frame, found.boxes)]
    detect = time.perf_counter() - start
    crops = np.stack(crops)
    start = time.perf_counter()
    starts = predict.prediction_windows(np.arange(len(crops)), seq_len, predict.DEFAULT_OVERLAP)
    predict.clip_predictions(predictor, crops, starts, seq_len)
    return {"decode": decode, "detect": detect, "model": time.perf_counter() - start}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=None, help="default: the first test video of the cpu corpus")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="passes; the fastest of each is kept")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--artefact-root", default="artefacts")
    parser.add_argument("--track-every", type=int, default=DEFAULT_TRACK_EVERY,
                        help="as `emorec predict --track-every` (0: MTCNN on every frame; default: %(default)s)")
    args = parser.parse_args(argv)
    extractor = faces.FaceExtractor(track_every=args.track_every or None)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, seq_len, what = cpu_checkpoint(args.artefact_root, Path(tmp))
        path = args.video or default_video(args.data_root)
        info = video.video_info(path)
        predictor = predict.load_predictor(checkpoint)
        totals, pieces = [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            predict.run_predict(path, checkpoint, fps=args.fps, seq_len=seq_len, cache_dir=Path(tmp) / f"faces{i}",
                                predictor=predictor, extractor=extractor)
            totals.append(time.perf_counter() - start)
            pieces.append(parts(path, args.fps, predictor, seq_len, extractor))
    best = min(totals)
    split = {k: min(p[k] for p in pieces) for k in pieces[0]}
    print(f"video: {path.name}, {info.width}x{info.height}, {info.fps:g} fps, {info.duration_s:.1f} s; "
          f"sampled at {args.fps:g} fps; {args.threads} threads; face tracking "
          f"{f'every {args.track_every} frames' if args.track_every else 'off'}")
    print(f"model: {what}; SL {seq_len}, OR {predict.DEFAULT_OVERLAP}")
    print(f"predict: {best:.2f} s for {info.duration_s:.1f} s of video = {info.duration_s / best:.2f}x real time "
          f"(best of {args.repeat})")
    for name, seconds in split.items():
        print(f"  {name:7s} {seconds:6.2f} s  ({info.duration_s / seconds:6.1f}x real time alone)")


if __name__ == "__main__":
    main()
