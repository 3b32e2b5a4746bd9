"""The CUDA path, checked on a GPU: what the README's GPU figures come from (none measured yet).

On a CUDA machine, side by side in one run:

1. one training step of each model kind at paper size (full-width VGG-16 2D, VGG-16 CNN-LSTM,
   VGG-16 and ResNet50 i3D; 100×80, clips of 64) in fp32 and in bf16 autocast + channels_last:
   steps/s of each, their ratio, and the difference of the first step's loss (same seed, same batch);
2. MTCNN frames/s on the GPU against the CPU on the same synthetic video, and whether the boxes agree;
3. one smoke Table 2 configuration end to end (`emorec train table2:smoke:0`, CUDA by default).

On a machine without CUDA it says so and exits 0.

    .venv/bin/python benchmarks/gpu_check.py
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import torch

from train_step import MODELS, SIZES, model_and_batch, time_steps  # the sibling benchmark (same folder)


def first_loss(model_cfg: dict, shape, task: str, device: torch.device, fast: bool) -> float:
    """The loss of one training step from seed 0 on a fixed batch (fp32, or bf16 + channels_last)."""
    from emorec.models import build_model
    from emorec.train import TrainConfig
    from emorec.train.batches import model_to_channels_last, to_device
    from emorec.train.loop import make_loss, training_step

    torch.manual_seed(0)
    model = build_model(model_cfg).to(device)
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


def training_steps(device: torch.device) -> None:
    print("1. one training step at paper size, fp32 vs bf16 autocast + channels_last (batch 8)")
    for name in MODELS:
        model_cfg, shape, task = model_and_batch(name, SIZES["paper"], 8)
        fp32 = time_steps(model_cfg, shape, task, device, False, warmup=2, steps=5)
        fast = time_steps(model_cfg, shape, task, device, True, warmup=2, steps=5)
        diff = abs(first_loss(model_cfg, shape, task, device, False) - first_loss(model_cfg, shape, task, device, True))
        print(f"  {name:<15} fp32 {1 / fp32:6.2f} steps/s  bf16+CL {1 / fast:6.2f} steps/s  "
              f"ratio x{fp32 / fast:.2f}  |loss fp32 - bf16| {diff:.2e}", flush=True)


def mtcnn_rates() -> None:
    from emorec.data.faces import FaceExtractor
    from emorec.data.synthetic import ensure_corpora
    from emorec.data.video import iter_frames

    print("2. MTCNN frames/s, GPU vs CPU, on a synthetic smoke video")
    video = sorted((ensure_corpora("data", "smoke")["sewa"]).rglob("*.avi"))[0]
    frames = np.stack([rgb for _, _, rgb in iter_frames(video, 10)])
    boxes = {}
    for device in ("cuda", "cpu"):
        extractor = FaceExtractor(device=device)
        extractor.detect(frames[:8])  # warm-up
        start = time.perf_counter()
        boxes[device] = extractor.detect(frames)
        print(f"  {device}: {len(frames) / (time.perf_counter() - start):.1f} frames/s ({len(frames)} frames)",
              flush=True)
    found = {device: np.isfinite(np.asarray(b[1], float)).sum() for device, b in boxes.items()}  # (boxes, probs, ...)
    print(f"  faces found: GPU {found['cuda']}, CPU {found['cpu']}")


def smoke_table2() -> None:
    print("3. one smoke Table 2 configuration end to end on CUDA")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "emorec.cli", "train", "table2:smoke:0"], capture_output=True,
                            text=True)
    print("  " + "\n  ".join((result.stdout + result.stderr).strip().splitlines()[-4:]))
    print(f"  exit status {result.returncode} in {time.perf_counter() - start:.0f} s")


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing measured (exit 0).")
        return 0
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    training_steps(device)
    mtcnn_rates()
    smoke_table2()
    return 0


if __name__ == "__main__":
    sys.exit(main())
