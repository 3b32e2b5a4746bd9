"""Figures 2, 3, 6, 7 and 8 of §3, drawn from the model objects themselves (matplotlib only).

Everything shown — layer lists, channel counts, output shapes, frozen blocks, inflated kernels — is
read from built models (shapes by a forward pass with hooks), so the figures follow the code.
"""
from __future__ import annotations

import matplotlib.patches as mpatches
import pandas as pd
import torch
from torch import nn

from ..inflation import inflate, temporal_radius
from .backbones import BLOCKS, PAPER_NAMES, count_parameters
from .cnn2d import CNN2D

_COLORS = {"conv": "#8fb8de", "pool": "#f3c98b", "fc": "#a8d5a2", "lstm": "#e5a3c4", "io": "#dddddd",
           "frozen": "#c9c9c9", "data": "#f7e7a6"}
_KINDS = ((nn.Conv2d, "conv"), (nn.Conv3d, "conv"), (nn.MaxPool2d, "pool"), (nn.MaxPool3d, "pool"),
          (nn.AdaptiveAvgPool2d, "pool"), (nn.AdaptiveAvgPool3d, "pool"), (nn.LSTM, "lstm"),
          (nn.Linear, "fc"))


def _kind(module):
    return next((k for t, k in _KINDS if isinstance(module, t)), None)


def layer_summary(model: nn.Module, example: torch.Tensor, stages_only_for=()) -> pd.DataFrame:
    """Conv, pool, LSTM and FC layers of ``model`` in call order, with output shapes (Figures 6, 8).

    Runs ``model(example)`` in eval mode with forward hooks. Submodules whose qualified name is in
    ``stages_only_for`` (e.g. ResNet stages) are reported as one row each instead of layer by layer.
    Columns: name, kind, layer (type), channels / units, output shape (without the batch), params.
    """
    rows, hooks = [], []

    def hook(name, kind):
        def record(module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            size = (module.hidden_size if kind == "lstm" else module.out_features if kind == "fc"
                    else getattr(module, "out_channels", None))
            rows.append(dict(name=name, kind=kind, layer=type(module).__name__, size=size,
                             output=tuple(out.shape[1:]), params=count_parameters(module)["total"]))
        return record

    for name, module in model.named_modules():
        if any(name.startswith(s + ".") for s in stages_only_for):
            continue
        kind = "stage" if name in stages_only_for else _kind(module)
        if kind:
            hooks.append(module.register_forward_hook(hook(name, kind)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    df = pd.DataFrame(rows)
    df["size"] = df["size"].astype("Int64")
    return df


def _box(ax, x, y, w, h, text, color, fontsize=7, rotation=0, hatch=None):
    ax.add_patch(mpatches.FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", facecolor=color,
                                         edgecolor="0.3", lw=0.8, hatch=hatch))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, rotation=rotation)


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="0.3", lw=1))


def _label(row) -> str:
    out = "×".join(str(s) for s in row.output[1:]) if row.kind != "fc" else ""
    if row.kind == "conv":
        return f"conv {row.size}\n{out}"
    if row.kind == "pool":
        return f"pool\n{out}"
    if row.kind == "lstm":
        return f"LSTM\n{row.size}"
    if row.kind == "stage":
        return f"{row.name.split('.')[-1]}\n{row.output[0]} ch\n{out}"
    return f"FC {row.size}"


def draw_layers(ax, summary: pd.DataFrame, title: str, input_label: str, output_label: str) -> None:
    """Draw a layer table (:func:`layer_summary`) as a left-to-right stack of boxes."""
    rows = list(summary.itertuples())
    ax.set_xlim(-1.4, len(rows) + 1.4)
    ax.set_ylim(0, 1)
    ax.axis("off")
    _box(ax, -1.3, 0.3, 0.9, 0.4, input_label, _COLORS["io"], fontsize=6)
    for i, row in enumerate(rows):
        _box(ax, i, 0.15, 0.8, 0.7, _label(row), _COLORS.get(row.kind, _COLORS["conv"]), 6, rotation=90)
    _box(ax, len(rows) + 0.2, 0.3, 0.9, 0.4, output_label, _COLORS["io"], fontsize=6)
    ax.set_title(title, fontsize=9)


