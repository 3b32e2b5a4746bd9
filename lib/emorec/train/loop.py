"""The training loop of §4.3-4.5: fit with early stopping, checkpoints and resume; predict; evaluate."""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from emorec import metrics
from emorec.train import checkpoint as ckpt
from emorec.train import distributed as dist_util
from emorec.train.augment import augment_batch
from emorec.train.batches import (class_weights, dataset_labels, model_to_channels_last, seed_worker,
                                  split_batch, to_device)
from emorec.train.config import RUNTIME_FIELDS, TrainConfig, TrainResult


def fit(model: torch.nn.Module, train_set: Dataset, val_set: Dataset | None, config: TrainConfig,
        run_dir) -> TrainResult:
    """Train ``model`` with Adam (§4.3-4.5), early stopping on the validation metric, and resume.

    Regression targets are multiplied by ``config.multiplier`` for the loss (MSE, §4.4, or
    1 - CCC) and predictions divided by it before any metric (§3.3.2 "Multiplier"); the
    validation metric is the mean CCC over ``config.target_names`` (Eq. (7)). Classification
    uses cross-entropy with inverse-frequency class weights and the §4.3 augmentation; its
    metric is accuracy.

    ``run_dir`` receives ``checkpoint.pt`` after every epoch (model, optimiser, RNG states,
    early-stopping state, history, config; written atomically), ``best.pt`` whenever the
    validation metric improves (with the model's ``config`` attribute when it has one) and
    ``history.json``. Calling ``fit`` again on a ``run_dir`` holding a checkpoint resumes it and
    ends with the same weights, bit for bit on CPU, as an uninterrupted run. Under ``torchrun``
    the processes split each global batch (DDP), rank 0 alone writes, and validation metrics
    cover the whole validation set.
    """
    _check_multiplier(model, config)
    ctx, device = dist_util.setup(config.device)
    return _Trainer(model, train_set, val_set, config, Path(run_dir), ctx, device).run()


def predict(model: torch.nn.Module, dataset: Dataset, config: TrainConfig | None = None) -> np.ndarray:
    """Model outputs for every item of ``dataset``, in order (§4.4-4.5 inference).

    Regression outputs are divided by ``config.multiplier`` (the scale the metrics of §4.2 and
    the post-processing of §3.4 expect); classification returns the logits.
    """
    config = config or TrainConfig()
    _check_multiplier(model, config)
    device = dist_util.resolve_device(config.device)
    model.to(device)
    outputs, _ = _predict_raw(model, dataset, config, device, dist_util.DistContext())
    return _unscale(outputs, config).numpy()


def evaluate(model: torch.nn.Module, dataset: Dataset, config: TrainConfig | None = None) -> dict[str, float]:
    """Metrics of ``model`` on ``dataset``: §4.2's MAE, MAPE, PCC, CCC per target, or accuracy (§4.3).

    Regression keys are ``"<target>_<metric>"`` plus ``"CCC_mean"``; MAPE skips zero labels
    (see :func:`emorec.metrics.mape`). Classification gives ``accuracy`` and
    ``balanced_accuracy`` (mean per-class recall).
    """
    config = config or TrainConfig()
    _check_multiplier(model, config)
    device = dist_util.resolve_device(config.device)
    model.to(device)
    outputs, targets = _predict_raw(model, dataset, config, device, dist_util.DistContext())
    return _metrics(_unscale(outputs, config), targets, config)


