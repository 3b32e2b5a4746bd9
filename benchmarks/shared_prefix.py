"""One training epoch of the cpu profile's cascade from the cached shared prefix vs from pixels.

The CPU profiles freeze the initialisation's conv1-conv4, compute their maps once per face and
train conv5 + LSTM + head on them (:mod:`emorec.experiments.prefix`). Without the cache every
epoch runs the frozen stages again on every frame of every clip (and reads and resizes the crops).
This script times one epoch of the same trainable part (:func:`emorec.train.loop.training_step`,
Adam, MSE) both ways, side by side in one run, on the synthetic clips of the cpu profile's
dimensions (width 0.25, 48×40 input, SL 16, batch 16, LSTM 128 units) and prints the ratio. The
one-off cost of computing the prefix is printed too. The pixel path reads its clips as the book's
end-to-end training does (:class:`emorec.data.clips.PixelClips`: crops resized per clip).

    .venv/bin/python benchmarks/shared_prefix.py              # 128 training clips
    .venv/bin/python benchmarks/shared_prefix.py --clips 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from emorec.data.clips import CachedClips, ClipIndex, PixelClips, resize_frames
from emorec.data.faces import FaceTrack
from emorec.models import CNNLSTM
from emorec.train import TrainConfig
from emorec.train.loop import make_loss, training_step


def epoch_seconds(model, trainee, loader, settings) -> float:
    params = [p for p in trainee.parameters() if p.requires_grad]
    optimizer, loss_fn = torch.optim.Adam(params, lr=settings.lr), make_loss(settings)
    model.train()
    start = time.perf_counter()
    for x, y in loader:
        training_step(trainee, optimizer, loss_fn, x, y, settings, params)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=128, help="training clips per epoch")
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_frames = args.clips * args.seq_len  # non-overlapping clips of one long video
    crops = rng.integers(0, 256, (n_frames, 100, 80, 3), dtype=np.uint8)
    labels = rng.uniform(-1, 1, (n_frames, 2)).astype(np.float32)
    clips = ClipIndex([np.arange(n_frames)], [labels], args.seq_len, 0.0)
    model = CNNLSTM("vgg16_bn", width=0.25, finetune_from="Conv_5_1", hidden_size=128, seed=0)
    prefix, suffix = model.split(4)
    settings = TrainConfig(task="regression", lr=3e-4, batch_size=args.batch, verbose=False)

    start = time.perf_counter()
    with torch.no_grad():
        frames = resize_frames(torch.from_numpy(crops).movedim(-1, -3).float() / 255, (48, 40))
        maps = prefix.module(frames).numpy().astype(np.float16)
    prefix_seconds = time.perf_counter() - start
    cached = DataLoader(CachedClips(clips, [maps]), batch_size=args.batch, shuffle=True)

    kept = pd.DataFrame({"frame": np.arange(n_frames), "time": np.arange(n_frames) / 10, "kept": True})
    track = FaceTrack(path="in-memory", crops=crops, frames=kept, meta={})
    from_pixels = DataLoader(PixelClips([track], [labels], args.seq_len, 0.0, (48, 40)), batch_size=args.batch,
                             shuffle=True)
    epoch_seconds(model, suffix, cached, settings)  # warm-up
    t_cached = epoch_seconds(model, suffix, cached, settings)
    t_pixels = epoch_seconds(model, model, from_pixels, settings)
    print(f"{args.clips} clips of {args.seq_len} frames, batch {args.batch}, cascade conv5 + LSTM + head trained")
    print(f"prefix computed once (conv1-conv4, {n_frames} frames): {prefix_seconds:6.2f} s")
    print(f"one epoch from the cached prefix:              {t_cached:6.2f} s")
    print(f"one epoch from pixels (prefix run every step): {t_pixels:6.2f} s")
    print(f"ratio pixels / cached prefix:                  {t_pixels / t_cached:6.1f}x")


if __name__ == "__main__":
    main()
