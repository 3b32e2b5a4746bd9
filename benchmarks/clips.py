"""Clip loading speed: ClipDataset (memory-mapped crop cache) against one JPEG file per face crop.

The usual layout of face-crop datasets is one JPEG per crop, read with OpenCV frame by frame. Both
datasets here serve the same clips (same windows, same fused labels) as float32 [T, 3, H, W] in
[0, 1]; the crops are real face crops made by emorec.data.faces from a video (by default the first
video of the smoke corpus), repeated to a long video so that many clips exist. Printed: clips/s of
each through a DataLoader and their ratio. With ``--uint8`` both serve uint8 clips (the float
conversion then happens on the batch, e.g. on the GPU), which isolates the storage layout.

    .venv/bin/python benchmarks/clips.py
    .venv/bin/python benchmarks/clips.py --seq-len 64 --overlap 0.8 --workers 2
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
from torch.utils.data import DataLoader, Dataset

from emorec.data import clips, faces


class JpegClipDataset(Dataset):
    """The baseline: clip i = SL JPEG files opened, decoded and converted one by one."""

    def __init__(self, files: list[Path], windows: list[np.ndarray], labels: np.ndarray, as_uint8: bool = False):
        self.files, self.windows, self.labels, self.as_uint8 = files, windows, labels, as_uint8

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i):
        frames = [cv2.cvtColor(cv2.imread(str(self.files[j])), cv2.COLOR_BGR2RGB) for j in self.windows[i]]
        clip = torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))
        return (clip if self.as_uint8 else clip.float().div_(255.0)), torch.from_numpy(self.labels[i])


def long_track(root: Path, n_frames: int) -> faces.FaceTrack:
    """A track of ``n_frames`` real crops, memory-mapped as from the cache: the crops of one extracted
    video, repeated (a hand-made folder, so not opened with ``load_track``, which verifies entries)."""
    from emorec.data import synthetic
    from emorec.paths import resolve

    video = sorted((synthetic.ensure_corpora(resolve("data"), "smoke")["sewa"] / "videos").glob("*.avi"))[0]
    track = faces.extract_video(video, root / "source", progress=False)
    reps = -(-n_frames // len(track.crops))
    crops = np.concatenate([np.asarray(track.crops)] * reps)[:n_frames]
    entry = root / "long"
    entry.mkdir()
    np.save(entry / "crops.npy", crops)
    table = pd.DataFrame({"frame": np.arange(n_frames), "kept": True})
    return faces.FaceTrack(entry, np.load(entry / "crops.npy", mmap_mode="r"), table,
                           {"note": "benchmark: repeated crops"})


def rate(dataset: Dataset, batch_size: int, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(batch[0]) for batch in loader)
    return n / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="length of the long video in kept frames")
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscription)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best of each is kept")
    parser.add_argument("--uint8", action="store_true", help="both serve uint8 clips (float conversion left to the GPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        track = long_track(Path(tmp), args.frames)
        labels = np.random.default_rng(0).uniform(-1, 1, (len(track.crops), 2)).astype(np.float32)
        cached = clips.ClipDataset([track], [labels], args.seq_len, args.overlap, fusion="mean",
                                   as_uint8=args.uint8)
        jpeg_dir = Path(tmp) / "jpeg"
        jpeg_dir.mkdir()
        files = []
        for i, crop in enumerate(track.crops):
            files.append(jpeg_dir / f"{i:06d}.jpg")
            cv2.imwrite(str(files[-1]), cv2.cvtColor(np.asarray(crop), cv2.COLOR_RGB2BGR))
        windows = clips.make_windows(track.kept_frames, args.seq_len, args.overlap, 1)
        jpeg = JpegClipDataset(files, windows, cached.labels, as_uint8=args.uint8)
        assert len(jpeg) == len(cached)
        # Same clips up to JPEG loss: check one before timing.
        difference = (clips.to_float(jpeg[3][0]) - clips.to_float(cached[3][0])) if args.uint8 else jpeg[3][0] - cached[3][0]
        assert difference.abs().mean() < 0.02 and torch.equal(jpeg[3][1], cached[3][1])
        rate(cached, args.batch_size, args.workers), rate(jpeg, args.batch_size, args.workers)  # warm caches
        # Alternate the two and keep each one's best pass: other load on the machine only slows passes down.
        r_cached = r_jpeg = 0.0
        for _ in range(args.repeat):
            r_cached = max(r_cached, rate(cached, args.batch_size, args.workers))
            r_jpeg = max(r_jpeg, rate(jpeg, args.batch_size, args.workers))
    h, w = track.crops.shape[1:3]
    print(f"{len(cached)} clips of {args.seq_len} frames {h}x{w} (overlap {args.overlap:g}), "
          f"{'uint8' if args.uint8 else 'float32 in [0, 1]'}, batch {args.batch_size}, {args.workers} workers, "
          f"torch threads {torch.get_num_threads()}")
    print(f"per-frame JPEG files (cv2.imread): {r_jpeg:8.1f} clips/s")
    print(f"ClipDataset (memory-mapped cache):  {r_cached:8.1f} clips/s")
    print(f"speed-up: {r_cached / r_jpeg:.1f}x")


if __name__ == "__main__":
    main()