class _Trainer:
    """State of one ``fit`` call; methods are the steps of an epoch."""

    def __init__(self, model, train_set, val_set, config: TrainConfig, run_dir: Path, ctx, device):
        if len(train_set) == 0:
            raise ValueError("train_set is empty")
        if val_set is not None and len(val_set) == 0:
            raise ValueError("val_set is empty")
        if config.batch_size % ctx.world_size:
            raise ValueError(f"batch_size {config.batch_size} (global) is not divisible by the "
                             f"{ctx.world_size} processes of this torchrun job")
        self.model, self.train_set, self.val_set = model, train_set, val_set
        self.config, self.run_dir, self.ctx, self.device = config, run_dir, ctx, device
        self.fast = device.type == "cuda"  # AMP and channels_last only pay off (and are tested) on CUDA
        self.ckpt_path, self.best_path = run_dir / ckpt.CHECKPOINT, run_dir / ckpt.BEST
        self.show_progress = ctx.is_main and (sys.stderr.isatty() if config.progress is None else config.progress)

    # -- set-up ---------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        cfg, ctx = self.config, self.ctx
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if ctx.is_main:
            ckpt.remove_stale_temporaries(self.run_dir)
        state = self._load_resumable()
        if state is None:
            _seed_everything(cfg.seed + ctx.rank)
        self._prepare_model(state)
        self.loss_fn = self._make_loss()
        self.loader_gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, ctx.rank, 1))
        self.aug_gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, ctx.rank, 2))
        self.sampler = DistributedSampler(self.train_set, num_replicas=ctx.world_size, rank=ctx.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=False)
        self.loader = self._loader(self.train_set, self.sampler, cfg.batch_size // ctx.world_size,
                                   self.loader_gen)
        self.history = list(state["history"]) if state else []
        self.es = dict(state["early_stopping"]) if state else {
            "best_metric": -math.inf, "best_epoch": 0, "bad_epochs": 0, "stopped": False}
        start = state["epoch"] if state else 0
        if state:
            self._restore_rng(state, start)

        for epoch in range(start + 1, cfg.epochs + 1):
            if self.es["stopped"]:
                break
            self._epoch(epoch)

        dist_util.barrier(ctx)
        if cfg.restore_best and self.best_path.is_file():
            ckpt.load_weights(self.model, self.best_path)
        return TrainResult(history=self.history, best_epoch=self.es["best_epoch"],
                           best_metric=self.es["best_metric"], metric_name=self.config.metric_name,
                           stopped_early=self.es["stopped"], best_path=self.best_path,
                           checkpoint_path=self.ckpt_path)

    def _load_resumable(self) -> dict | None:
        if not self.ckpt_path.exists():
            return None
        state = ckpt.load_checkpoint(self.ckpt_path)
        saved = {k: v for k, v in state["config"].items() if k not in RUNTIME_FIELDS}
        now = {k: v for k, v in self.config.to_dict().items() if k not in RUNTIME_FIELDS}
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if diff:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
            raise ValueError(f"checkpoint {self.ckpt_path} was written with a different configuration "
                             f"({details}); use a new run_dir or the same configuration to resume")
        return state

    def _prepare_model(self, state: dict | None) -> None:
        cfg, model = self.config, self.model
        model.to(self.device)
        if self.fast and cfg.channels_last:
            model_to_channels_last(model)
        if state is not None:
            model.load_state_dict(state["model"])
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameter (every requires_grad is False)")
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(model, device_ids=ids)
        else:
            self.train_model = model

    def _restore_rng(self, state: dict, epoch: int) -> None:
        states = state["rng"]
        if len(states) == self.ctx.world_size:
            ckpt.set_rng_state(states[self.ctx.rank], self.loader_gen, self.aug_gen)
            return
        # A different number of processes cannot continue the same random streams; reseed per epoch.
        if self.ctx.is_main:
            print(f"note: {self.ckpt_path} was written by {len(states)} process(es), resumed with "
                  f"{self.ctx.world_size}: the run continues but is not bit-identical", file=sys.stderr)
        seed = _derive_seed(self.config.seed, self.ctx.rank, 3 + epoch)
        _seed_everything(seed)
        self.loader_gen.manual_seed(_derive_seed(seed, 1, 1))
        self.aug_gen.manual_seed(_derive_seed(seed, 2, 2))

    def _make_loss(self):
        cfg = self.config
        weight = None
        if cfg.task == "classification" and cfg.class_weighting:
            weight = class_weights(dataset_labels(self.train_set), cfg.num_classes).to(self.device)
        return make_loss(cfg, weight)

    def _loader(self, dataset, sampler, batch_size, generator) -> DataLoader:
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.config.num_workers,
                            worker_init_fn=seed_worker, generator=generator, pin_memory=self.fast,
                            drop_last=self.config.drop_last)
        if len(loader) == 0:
            raise ValueError(f"drop_last leaves no training batch: {len(dataset)} samples, batch {batch_size}"
                             f" per process")
        return loader

    # -- one epoch ------------------------------------------------------------------------------

    def _epoch(self, epoch: int) -> None:
        cfg, ctx = self.config, self.ctx
        t0 = time.perf_counter()
        self.sampler.set_epoch(epoch)
        row = {"epoch": epoch, "train_loss": self._train_one_epoch(epoch)}
        if self.val_set is not None:
            row.update(self._validate(epoch))
            improved = self._early_stopping(row["val_" + self.config.metric_name], epoch)
        else:
            improved = True
            self.es.update(best_epoch=epoch, best_metric=math.nan)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        self.history.append(row)
        rng = dist_util.gather_objects(ckpt.rng_state(self.loader_gen, self.aug_gen), ctx)
        if ctx.is_main:
            self._write(epoch, rng, improved)
            if cfg.verbose:
                print(self._epoch_line(row), flush=True)
        dist_util.barrier(ctx)

    def _train_one_epoch(self, epoch: int) -> float:
        cfg = self.config
        self.train_model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        bar = tqdm(self.loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not self.show_progress)
        for batch in bar:
            x, y = split_batch(batch)
            x = to_device(x, self.device, self.fast and cfg.channels_last)
            y = _scale_targets(y.to(self.device, non_blocking=True), cfg)
            if cfg.augment:
                x = augment_batch(x, self.aug_gen, cfg.rotation_deg, cfg.flip_p, cfg.brightness)
            loss = training_step(self.train_model, self.optimizer, self.loss_fn, x, y, cfg, self.params)
            total += loss.double() * len(y)
            count += len(y)
        summed = dist_util.all_sum(torch.stack([total, torch.tensor(float(count), dtype=torch.float64,
                                                                         device=self.device)]), self.ctx)
        mean = float(summed[0] / summed[1])
        if not math.isfinite(mean):
            raise ValueError(f"training loss is not finite at epoch {epoch} ({mean}): training diverged; "
                             "try a lower lr, grad_clip or a smaller multiplier")
        return mean

    def _validate(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        outputs, targets = _predict_raw(self.model, self.val_set, cfg, self.device, self.ctx)
        if not torch.isfinite(outputs).all():
            raise ValueError(f"validation outputs are not finite at epoch {epoch}: training diverged")
        loss = self.loss_fn(outputs, _scale_targets(targets, cfg).to(outputs.device))
        row = {"val_loss": float(loss)}
        row.update({f"val_{k}": v for k, v in _metrics(_unscale(outputs, cfg), targets, cfg).items()})
        return row

    def _early_stopping(self, value: float, epoch: int) -> bool:
        es, cfg = self.es, self.config
        value = -math.inf if math.isnan(value) else value
        improved = es["best_epoch"] == 0 or value > es["best_metric"] + cfg.min_delta
        if improved:
            es.update(best_metric=value, best_epoch=epoch, bad_epochs=0)
        else:
            es["bad_epochs"] += 1
            es["stopped"] = cfg.patience is not None and es["bad_epochs"] >= cfg.patience
        return improved

    def _write(self, epoch: int, rng: list, improved: bool) -> None:
        core = self.model
        if improved:
            model_cfg = getattr(core, "config", None)
            ckpt.save({"format": ckpt.FORMAT, "epoch": epoch, "model": core.state_dict(),
                       "model_config": None if model_cfg is None else ckpt.plain(model_cfg),
                       "train_config": self.config.to_dict(), "metric_name": self.config.metric_name,
                       "metric": self.es["best_metric"]}, self.best_path)
        ckpt.save({"format": ckpt.FORMAT, "epoch": epoch, "model": core.state_dict(),
                   "optimizer": self.optimizer.state_dict(), "rng": rng, "world_size": self.ctx.world_size,
                   "early_stopping": dict(self.es), "history": self.history,
                   "config": self.config.to_dict()}, self.ckpt_path)
        ckpt.save_json(self.history, self.run_dir / ckpt.HISTORY)

    def _epoch_line(self, row: dict) -> str:
        parts = [f"epoch {row['epoch']}/{self.config.epochs}", f"train_loss {row['train_loss']:.4f}"]
        key = "val_" + self.config.metric_name
        if key in row:
            parts += [f"val_loss {row['val_loss']:.4f}", f"{key} {row[key]:.4f}",
                      f"best {self.es['best_metric']:.4f} @ {self.es['best_epoch']}"]
        if self.es["stopped"]:
            parts.append(f"early stop (patience {self.config.patience})")
        return "  ".join(parts) + f"  [{row['seconds']:.1f} s]"


# -- helpers shared by fit, predict and evaluate ---------------------------------------------------

def training_step(model, optimizer, loss_fn, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                  params) -> torch.Tensor:
    """One optimisation step on a prepared batch (bf16 autocast on CUDA when ``config.amp``); the loss."""
    device = x.device
    with _autocast(device, config.amp):
        out = model(x)
    loss = loss_fn(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    return loss.detach()


def make_loss(config: TrainConfig, weight: torch.Tensor | None = None):
    """The loss of ``config``: MSE (§4.4) or 1 - CCC for regression, weighted cross-entropy (§4.3)."""
    if config.task == "regression":
        return _ccc_loss if config.loss_name == "ccc" else _mse_loss
    return _WeightedCrossEntropy(weight)


def _predict_raw(model, dataset, config: TrainConfig, device, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw outputs (multiplied scale) and targets of the whole dataset, on CPU, in dataset order."""
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False)
    loader = DataLoader(dataset, batch_size=max(1, config.batch_size // ctx.world_size), sampler=sampler,
                        num_workers=config.num_workers, worker_init_fn=seed_worker,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed))
    fast = device.type == "cuda"
    was_training = model.training
    model.eval()
    outs, ys = [], []
    try:
        with torch.no_grad():
            for batch in loader:
                x, y = split_batch(batch)
                with _autocast(device, config.amp):
                    out = model(to_device(x, device, fast and config.channels_last))
                outs.append(out.float())
                ys.append(y.to(device))
    finally:
        model.train(was_training)
    outputs = dist_util.gather_rows(torch.cat(outs), len(dataset), ctx).cpu()
    targets = dist_util.gather_rows(torch.cat(ys), len(dataset), ctx).cpu()
    return outputs, targets


def _metrics(outputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig) -> dict[str, float]:
    if config.task == "classification":
        pred = outputs.argmax(dim=1).numpy()
        true = targets.long().numpy()
        recalls = [np.mean(pred[true == c] == c) for c in np.unique(true)]
        return {"accuracy": float(np.mean(pred == true)), "balanced_accuracy": float(np.mean(recalls))}
    out, tgt = _as_columns(outputs, targets, config)
    result = {}
    for j, name in enumerate(config.target_names):
        y, p = tgt[:, j].double().numpy(), out[:, j].double().numpy()
        result[f"{name}_MAE"] = metrics.mae(y, p)
        result[f"{name}_MAPE"] = metrics.mape(y, p, on_zero="skip") if np.any(y != 0) else math.nan
        result[f"{name}_PCC"] = metrics.pcc(y, p)
        result[f"{name}_CCC"] = metrics.ccc(y, p)
    result["CCC_mean"] = float(np.mean([result[f"{n}_CCC"] for n in config.target_names]))
    return result


def _as_columns(outputs, targets, config):
    out = outputs.reshape(len(outputs), -1)
    tgt = targets.reshape(len(targets), -1).to(out.dtype)
    k = len(config.target_names)
    if out.shape != tgt.shape or out.shape[1] != k:
        raise ValueError(f"model outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} do not "
                         f"both have {k} column(s) named {list(config.target_names)}")
    return out, tgt


def _check_multiplier(model: torch.nn.Module, config: TrainConfig) -> None:
    """A model that declares its target multiplier (I3D, Table 3) must be trained with that one."""
    declared = getattr(model, "multiplier", None)
    if declared is not None and float(declared) != config.multiplier:
        raise ValueError(f"the model declares target multiplier {float(declared)} but TrainConfig.multiplier is "
                         f"{config.multiplier}; use TrainConfig(multiplier=model.multiplier)")


def _scale_targets(y: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    if config.task == "classification":
        return y.long()
    return y.float() * config.multiplier


def _unscale(outputs: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return outputs / config.multiplier if config.task == "regression" else outputs


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"model output shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")


def _mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check_shapes(pred, target)
    return F.mse_loss(pred, target)


def _ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check_shapes(pred, target)
    return metrics.ccc_loss(pred, target)


class _WeightedCrossEntropy:
    """Cross-entropy with class weights padded to the number of logits (absent classes weigh 0)."""

    def __init__(self, weight: torch.Tensor | None):
        self.weight = weight

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2 or target.ndim != 1 or len(logits) != len(target):
            raise ValueError(f"classification needs logits [N, C] and labels [N]; got {tuple(logits.shape)} "
                             f"and {tuple(target.shape)}")
        weight = self.weight
        if weight is not None:
            if len(weight) > logits.shape[1]:
                raise ValueError(f"the training labels name {len(weight)} classes but the model has "
                                 f"{logits.shape[1]} outputs")
            weight = F.pad(weight.to(logits.device), (0, logits.shape[1] - len(weight)))
        return F.cross_entropy(logits, target.to(logits.device), weight=weight)


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _derive_seed(*parts: int) -> int:
    """An independent 63-bit seed per (seed, rank, stream)."""
    return int(np.random.SeedSequence([p % 2**32 for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))
