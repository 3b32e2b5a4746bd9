"""A checkpoint alone rebuilds its model: configuration in, identical predictions out."""

from __future__ import annotations

import pytest
import torch

from emorec.models import CNN2D, CNNLSTM, I3D, build_model, load_model
from emorec.train import checkpoint as ckpt

SMALL = dict(backbone="vgg11", width=0.125)


@pytest.mark.parametrize("model, x", [
    (CNN2D(task="regression", **SMALL, seed=1), torch.rand(2, 3, 32, 32)),
    (CNNLSTM(**SMALL, hidden_size=8, seed=1), torch.rand(2, 3, 4, 32, 32)),
    (I3D(**SMALL, preset="C2", seed=1), torch.rand(2, 3, 4, 32, 32)),
])
def test_checkpoint_rebuilds_the_same_model(tmp_path, model, x):
    path = tmp_path / "best.pt"
    ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config)}, path)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


def test_pretrained_weights_are_not_needed_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ImageNet file here
    config = CNN2D(**SMALL).config | {"width": 1.0, "weights": "imagenet"}
    with pytest.raises(FileNotFoundError):
        build_model(config)
    assert isinstance(build_model(config, pretrained=False), CNN2D)


def test_bad_configurations_and_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        build_model({"kind": "transformer"})
    with pytest.raises(ValueError, match="does not fit CNN2D"):
        build_model({"kind": "cnn2d", "no_such_option": 1})
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt"):
        load_model(foreign)
    no_config = tmp_path / "no_config.pt"
    ckpt.save({"format": ckpt.FORMAT, "model": {}, "model_config": None}, no_config)
    with pytest.raises(ValueError, match="no model configuration"):
        load_model(no_config)
