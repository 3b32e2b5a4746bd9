"""Training speed of each model: optimisation steps per second through emorec.train's own step.

Models (§3.1, §3.3): the 2D VGG-16 (RAF-DB classification, §4.3), the VGG-16 2D-CNN-LSTM (§4.4) and
the i3D VGG-16 and ResNet50 (Table 3's C2: copied inflation, masking, dilation 1-2-4-8; §4.5), at
two sizes:

* ``cpu``: the book's cpu profile (width x0.25, 100x80 input, clips of 16 frames, LSTM 128 units);
* ``paper``: full width, 100x80, clips of 64 frames, LSTM 1,024 units; on CPU a single step
  without warm-up at batch 1-2 (a step of a clip model takes minutes on 2 cores).

Each step is :func:`emorec.train.loop.training_step` (forward, loss, backward, Adam) on random
inputs, after warm-up steps. On CUDA it also measures bf16 autocast + channels_last against fp32,
side by side in the same run (``fast/fp32`` = the speed-up). Printed as a table.

    .venv/bin/python benchmarks/train_step.py                      # cpu size only
    .venv/bin/python benchmarks/train_step.py --sizes cpu paper    # both (slow on CPU)
    .venv/bin/python benchmarks/train_step.py --sizes paper --json artefacts/paper/throughput.json

``--json`` writes the training frames per second of each model kind (the fastest mode measured) for
``emorec run --dry-run``, which uses it in place of the assumed throughputs on the same device.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd
import torch

from emorec.models import build_model
from emorec.train import TrainConfig
from emorec.train.batches import model_to_channels_last, to_device
from emorec.train.loop import make_loss, training_step

SIZES = {
    "cpu": dict(width=0.25, input_size=(100, 80), seq_len=16, lstm_units=128),
    "paper": dict(width=1.0, input_size=(100, 80), seq_len=64, lstm_units=1024),
}
MODELS = ("vgg16_2d", "vgg16_cnn_lstm", "vgg16_i3d", "resnet50_i3d")
#: The plan's model kinds (emorec.run.MODEL_KIND) each benchmark entry measures.
KINDS = {"vgg16_2d": "cnn2d", "vgg16_cnn_lstm": "cnn_lstm", "vgg16_i3d": "i3d"}


def model_and_batch(name: str, size: dict, batch: int):
    """(model config, input shape, task) of one benchmark entry."""
    h, w = size["input_size"]
    clip = (batch, 3, size["seq_len"], h, w)
    if name == "vgg16_2d":
        return dict(kind="cnn2d", backbone="vgg16", task="classification", width=size["width"]), \
            (batch, 3, h, w), "classification"
    if name == "vgg16_cnn_lstm":
        return dict(kind="cnn_lstm", backbone="vgg16", width=size["width"], hidden_size=size["lstm_units"]), \
            clip, "regression"
    backbone = name.split("_")[0]
    return dict(kind="i3d", backbone=backbone, width=size["width"], preset="C2"), clip, "regression"


def time_steps(model_cfg: dict, shape, task: str, device: torch.device, fast: bool, warmup: int,
               steps: int) -> float:
    """Seconds per training step (mean over ``steps`` after ``warmup``)."""
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device)
    multiplier = float(getattr(model, "multiplier", 1.0))
    config = TrainConfig(task=task, lr=1e-5, multiplier=multiplier, amp=fast, channels_last=fast, device=str(device))
    if fast and device.type == "cuda":
        model_to_channels_last(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    loss_fn = make_loss(config)
    x = to_device(torch.rand(shape), device, fast and device.type == "cuda")
    y = (torch.randint(0, 7, (shape[0],)) if task == "classification" else torch.rand(shape[0], 2) * 2 - 1)
    y = y.to(device) if task == "classification" else y.to(device) * multiplier
    model.train()

    def run(n):
        for _ in range(n):
            training_step(model, optimizer, loss_fn, x, y, config, params)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(warmup)
    t0 = time.perf_counter()
    run(steps)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["cpu"], choices=list(SIZES))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", default="auto", help="'auto': CUDA when available")
    parser.add_argument("--batch-cpu", type=int, default=4, help="batch at the cpu size")
    parser.add_argument("--batch-paper", type=int, default=None,
                        help="batch at the paper size (default: 2 for images, 1 for clips on CPU; 8 on CUDA)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default 5; 1 at paper size on CPU, where one step takes minutes)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default 1; 0 at paper size on CPU)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write frames/s per model kind (for `emorec run --dry-run`) to this file")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f", {torch.get_num_threads()} threads, load average "
                                 f"{os.getloadavg()[0]:.1f}"), flush=True)
    rows = []
    for size_name in args.sizes:
        size = SIZES[size_name]
        for name in args.models:
            batch = _batch(args, size_name, name, device)
            slow = size_name == "paper" and device.type == "cpu"
            steps = args.steps or (1 if slow else 5)
            warmup = args.warmup if args.warmup is not None else (0 if slow else 1)
            model_cfg, shape, task = model_and_batch(name, size, batch)
            fp32 = time_steps(model_cfg, shape, task, device, False, warmup, steps)
            row = {"size": size_name, "model": name, "input": "x".join(map(str, shape)), "steps": steps,
                   "fp32 s/step": fp32, "fp32 steps/s": 1 / fp32}
            if device.type == "cuda":
                fast = time_steps(model_cfg, shape, task, device, True, warmup, steps)
                row.update({"bf16+CL s/step": fast, "bf16+CL steps/s": 1 / fast, "fast/fp32": fp32 / fast})
            row["frames/s"] = _frames(shape) / min(fp32, row.get("bf16+CL s/step", fp32))
            rows.append(row)
            print(_line(row), flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.json:
        write_throughput(args.json, rows, device)
    if device.type != "cuda":
        if "paper" in args.sizes:
            print("\nPaper-size steps on CPU are single steps without warm-up (one-time set-up included).")
        print("\nCUDA not available: the bf16 autocast + channels_last vs fp32 comparison was not run.")


def _frames(shape) -> int:
    """Frames in one batch: images, or clips × frames per clip."""
    return shape[0] * (shape[2] if len(shape) == 5 else 1)


def write_throughput(path: Path, rows: list[dict], device: torch.device) -> None:
    """frames/s per model kind of the last size measured, with the device's name, as JSON."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rates = {KINDS[r["model"]]: r["frames/s"] for r in rows if r["model"] in KINDS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"device": name, "frames_per_s": rates, "size": rows[-1]["size"],
                                "source": "benchmarks/train_step.py"}, indent=1))
    print(f"throughput written to {path}")


def _batch(args, size_name: str, name: str, device: torch.device) -> int:
    if size_name == "cpu":
        return args.batch_cpu
    if args.batch_paper is not None:
        return args.batch_paper
    if device.type == "cuda":
        return 8  # §4.5: batch 8 for the i3D
    return 2 if name == "vgg16_2d" else 1


def _line(row: dict) -> str:
    text = f"{row['size']:>5} {row['model']:<15} {row['input']:<18} fp32 {row['fp32 s/step']:.3f} s/step"
    if "fast/fp32" in row:
        text += f"  bf16+CL {row['bf16+CL s/step']:.3f} s/step  x{row['fast/fp32']:.2f}"
    return text


if __name__ == "__main__":
    main()
