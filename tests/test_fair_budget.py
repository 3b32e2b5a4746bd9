"""Issue 12: the cascade, the i3D-CNN and the frame-by-frame baseline of the cpu (and smoke) profile are
trained on the same budget: the same frozen prefix (one cache entry), the same trainable blocks and
head, the same training settings. Built from the profiles' real parameters (params/<profile>.yaml
through emorec.config, as the chapters, `emorec train` and `emorec run` read them), not from values
restated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from emorec import cli, config as emorec_config
from emorec.experiments import i3d, prefix, temporal
from emorec.experiments.corpus import Corpus
from emorec.models import CNN2D, load_model
from emorec.train import checkpoint as ckpt

SHARED_SETTINGS = ("lr", "batch_size", "epochs", "patience", "input_size", "head_units")


def cascade_config(profile: str) -> dict:
    """The first configuration of chapter 4.4's grid in ``profile``, as the chapter builds it."""
    return cli.named_grid("table2", profile)[0]


def table1_checkpoint(folder: Path, width: float) -> Path:
    """A Table-1-like checkpoint of the profile's backbone and width (what both chapters start from)."""
    model = CNN2D("vgg16_bn", task="classification", width=width, seed=1)
    path = folder / f"best-{width}.pt"
    ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config)}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return table1_checkpoint(tmp_path_factory.mktemp("table1"), 0.25)


def _trainable(module: nn.Module) -> list[tuple[str, tuple]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters() if p.requires_grad]


def _convs(stages: nn.Module) -> list[tuple]:
    """(in, out, spatial kernel) of every convolution: the 2D and the inflated conv5 agree on these."""
    return [(m.in_channels, m.out_channels, tuple(m.kernel_size[-2:])) for m in stages.modules()
            if isinstance(m, (nn.Conv2d, nn.Conv3d))]


def _linears(head: nn.Module) -> list[tuple]:
    return [tuple(m.weight.shape) for m in head.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("profile", ["cpu", "smoke"])
def test_the_three_models_have_the_same_trainable_blocks_and_share_one_prefix(profile, tmp_path):
    config = cascade_config(profile)
    video_section = emorec_config.load(profile).i3d
    rows = cli.named_grid("i3d", profile)
    checkpoint = table1_checkpoint(tmp_path, rows[0]["width"])
    assert config["backbone"] == temporal.SHARED and all(r["shared_prefix"] for r in rows)
    assert config["trainable_from"] == video_section.trainable_from
    n = prefix.frozen_stage_count(config["trainable_from"])
    # the same settings: the clips (the grid's window is the i3D's), optimiser settings, early stopping
    for row in rows:
        assert {k: row[k] for k in SHARED_SETTINGS} == {k: config[k] for k in SHARED_SETTINGS}
        assert (row["seq_len"], row["overlap"], row["eval_overlap"]) == (config["seq_len"],) + (config["overlap"],) * 2

    cascade = temporal.build_cascade(config, checkpoint)
    baseline = temporal.build_frame_model(config, checkpoint)
    suffixes = {"cascade": cascade.split(n)[1], "baseline": baseline.split(n)[1]}
    for row in rows:
        model = i3d.I3D(**i3d.model_kwargs(row, checkpoint))
        suffixes[f"i3d {row['preset']}"] = model.split(n)[1]
        assert not any(p.requires_grad for p in model.split(n)[0].parameters())
    for model in (cascade, baseline):
        assert not any(p.requires_grad for p in model.split(n)[0].parameters())

    trained_stages = {name: {k.split(".")[0] for k, _ in _trainable(s.stages)} for name, s in suffixes.items()}
    assert set(map(frozenset, trained_stages.values())) == {frozenset({"conv5"})}, trained_stages
    assert _trainable(suffixes["cascade"].stages) == _trainable(suffixes["baseline"].stages)
    convs = {name: _convs(s.stages) for name, s in suffixes.items()}
    assert len({tuple(c) for c in convs.values()}) == 1 and convs["cascade"], convs
    heads = {name: _linears(s.temporal.head if name == "cascade" else s.head) for name, s in suffixes.items()}
    assert len({tuple(h) for h in heads.values()}) == 1, heads
    # everything the suffix does not hold is frozen: the budget is the suffix
    for name, model in (("cascade", cascade), ("baseline", baseline)):
        held = {id(p) for p in suffixes[name].parameters()}
        assert all(not p.requires_grad for p in model.parameters() if id(p) not in held)

    # one prefix: the same cache entry for the three models
    corpus = Corpus([], 10.0, "test corpus", "fingerprint-1")
    keys = {prefix.prefix_experiment(corpus, checkpoint, *temporal.prefix_settings(config)).key}
    keys |= {prefix.prefix_experiment(corpus, checkpoint, *i3d.prefix_settings(r)).key for r in rows}
    assert len(keys) == 1


def test_the_i3d_suffix_on_the_shared_prefix_is_the_whole_i3d(checkpoint):
    row = dict(i3d.i3d_grid("cpu")[1], seed=0)
    model = i3d.I3D(**i3d.model_kwargs(row, checkpoint)).eval()
    clips = torch.rand(2, 3, 4, 48, 40)
    prefix_2d = load_model(checkpoint).split(4)[0]
    with torch.no_grad():
        maps = torch.stack([prefix_2d(clips[:, :, t]) for t in range(4)], 2)
        torch.testing.assert_close(model.split(4)[1](maps), model(clips), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="trainable_from"):
        prefix.frozen_stage_count("conv2")


def test_ridge_probe_recovers_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = np.c_[x @ [1.0, -2.0, 0.0, 0.5, 0.0], rng.normal(size=400)]
    model = prefix.ridge_fit(x[:300], y[:300], alpha=1e-3)
    p = prefix.ridge_predict(model, x[300:])
    assert np.corrcoef(p[:, 0], y[300:, 0])[0, 1] > 0.99
    assert abs(np.corrcoef(p[:, 1], y[300:, 1])[0, 1]) < 0.3