def transfer_pipeline(fig, configs: list) -> None:
    """Figure 2 (§3.1): source weights → RAF-DB fine-tuning (new FC head) → SEWA regression models.

    ``configs``: dicts with ``backbone``, ``pretraining`` (e.g. "ImageNet", "VGG-Face") and
    ``finetune_from``; each row is a :class:`CNN2D` built (on the ``meta`` device) from it, so the
    stages, the frozen ones and the head's units are the model's own.
    """
    axes = fig.subplots(len(configs), 1, squeeze=False)[:, 0]
    for ax, cfg in zip(axes, configs):
        with torch.device("meta"):
            model = CNN2D(cfg["backbone"], task="classification", finetune_from=cfg["finetune_from"])
        ax.set_xlim(0, 14.6)
        ax.set_ylim(0, 1)
        ax.axis("off")
        _box(ax, 0.05, 0.25, 1.7, 0.5, f"{cfg['pretraining']}\n(pre-training)", _COLORS["data"], 7)
        _arrow(ax, 1.8, 0.5, 2.2, 0.5)
        for i, (name, stage) in enumerate(model.features.named_children()):
            frozen = not any(p.requires_grad for p in stage.parameters())
            convs = sum(isinstance(m, nn.Conv2d) for m in stage.modules())
            _box(ax, 2.25 + i * 1.05, 0.15, 0.95, 0.7, f"{name}\n{convs} conv\n{'frozen' if frozen else 'trained'}",
                 _COLORS["frozen"] if frozen else _COLORS["conv"], 6, hatch="//" if frozen else None)
        linears = [m for m in model.head if isinstance(m, nn.Linear)]
        for j, lin in enumerate(linears):
            _box(ax, 7.6 + j * 0.85, 0.2, 0.75, 0.6, f"FC\n{lin.out_features}", _COLORS["fc"], 6)
        x = 7.6 + len(linears) * 0.85
        _arrow(ax, x, 0.5, x + 0.35, 0.5)
        _box(ax, x + 0.4, 0.25, 1.6, 0.5, "RAF-DB\n7 emotions", _COLORS["data"], 7)
        _arrow(ax, x + 2.05, 0.5, x + 2.4, 0.5)
        _box(ax, x + 2.45, 0.1, 1.9, 0.8, "SEWA: valence,\narousal\n(CNN-LSTM, i3D)", _COLORS["lstm"], 6.5)
        n = count_parameters(model)
        ax.set_title(f"{PAPER_NAMES[cfg['backbone']]} from {cfg['finetune_from']}: "
                     f"{n['trainable'] / 1e6:.1f} M of {n['total'] / 1e6:.1f} M parameters trained on RAF-DB",
                     fontsize=8, loc="left")


def trainable_table(backbones, widths) -> pd.DataFrame:
    """Trainable parameters per starting block (Full, Conv_2_1 … Conv_5_1) of the RAF-DB classifier
    (§3.1, Table 1's "Convolution Block"), per backbone and width; models built on ``meta``."""
    rows = []
    for backbone in backbones:
        for width in widths:
            row = {"model": PAPER_NAMES[backbone], "width": width}
            for block in BLOCKS:
                with torch.device("meta"):
                    model = CNN2D(backbone, width=width, finetune_from=block)
                counts = count_parameters(model)
                row[block] = counts["trainable"]
            row["total"] = counts["total"]
            rows.append(row)
    return pd.DataFrame(rows)


def pipeline_overview(fig, lstm_summary: pd.DataFrame, i3d_summary: pd.DataFrame, clip_shape) -> None:
    """Figure 3 (§3): the two spatiotemporal models side by side, sizes read from their layer tables."""
    ax1, ax2 = fig.subplots(2, 1)
    c, t, h, w = clip_shape
    for ax in (ax1, ax2):
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 1)
        ax.axis("off")
    lstm = lstm_summary[lstm_summary.kind == "lstm"].iloc[0]
    feat = lstm_summary[lstm_summary.kind.isin(["conv", "stage"])].iloc[-1]
    fcs = lstm_summary[lstm_summary.kind == "fc"]["size"].tolist()
    boxes = [(f"clip\n{t} frames\n{h}×{w}", "io"), (f"2D-CNN\nper frame\n→ {feat.output[0]}×"
             f"{'×'.join(map(str, feat.output[1:]))}", "conv"), ("pool\n→ vector\nper frame", "pool"),
             (f"LSTM\n{lstm['size']} units", "lstm"), ("FC " + " → ".join(map(str, fcs)), "fc"),
             ("valence,\narousal", "io")]
    _chain(ax1, boxes, "2D-CNN-LSTM (§3.3.1)")
    last = i3d_summary[i3d_summary.kind.isin(["conv", "stage"])].iloc[-1]
    fcs = i3d_summary[i3d_summary.kind == "fc"]["size"].tolist()
    boxes = [(f"clip\n{t} frames\n{h}×{w}", "io"), (f"i3D-CNN\n(inflated)\n→ {last.output[0]}×"
             f"{'×'.join(map(str, last.output[1:]))}", "conv"), ("global\npool", "pool"),
             ("FC " + " → ".join(map(str, fcs)), "fc"), ("valence,\narousal", "io")]
    _chain(ax2, boxes, "i3D-CNN (§3.3.2)")


