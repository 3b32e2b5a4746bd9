"""The CUDA path, checked on a GPU: what the README's GPU figures come from (none measured yet).

On a CUDA machine, side by side in one run:

1. one training step of each model kind at paper size (full-width VGG-16 2D, VGG-16 CNN-LSTM,
   VGG-16 and ResNet50 i3D; 100×80, clips of 64) in fp32 and in bf16 autocast + channels_last:
   steps/s of each, their ratio, and the difference of the loss of one forward pass in eval mode (same
   seed, same batch, no dropout: only the arithmetic differs); a model that does not fit in the GPU's
   memory at batch 8 is reported and the next one runs;
2. MTCNN frames/s on the GPU against the CPU on the same synthetic video, in the extractor's batches
   as ``extract_video`` runs them, and whether the boxes agree (mean IoU); then the extraction of a
   real clip with MTCNN on the GPU and decoding inline vs in a worker thread
   (``benchmarks/faces.py --decode-workers --device cuda``);
3. one smoke Table 2 configuration end to end on CUDA: Table 1's smoke rows through ``emorec run
   table1 --profile smoke`` (submitit, one GPU per job), then ``emorec train table2:smoke:0``.

On a machine without CUDA it says so and exits 0. ``--device cpu --size cpu`` rehearses every step on
the CPU at the cpu profile's size (no bf16 there: its ratio is about 1 and the loss difference 0), so
the script can be checked before a GPU is lent.

    .venv/bin/python benchmarks/gpu_check.py
    .venv/bin/python benchmarks/gpu_check.py --device cpu --size cpu     # the rehearsal
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from train_step import MODELS, SIZES, model_and_batch, time_steps  # the sibling benchmark (same folder)


BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent


def first_loss(model_cfg: dict, shape, task: str, device: torch.device, fast: bool) -> float:
    """The loss of one training step from seed 0 on a fixed batch (fp32, or bf16 + channels_last), the
    model in eval mode: no dropout mask, whose random draws could differ between the two kernels."""
    from emorec.models import build_model
    from emorec.train import TrainConfig
    from emorec.train.batches import model_to_channels_last, to_device
    from emorec.train.loop import make_loss, training_step

    torch.manual_seed(0)
    model = build_model(model_cfg).to(device).eval()
    multiplier = float(getattr(model, "multiplier", 1.0))
    config = TrainConfig(task=task, lr=1e-5, multiplier=multiplier, amp=fast, channels_last=fast, device=str(device))
    if fast:
        model_to_channels_last(model)
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(1)
    x = to_device(torch.rand(shape, generator=generator), device, fast)
    y = (torch.randint(0, 7, (shape[0],), generator=generator) if task == "classification"
         else (torch.rand(shape[0], 2, generator=generator) * 2 - 1) * multiplier).to(device)
    loss = training_step(model, torch.optim.Adam(params, lr=config.lr), make_loss(config), x, y, config, params)
    return float(loss)


def training_steps(device: torch.device, size: str) -> None:
    print(f"1. one training step at {size} size, fp32 vs bf16 autocast + channels_last (batch 8)")
    for name in MODELS:
        model_cfg, shape, task = model_and_batch(name, SIZES[size], 8)
        try:
            fp32 = time_steps(model_cfg, shape, task, device, False, warmup=2, steps=5)
            fast = time_steps(model_cfg, shape, task, device, True, warmup=2, steps=5)
            diff = abs(first_loss(model_cfg, shape, task, device, False)
                       - first_loss(model_cfg, shape, task, device, True))
        except torch.OutOfMemoryError:
            print(f"  {name:<15} out of GPU memory at input {tuple(shape)}; next model", flush=True)
            torch.cuda.empty_cache()
            continue
        print(f"  {name:<15} fp32 {1 / fp32:6.2f} steps/s  bf16+CL {1 / fast:6.2f} steps/s  "
              f"ratio x{fp32 / fast:.2f}  |loss fp32 - bf16| {diff:.2e}", flush=True)


def mtcnn_rates(device: str) -> None:
    from emorec.data.faces import FaceExtractor, box_iou
    from emorec.data.synthetic import ensure_corpora
    from emorec.data.video import iter_frames

    print(f"2. MTCNN frames/s, {device} vs cpu, on a synthetic smoke video")
    video = sorted((ensure_corpora("data", "smoke")["sewa"]).rglob("*.avi"))[0]
    frames = np.stack([rgb for _, _, rgb in iter_frames(video, 10)])
    boxes = {}
    for where in dict.fromkeys((device, "cpu")):
        extractor = FaceExtractor(device=where)
        extractor.detect(frames[:8])  # warm-up
        start = time.perf_counter()
        step = extractor.batch_size  # the batches extract_video gives it
        boxes[where] = np.concatenate([extractor.detect(frames[i:i + step])[0] for i in range(0, len(frames), step)])
        print(f"  {where}: {len(frames) / (time.perf_counter() - start):.1f} frames/s ({len(frames)} frames, "
              f"batch {step})", flush=True)
    found = {where: np.isfinite(b[:, 0]) for where, b in boxes.items()}
    both = found[device] & found["cpu"]
    iou = box_iou(boxes[device][both], boxes["cpu"][both]).mean() if both.any() else float("nan")
    print(f"  faces found: {device} {found[device].sum()}, cpu {found['cpu'].sum()}; mean IoU {iou:.4f}")
    _show("  decoding inline vs in a worker, MTCNN on " + device,
          [sys.executable, str(BENCHMARKS / "faces.py"), "--decode-workers", "--device", device, "--repeat", "3"], 8)


def _show(title: str, command: list[str], last: int) -> int:
    """Run ``command`` from the repository root, print the last lines of its output (of its errors
    too when it failed; they hold progress bars otherwise) and its exit status."""
    print(title, flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    shown = result.stdout + (result.stderr if result.returncode else "")
    print("    " + "\n    ".join(shown.strip().splitlines()[-last:]))
    print(f"    exit status {result.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
    return result.returncode


def smoke_table2() -> None:
    print("3. one smoke Table 2 configuration end to end (CUDA when present)")
    cli = [sys.executable, "-m", "emorec.cli"]
    if _show("  Table 1's smoke rows, the initialisation (emorec run, submitit)",
             cli + ["run", "table1", "--profile", "smoke", "--launcher", "local"], 3) == 0:
        _show("  Table 2's configuration 0 (emorec train)", cli + ["train", "table2:smoke:0"], 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a rehearsal)")
    parser.add_argument("--size", default="paper", choices=list(SIZES), help="the training steps' size")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing measured (exit 0).")
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (a rehearsal: nothing is measured)"
    print(f"device: {name}, torch {torch.__version__}")
    training_steps(device, args.size)
    mtcnn_rates(device.type)
    smoke_table2()
    return 0


if __name__ == "__main__":
    sys.exit(main())
