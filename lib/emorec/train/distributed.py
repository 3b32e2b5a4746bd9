"""torch.distributed plumbing for ``torchrun`` launches (DESIGN §7): gloo on CPU, NCCL on CUDA."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    comm_device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(request: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` is ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU."""
    if request == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(request)
    except RuntimeError as err:
        raise ValueError(f"device {request!r} is not a torch device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {request!r} asked for CUDA, which is not available here")
    return device


def setup(device_request: str) -> tuple[DistContext, torch.device]:
    """Join the job described by torchrun's RANK / WORLD_SIZE / LOCAL_RANK, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), resolve_device(device_request)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_request, local_rank)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Once per process: later fit/predict calls reuse the group (re-creating a gloo group
        # after destroying it can hang), and it is destroyed when the interpreter exits.
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy)
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return DistContext(rank, world, local_rank, comm), device


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 tensor over processes (identity in a one-process job)."""
    if not ctx.enabled:
        return values
    buf = values.to(ctx.comm_device)
    dist.all_reduce(buf)
    return buf.to(values.device)


def gather_objects(obj, ctx: DistContext) -> list:
    """Every process's ``obj``, indexed by rank."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_rows(local: torch.Tensor, n_total: int, ctx: DistContext) -> torch.Tensor:
    """Reassemble a dataset-ordered tensor from shards of an unshuffled ``DistributedSampler``.

    Rank r holds rows r, r + W, r + 2W, ... (padded by wrapping to equal lengths), so stacking
    the shards along a new axis 1 and flattening restores the order; the padding is cut off.
    """
    if not ctx.enabled:
        return local
    buf = local.to(ctx.comm_device).contiguous()
    parts = [torch.empty_like(buf) for _ in range(ctx.world_size)]
    dist.all_gather(parts, buf)
    merged = torch.stack(parts, dim=1).reshape(-1, *buf.shape[1:])
    return merged[:n_total].to(local.device)