def _chain(ax, boxes, title):
    step = 10 / len(boxes)
    for i, (text, kind) in enumerate(boxes):
        _box(ax, i * step + 0.1, 0.15, step - 0.5, 0.7, text, _COLORS[kind], 7)
        if i:
            _arrow(ax, i * step - 0.4, 0.5, i * step + 0.1, 0.5)
    ax.set_title(title, fontsize=9, loc="left")


def inflation_options(conv: nn.Conv2d, time_kernel: int = 3, seed: int = 0, train_steps: int = 5) -> dict:
    """One 2D convolution inflated with each option of §3.3.2; returns {label: kernel [O, I, t', h, w]}.

    "masked" is copied + masking after ``train_steps`` AdamW steps (weight decay 0.1) on random
    clips, so the figure shows the centre slice unchanged and the others moved; "dilated ×2" shows
    the effective temporal footprint of a dilation-2 kernel (zeros between the taps).
    """
    seq = nn.Sequential(conv)
    out = {"copied": inflate(seq, time_kernel, "copied")[0].weight.detach(),
           "centered + zero": inflate(seq, time_kernel, "centered", "zero")[0].weight.detach(),
           "centered + random": inflate(seq, time_kernel, "centered", "random", seed=seed)[0].weight.detach()}
    masked = inflate(seq, time_kernel, "copied", mask_center=True)
    opt = torch.optim.AdamW(masked.parameters(), lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    for _ in range(train_steps):
        opt.zero_grad()
        masked(torch.rand(2, conv.in_channels, 4, 12, 12, generator=g)).pow(2).mean().backward()
        opt.step()
    out["masked (after AdamW)"] = masked[0].weight.detach()
    dil = inflate(seq, time_kernel, "copied", dilation=2)[0]
    span = torch.zeros(dil.weight.shape[:2] + (2 * (time_kernel - 1) + 1,) + dil.weight.shape[3:])
    span[:, :, ::2] = dil.weight.detach()
    out["dilated ×2 (copied)"] = span
    return out


def plot_kernels(fig, kernels: dict, out_ch: int = 0, in_ch: int = 0) -> None:
    """Figure 7 (§3.3.2): heatmaps of the time slices of one kernel per inflation option."""
    width = max(k.shape[2] for k in kernels.values())
    axes = fig.subplots(len(kernels), width, squeeze=False)
    vmax = max(k[out_ch, in_ch].abs().max().item() for k in kernels.values())
    for r, (label, kernel) in enumerate(kernels.items()):
        for t in range(width):
            ax = axes[r, t]
            ax.set_xticks([])
            ax.set_yticks([])
            if t >= kernel.shape[2]:
                ax.axis("off")
                continue
            ax.imshow(kernel[out_ch, in_ch, t].numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            if r == 0 or t >= next(iter(kernels.values())).shape[2]:
                ax.set_title(f"t = {t}", fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")


def _per_frame(net2d: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """The 2D network on every frame of [N, C, T, H, W] (one batch of N·T images) → [N, C', T, H', W']."""
    n, c, t, h, w = clip.shape
    out = net2d(clip.transpose(1, 2).reshape(n * t, c, h, w))
    return out.reshape(n, t, *out.shape[1:]).transpose(1, 2)


def equivalence_errors(net2d: nn.Module, clip: torch.Tensor) -> dict:
    """Max relative errors of §3.3.2's two equivalences on ``clip`` [N, C, T, H, W] (eval mode).

    * centered + zero vs the 2D network applied frame by frame (all frames);
    * copied vs the 2D network on a "boring" clip (the first frame repeated T times), on the interior
      frames ``radius … T−1−radius`` (:func:`emorec.inflation.temporal_radius`), and on the two end
      frames (``boring_ends``: the smaller of the two), which the zero padding reaches.
    Relative error = max |a − b| / max |b|.
    """
    net2d = net2d.eval()
    centered = inflate(net2d, mode="centered", init="zero").eval()
    copied = inflate(net2d, mode="copied").eval()
    radius, t = temporal_radius(copied), clip.shape[2]
    if t < 2 * radius + 1:
        raise ValueError(f"clip length {t} < 2·radius + 1 = {2 * radius + 1}: no interior frame")

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    with torch.no_grad():
        frames = _per_frame(net2d, clip)
        boring = clip[:, :, :1].expand_as(clip).contiguous()
        ref, out = net2d(clip[:, :, 0]), copied(boring)
        errs = [rel(out[:, :, i], ref) for i in range(t)]
        return {"frame_by_frame": rel(centered(clip), frames), "radius": radius,
                "boring_interior": max(errs[radius:t - radius]),
                "boring_ends": min(errs[0], errs[-1]), "boring_per_frame": errs}


__all__ = ["layer_summary", "draw_layers", "transfer_pipeline", "trainable_table", "pipeline_overview",
           "inflation_options", "plot_kernels", "equivalence_errors"]
