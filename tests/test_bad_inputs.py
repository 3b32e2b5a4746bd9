"""The library's readers and settings refuse what a hostile user would hand them: the exception type
and a one-line message naming the file or the setting (the command line's side: test_cli_errors.py)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from emorec.data import faces, video
from emorec.experiments.evaluation import SplitPredictions, bootstrap_ccc
from emorec.experiments.temporal import save_cascade
from emorec.models import CNN2D, CNNLSTM
from emorec.models.weights import load_vggface_state
from emorec.predict import load_predictor
from emorec.train.checkpoint import NOT_LOADED, load_checkpoint, read_tensor_file


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled",))


@pytest.fixture(scope="module")
def cascade(tmp_path_factory):
    path = tmp_path_factory.mktemp("cascade") / "model.pt"
    save_cascade(CNNLSTM(backbone="vgg11", width=0.125, hidden_size=8, head_units=(8, 4), seed=0), [32, 32], path)
    return path


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"PK\x03\x04 not really a zip", pickle.dumps(_Payload())])
def test_bytes_that_are_not_a_checkpoint(tmp_path, content, capsys):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path}: not an emorec checkpoint: {NOT_LOADED}"
    assert err.value.__cause__ is None and err.value.__suppress_context__  # PyTorch's advice is not chained
    assert "unpickled" not in capsys.readouterr().out


def test_folder_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(ValueError, match=f"^{tmp_path}: is a folder, not a checkpoint file$"):
        load_predictor(tmp_path)
    with pytest.raises(FileNotFoundError, match="absent.pt: no such checkpoint file"):
        load_predictor(tmp_path / "absent.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt: not an emorec checkpoint: a PyTorch file without"):
        load_predictor(tmp_path / "foreign.pt")


def test_a_checkpoint_of_ours_still_loads(cascade):
    assert load_predictor(cascade).kind == "cnn_lstm"


@pytest.mark.parametrize("name, text, problem", [
    ("config.json", "{", "malformed JSON beside the checkpoint"),
    ("config.json", '{"config": {"overlap": "half"}}', "'config.overlap' is 'half'"),
    ("config.json", '{"config": {"seq_len": true}}', "'config.seq_len' is True"),
    ("result.json", "[1, 2]", "expected a JSON object beside the checkpoint, found list"),
])
def test_malformed_json_beside_a_checkpoint_is_named(tmp_path, cascade, name, text, problem):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(cascade.read_bytes())
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=f"^{tmp_path / name}: ") as err:
        load_predictor(checkpoint)
    assert problem in str(err.value)


def test_settings_recorded_beside_a_checkpoint_are_used(tmp_path, cascade):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(cascade.read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"config": {"seq_len": 6, "fps": 5, "lr": 0.1}}))
    assert load_predictor(checkpoint).trained == {"seq_len": 6, "fps": 5}


def test_weights_files_that_are_not_tensors(tmp_path):
    bad = tmp_path / "vgg_face_dag.pth"
    bad.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match=f"^{bad}: not a PyTorch weights file: {NOT_LOADED}$"):
        load_vggface_state(bad)
    with pytest.raises(ValueError, match=f"^{bad}: not an emorec checkpoint: {NOT_LOADED}$"):
        CNN2D("vgg11", width=0.25, weights=str(bad))
    with pytest.raises(ValueError, match="is a folder, not a checkpoint file"):
        read_tensor_file(tmp_path)


@pytest.mark.parametrize("fps", [math.nan, math.inf, 0.0, -5.0])
def test_sampling_rates_that_are_not_finite_and_positive(fps):
    with pytest.raises(ValueError, match="fps must be a finite number > 0"):
        video.resample_indices(100, 25.0, fps)


@pytest.mark.parametrize("size", [math.nan, math.inf, 5.0])
def test_face_sizes_mtcnn_cannot_search(size):
    with pytest.raises(ValueError, match="min_face_size"):
        faces.FaceExtractor(min_face_size=size)


@pytest.mark.parametrize("n_boot", [0, -1, 2.5])
def test_bootstrap_needs_at_least_one_resample(n_boot):
    rng = np.random.default_rng(0)
    split = SplitPredictions(["a", "b"], [rng.normal(size=(10, 2)) for _ in range(2)],
                             [rng.normal(size=(10, 2)) for _ in range(2)], coverage=1.0)
    with pytest.raises(ValueError, match="n_boot must be an integer >= 1"):
        bootstrap_ccc(split, n_boot=n_boot)
