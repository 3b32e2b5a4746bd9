"""The paper profile's own code paths at toy size: the 2D-CNN-LSTM trained end to end from a Table-1
checkpoint (``backbone_mode: finetune``, §4.4), the i3D from the same checkpoint (§4.5), and every
model kind keeping its tensors on the model's device (the meta device stands in for CUDA: mixing it
with CPU tensors fails as CUDA does)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emorec import config
from emorec.experiments import ArtefactStore
from emorec.experiments import i3d
from emorec.experiments.corpus import Corpus
from emorec.experiments.temporal import run_cnn_lstm, table2_configurations
from emorec.models import CNN2D, build_model, load_model
from emorec.train.checkpoint import FORMAT

from test_i3d_experiments import _record


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper_path_corpus")
    rng = np.random.default_rng(0)
    splits = ["train", "train", "validation", "validation", "test", "test"]
    return Corpus([_record(tmp, f"V{i}", s, rng) for i, s in enumerate(splits)], 10.0, "tiny test corpus", "fp-0")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A Table-1 style ``best.pt`` (model configuration + weights) of a VGG-11 at width 1/16."""
    model = CNN2D("vgg11", task="classification", num_outputs=7, width=0.0625, seed=3)
    path = tmp_path_factory.mktemp("table1") / "best.pt"
    torch.save({"format": FORMAT, "model": model.state_dict(), "model_config": model.config}, path)
    return path


def _paper_table2_row(**changes) -> dict:
    """The first configuration of the paper profile's Table 2, shrunk to toy size (same keys)."""
    cfg = config.load("paper")
    row = table2_configurations(cfg.table2, cfg.seed)[0]
    row.update(input_size=[32, 32], hidden_size=8, head_units=[8], epochs=2, patience=2, batch_size=4, lr=1e-3,
               seq_len=4, overlap=0.5, **changes)
    return row


def test_the_cascade_trains_end_to_end_from_a_table1_checkpoint(corpus, checkpoint, tmp_path):
    row = _paper_table2_row()
    assert row["backbone"] == "finetune"  # the paper profile's Table 2 mode
    store = ArtefactStore(tmp_path, "paper")
    first = run_cnn_lstm(row, corpus, checkpoint, store)
    assert -1 <= first["valence_CCC"] <= 1 and first["clips"]["train"] > 0
    model = load_model(f"{first['folder']}/model.pt")  # a complete cascade: backbone + LSTM + head
    assert model(torch.rand(1, 3, 4, 32, 32)).shape == (1, 2)
    initial = dict(load_model(checkpoint).features.named_parameters())
    trained = dict(model.features.named_parameters())
    assert trained.keys() == initial.keys()  # the cascade's backbone is the Table-1 network ...
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)  # ... and was trained end to end
    assert not list((tmp_path / "paper").rglob("checkpoint.pt"))  # no epoch checkpoint kept
    second = run_cnn_lstm(row, corpus, checkpoint, store)
    assert second["valence_CCC"] == first["valence_CCC"]  # loaded, not retrained


def test_the_i3d_trains_from_a_table1_checkpoint_at_toy_size(corpus, checkpoint, tmp_path, monkeypatch):
    row = next(r for r in i3d.i3d_grid("paper") if r["preset"] == "C2")
    row = dict(row, backbone="vgg11", base_model="VGG-11", source="raf", width=0.0625, input_size=[32, 32],
               seq_len=4, overlap=0.5, eval_overlap=0.5, epochs=1, patience=1, n_boot=20, lr=1e-3)
    monkeypatch.setattr(i3d, "initial_weights", lambda row, store: checkpoint)
    result = i3d.run_i3d(row, corpus, ArtefactStore(tmp_path, "paper"))
    assert result["status"] == "ok" and -1 <= result["arousal_CCC"] <= 1
    assert load_model(f"{result['folder']}/best.pt").multiplier == 100.0


@pytest.mark.parametrize("spec, shape", [
    (dict(kind="cnn2d", backbone="vgg16_bn", task="classification", width=0.125), (2, 3, 48, 40)),
    (dict(kind="cnn_lstm", backbone="vgg16", width=0.125, hidden_size=16), (2, 3, 4, 48, 40)),
    (dict(kind="i3d", backbone="vgg16", width=0.125, preset="C2"), (2, 3, 4, 48, 40)),
    (dict(kind="i3d", backbone="resnet50", width=0.125, preset="C1"), (2, 3, 4, 48, 40)),
])
def test_every_model_kind_keeps_its_tensors_on_the_models_device(spec, shape):
    with torch.device("meta"):
        model = build_model(spec, pretrained=False)
    model.train()  # dropout masks (the LSTM's recurrent ones too) are made in the forward pass
    out = model(torch.rand(shape, device="meta"))
    assert out.device.type == "meta"
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}
