"""emorec.train under torchrun: two gloo processes on CPU against one process (DESIGN §7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import TinyRegressor, ddp_config, ddp_datasets

from emorec.train import fit, load_checkpoint

FIXTURES = Path(__file__).with_name("train_fixtures.py")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(FIXTURES), "ddp", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_both_ranks_end_with_identical_weights(ddp_run):
    a, b = _load(ddp_run / "full_rank0.pt"), _load(ddp_run / "full_rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_match_one_process_with_the_same_global_batch(ddp_run, tmp_path):
    # Each rank takes 4 of the 8 samples of a global batch and DDP averages the gradients: with
    # a mean-reduced MSE and no dropout/BN this is the one-process gradient up to rounding.
    train, val = ddp_datasets()
    torch.manual_seed(0)
    model = TinyRegressor(dropout=0.0)
    single = fit(model, train, val, ddp_config(epochs=2), tmp_path)
    two = _load(ddp_run / "full_rank0.pt")
    initial = TinyRegressor(dropout=0.0).state_dict()
    for k, v in model.state_dict().items():
        assert not torch.equal(v, initial[k])  # training moved the weights
        torch.testing.assert_close(two[k], v, atol=1e-5, rtol=1e-5)
    # Validation covered the whole (odd-sized) set: the metric matches the one-process run.
    ddp_history = load_checkpoint(ddp_run / "full" / "checkpoint.pt")["history"]
    for one, many in zip(single.history, ddp_history, strict=True):
        assert many["val_CCC_mean"] == pytest.approx(one["val_CCC_mean"], abs=1e-5)
        assert many["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)


def test_resumed_ddp_run_is_bit_identical(ddp_run):
    for rank in (0, 1):
        full, resumed = _load(ddp_run / f"full_rank{rank}.pt"), _load(ddp_run / f"resumed_rank{rank}.pt")
        assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_run_dir_holds_the_checkpoint_with_every_rank_rng_state(ddp_run):
    names = sorted(p.name for p in (ddp_run / "full").iterdir())
    assert names == ["best.pt", "checkpoint.pt", "history.json"]
    state = load_checkpoint(ddp_run / "full" / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
