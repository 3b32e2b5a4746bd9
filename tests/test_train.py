"""emorec.train: repeatability, kill-and-resume, early stopping, class weights, multiplier, losses."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset
from train_fixtures import NoisyRegression, TinyConvNet, TinyImages, TinyRegressor, regression_config

from emorec import metrics
from emorec.train import (TrainConfig, augment_batch, class_weights, dataset_labels, evaluate, fit,
                          load_checkpoint, precompute_features, predict)

FIXTURES = Path(__file__).with_name("train_fixtures.py")


def _weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _strip_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _run(run_dir, seed=7, num_workers=0, epochs=2):
    torch.manual_seed(0)
    model = TinyRegressor()
    result = fit(model, NoisyRegression(64, seed=0), NoisyRegression(24, seed=1),
                 regression_config(seed=seed, num_workers=num_workers, epochs=epochs), run_dir)
    return model.state_dict(), result


# -- repeatability and resume -------------------------------------------------------------------

def test_same_seed_gives_identical_weights_and_other_seed_differs(tmp_path):
    w1, r1 = _run(tmp_path / "a")
    w2, r2 = _run(tmp_path / "b")
    w3, _ = _run(tmp_path / "c", seed=8)
    assert _weights_equal(w1, w2)
    assert _strip_seconds(r1.history) == _strip_seconds(r2.history)
    assert not _weights_equal(w1, w3)


def test_repeatable_with_worker_processes(tmp_path):
    # Dataset jitter runs in workers: worker_init_fn must seed NumPy/random from the loader.
    w1, _ = _run(tmp_path / "a", num_workers=2, epochs=1)
    w2, _ = _run(tmp_path / "b", num_workers=2, epochs=1)
    assert _weights_equal(w1, w2)


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    epochs = 5
    killed_dir = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, str(FIXTURES), "fit", str(killed_dir), str(epochs), "0.004"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt_file = killed_dir / "checkpoint.pt"
    try:
        while not ckpt_file.exists() and child.poll() is None:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()
    interrupted_at = load_checkpoint(ckpt_file)["epoch"]
    assert 1 <= interrupted_at < epochs

    reference, ref_result = _run(tmp_path / "ref", epochs=epochs)
    torch.manual_seed(123)  # the resumed model starts elsewhere: everything must come from the checkpoint
    model = TinyRegressor()
    result = fit(model, NoisyRegression(64, seed=0), NoisyRegression(24, seed=1),
                 regression_config(epochs=epochs), killed_dir)

    assert _weights_equal(model.state_dict(), reference)
    assert _strip_seconds(result.history) == _strip_seconds(ref_result.history)
    assert not list(killed_dir.glob("*.tmp"))


def test_checkpoints_load_with_the_safe_unpickler(tmp_path):
    _run(tmp_path, epochs=1)
    for name in ("checkpoint.pt", "best.pt"):
        obj = torch.load(tmp_path / name, map_location="cpu", weights_only=True)
        assert obj["epoch"] == 1
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["model_config"] == {"name": "tiny", "width": 16, "dropout": 0.2}
    assert TrainConfig.from_dict(best["train_config"]) == regression_config(epochs=1)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"model", "optimizer", "rng", "early_stopping", "history", "config"} <= state.keys()
    assert {"torch", "numpy", "python", "generators"} <= state["rng"][0].keys()


def test_finished_run_is_not_trained_again_but_can_be_extended(tmp_path):
    w2, _ = _run(tmp_path / "two", epochs=2)
    w1, _ = _run(tmp_path / "grow", epochs=1)
    again, result = _run(tmp_path / "grow", epochs=1)
    assert _weights_equal(again, w1) and len(result.history) == 1
    extended, result = _run(tmp_path / "grow", epochs=2)
    assert _weights_equal(extended, w2) and len(result.history) == 2


def test_resume_with_another_configuration_is_refused(tmp_path):
    _run(tmp_path, epochs=1)
    with pytest.raises(ValueError, match=r"checkpoint\.pt.*lr"):
        fit(TinyRegressor(), NoisyRegression(64), NoisyRegression(24), regression_config(epochs=2, lr=1e-3), tmp_path)


def test_corrupt_checkpoint_is_named_in_the_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint.pt"):
        fit(TinyRegressor(), NoisyRegression(64), NoisyRegression(24), regression_config(), tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


# -- early stopping ------------------------------------------------------------------------------

def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path):
    # Validation targets are the negated training targets: learning the training set makes the
    # validation CCC fall every epoch, so epoch 1 stays best and training stops `patience` later.
    torch.manual_seed(0)
    model = TinyRegressor(dropout=0.0)
    config = regression_config(epochs=20, patience=2, restore_best=True, lr=2e-2)
    result = fit(model, NoisyRegression(64), NoisyRegression(64, sign=-1.0), config, tmp_path)
    ccc = [row["val_CCC_mean"] for row in result.history]
    assert result.stopped_early and result.best_epoch == 1 and len(result.history) == 3
    assert ccc[1] < ccc[0] and ccc[2] < ccc[0]
    assert result.best_metric == ccc[0]
    assert _weights_equal(model.state_dict(), load_checkpoint(tmp_path / "best.pt")["model"])
    assert not _weights_equal(model.state_dict(), load_checkpoint(tmp_path / "checkpoint.pt")["model"])
    again = fit(model, NoisyRegression(64), NoisyRegression(64, sign=-1.0), config, tmp_path)
    assert len(again.history) == 3  # a stopped run stays stopped


# -- targets, multiplier, losses -------------------------------------------------------------------

def _frozen_step_history(tmp_path, loss, multiplier, n=32):
    """One epoch, one batch, at lr ~ 0: the logged losses are those of the initial model."""
    torch.manual_seed(0)
    model = TinyRegressor(dropout=0.0)
    initial = copy.deepcopy(model)
    data = NoisyRegression(n, noise=0.0)
    config = regression_config(epochs=1, batch_size=n, lr=1e-12, loss=loss, multiplier=multiplier)
    result = fit(model, data, data, config, tmp_path)
    with torch.no_grad():
        pred = initial(data.x).numpy().astype(np.float64)
    return result.history[0], pred, data.y.numpy().astype(np.float64)


def test_mse_loss_uses_multiplied_targets_and_metrics_divided_predictions(tmp_path):
    m = 4.0
    row, pred, y = _frozen_step_history(tmp_path, "mse", m)
    assert row["train_loss"] == pytest.approx(np.mean((pred - m * y) ** 2), rel=1e-5)
    assert row["val_loss"] == pytest.approx(np.mean((pred - m * y) ** 2), rel=1e-5)
    for j, name in enumerate(("valence", "arousal")):
        assert row[f"val_{name}_MAE"] == pytest.approx(np.mean(np.abs(pred[:, j] / m - y[:, j])), rel=1e-5)
        assert row[f"val_{name}_CCC"] == pytest.approx(metrics.ccc(y[:, j], pred[:, j] / m), rel=1e-5)


def test_ccc_loss_is_one_minus_mean_ccc(tmp_path):
    row, pred, y = _frozen_step_history(tmp_path, "ccc", 3.0)
    expected = 1 - np.mean([metrics.ccc(3.0 * y[:, j], pred[:, j]) for j in range(2)])
    assert row["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert row["val_loss"] == pytest.approx(expected, rel=1e-5)
    mse_row, _, _ = _frozen_step_history(tmp_path / "mse", "mse", 3.0)
    assert mse_row["train_loss"] != pytest.approx(row["train_loss"], rel=1e-3)


def test_predict_divides_by_the_multiplier():
    torch.manual_seed(0)
    model = TinyRegressor(dropout=0.0)
    data = NoisyRegression(10, noise=0.0)
    out = predict(model, data, TrainConfig(multiplier=5.0, batch_size=3))
    with torch.no_grad():
        np.testing.assert_allclose(out, model(data.x).numpy() / 5.0, rtol=1e-6)
    scores = evaluate(model, data, TrainConfig(multiplier=5.0))
    assert scores["arousal_CCC"] == pytest.approx(metrics.ccc(data.y[:, 1].numpy(), out[:, 1]), rel=1e-6)
    assert scores["CCC_mean"] == pytest.approx((scores["valence_CCC"] + scores["arousal_CCC"]) / 2)


def test_model_multiplier_must_match_the_config(tmp_path):
    model = TinyRegressor()
    model.multiplier = 100.0  # as emorec.models.I3D declares it (Table 3, C2)
    data = NoisyRegression(8)
    with pytest.raises(ValueError, match="multiplier"):
        fit(model, data, None, regression_config(epochs=1), tmp_path)
    with pytest.raises(ValueError, match="multiplier"):
        predict(model, data, TrainConfig(multiplier=1.0))
    assert predict(model, data, TrainConfig(multiplier=100.0)).shape == (8, 2)


def test_drop_last_skips_the_short_final_batch(tmp_path):
    class Counting(TinyRegressor):
        calls = 0

        def forward(self, x):
            Counting.calls += self.training
            return super().forward(x)

    for drop_last, steps in ((False, 3), (True, 2)):
        Counting.calls = 0
        fit(Counting(), NoisyRegression(9), None, regression_config(epochs=1, batch_size=4, drop_last=drop_last),
            tmp_path / str(drop_last))
        assert Counting.calls == steps
    with pytest.raises(ValueError, match="no training batch"):
        fit(TinyRegressor(), NoisyRegression(3), None, regression_config(batch_size=4, drop_last=True), tmp_path / "x")


def test_output_and_target_shape_mismatch_is_reported(tmp_path):
    bad = TensorDataset(torch.randn(8, 6), torch.randn(8, 3))
    with pytest.raises(ValueError, match="shape"):
        fit(TinyRegressor(), bad, None, regression_config(epochs=1), tmp_path)


# -- classification: class weights, augmentation --------------------------------------------------

def test_class_weights_are_inverse_frequency():
    w = class_weights([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(w.numpy(), [6 / 9, 2.0, 1.0], rtol=1e-6)
    counts = np.array([3, 1, 2])
    np.testing.assert_allclose(w.numpy() * counts, [2.0, 2.0, 2.0], rtol=1e-6)  # N / C per class
    np.testing.assert_allclose(class_weights([0, 2], num_classes=4).numpy(), [1 / 2, 0, 1 / 2, 0])
    with pytest.raises(ValueError, match="out of range"):
        class_weights([0, 5], num_classes=3)


def test_dataset_labels_uses_attributes_and_subsets():
    data = TinyImages((3, 2, 1))
    assert dataset_labels(data).tolist() == [0, 0, 0, 1, 1, 2]
    assert dataset_labels(Subset(data, [5, 0])).tolist() == [2, 0]
    plain = TensorDataset(torch.zeros(3, 1), torch.tensor([2, 0, 1]))
    assert dataset_labels(plain).tolist() == [2, 0, 1]


def test_classification_loss_is_class_weighted(tmp_path):
    data = TinyImages((12, 6, 2))
    torch.manual_seed(0)
    model = TinyConvNet()
    config = TrainConfig(task="classification", lr=1e-3, batch_size=4, epochs=1, seed=3,
                         augment=True, verbose=False, progress=False)
    result = fit(model, data, data, config, tmp_path)
    w = torch.tensor([20 / 36, 20 / 18, 20 / 6])
    with torch.no_grad():
        logp = torch.log_softmax(model(data.x), dim=1)
    y = torch.tensor(data.labels)
    expected = -(w[y] * logp[torch.arange(len(y)), y]).sum() / w[y].sum()
    assert result.history[0]["val_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert result.history[0]["val_accuracy"] == pytest.approx(float((logp.argmax(1) == y).float().mean()))
    assert result.metric_name == "accuracy"


def test_classification_repeatable_with_augmentation(tmp_path):
    states = []
    for name in ("a", "b"):
        torch.manual_seed(0)
        model = TinyConvNet()
        fit(model, TinyImages(), None, TrainConfig(task="classification", lr=1e-3, batch_size=4, epochs=2,
                                                   augment=True, verbose=False), tmp_path / name)
        states.append(model.state_dict())
    assert _weights_equal(*states)


def test_augmentation_flip_brightness_and_clip_coherence():
    x = torch.rand(3, 2, 5, 7)
    flipped = augment_batch(x, torch.Generator().manual_seed(0), rotation_deg=0, flip_p=1.0, brightness=0)
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)
    bright = augment_batch(x, torch.Generator().manual_seed(0), rotation_deg=0, flip_p=0.0, brightness=0.3)
    ratio = bright / x
    for i in range(3):
        gain = ratio[i].flatten()
        assert 0.7 <= float(gain[0]) <= 1.3
        torch.testing.assert_close(gain, gain[:1].expand_as(gain), atol=1e-5, rtol=1e-5)
    clip = torch.rand(2, 3, 1, 9, 9).expand(2, 3, 4, 9, 9)  # [N, C, T, H, W], identical frames
    out = augment_batch(clip, torch.Generator().manual_seed(1), rotation_deg=20)
    torch.testing.assert_close(out[:, :, 0], out[:, :, 3])
    again = augment_batch(clip, torch.Generator().manual_seed(1), rotation_deg=20)
    assert torch.equal(out, again)


def test_rotation_is_about_the_centre_in_pixel_space():
    # An off-centre blob must stay at the same pixel distance from the centre of a non-square
    # image; rotating in normalised coordinates would shear it and change that distance.
    h, w, cy, cx = 20, 32, 9.5, 15.5
    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    blob = torch.exp(-((yy - cy) ** 2 + (xx - cx - 8) ** 2) / (2 * 1.5**2))[None, None]
    out = augment_batch(blob, torch.Generator().manual_seed(0), rotation_deg=40, flip_p=0, brightness=0)[0, 0]
    mass = out.sum()
    dy, dx = float((out * yy).sum() / mass - cy), float((out * xx).sum() / mass - cx)
    assert np.hypot(dx, dy) == pytest.approx(8.0, abs=0.1)
    assert abs(np.degrees(np.arctan2(dy, dx))) > 5  # it did rotate


# -- configuration and misc -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(task="ranking"), "task"),
    (dict(task="classification", loss="ccc"), "not available"),
    (dict(task="regression", loss="cross_entropy"), "not available"),
    (dict(task="classification", multiplier=2.0), "multiplier"),
    (dict(batch_size=0), "batch_size"),
    (dict(patience=0), "patience"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_loss_selection():
    assert TrainConfig().loss_name == "mse"
    assert TrainConfig(loss="ccc").loss_name == "ccc"
    assert TrainConfig(task="classification").loss_name == "cross_entropy"


def test_empty_train_set_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        fit(TinyRegressor(), TensorDataset(torch.zeros(0, 6), torch.zeros(0, 2)), None, regression_config(), tmp_path)


def test_precompute_features_matches_the_extractor():
    data = NoisyRegression(10, noise=0.0)
    extractor = torch.nn.Linear(6, 3)
    cached = precompute_features(extractor, data, batch_size=4, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(cached.tensors[0], extractor(data.x))
    torch.testing.assert_close(cached.tensors[1], data.y)
