"""emorec.experiments.i3d: the grids of §4.5, the clip adaptor, the cached run, the choice on validation."""

import numpy as np
import pandas as pd
import pytest
import torch

from emorec import paper
from emorec.data.faces import FaceTrack
from emorec.experiments import i3d
from emorec.experiments import prefix
from emorec.experiments.cache import ArtefactStore
from emorec.experiments.prefix import pixel_clips
from emorec.experiments.corpus import Corpus, VideoRecord
from emorec.models import CNN2D, PRESETS, load_model
from emorec.train import checkpoint as ckpt
from emorec.train.loop import make_loss, training_step


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP start-up and contention costs on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _unique_architectures(grid):
    """One row per (backbone, options): the source of the weights does not change the network."""
    seen = {}
    for row in grid:
        key = (row["backbone"],) + tuple(str(row[k]) for k in i3d.OPTION_KEYS)
        seen.setdefault(key, row)
    return list(seen.values())


def test_paper_grid_is_the_papers_design():
    grid = i3d.i3d_grid("paper")
    pairs = {(r["base_model"], i3d.PAPER_SOURCE[r["source"]]) for r in grid if r["source"] != "identity"}
    assert pairs == set(paper.table6()[["base_model", "init"]].itertuples(index=False, name=None))
    assert {(r["seq_len"], r["overlap"], r["fps"], r["batch_size"], r["width"], tuple(r["input_size"]))
            for r in grid} == {(64, 0.8, 10, 8, 1.0, (100, 80))}
    # Every configuration printed in Tables 4 and 5 is in the grid (copied kernels: init has no effect).
    options = {(r["inflation"], r["init"], r["mask_center"], tuple(r["dilation"]), r["multiplier"]) for r in grid}
    for table in (paper.table4(), paper.table5()):
        for p in table.itertuples(index=False):
            init = "zero" if p.inflation == "copied" else p.centered_init
            assert (p.inflation, init, p.masking, tuple(i3d.DILATIONS[p.dilation]), float(p.multiplier)) in options
    assert len(options) == 24 and {r["preset"] for r in grid} == {"C1", "C2", None}
    assert not any(r["shared_prefix"] for r in grid) and {r["finetune_from"] for r in grid} == {"Full"}


@pytest.mark.parametrize("profile", ["cpu", "smoke"])
def test_reduced_grids_compare_c1_with_c2(profile):
    grid = i3d.i3d_grid(profile)
    for row in grid:
        i3d.check_row(row)
    assert {r["preset"] for r in grid} == {"C1", "C2"}
    # Thinned networks cannot take published weights (full width only): the stand-ins only.
    assert all(r["width"] < 1 and r["source"] in ("raf", "identity") for r in grid)
    assert all(r["shared_prefix"] and i3d.frozen_stages(r) == 4 for r in grid)
    assert i3d.i3d_grid(profile, **i3d.budget_overrides("conv4"))[0]["finetune_from"] == "Conv_4_1"
    assert i3d.i3d_grid(profile, **i3d.budget_overrides(None))[0]["shared_prefix"] is False
    with pytest.raises(ValueError, match="unknown profile"):
        i3d.i3d_grid("gpu")


def test_every_paper_configuration_trains_one_step():
    """Issue 5: each `paper` configuration builds its i3D and takes one optimiser step on tiny clips
    (thinned to width 1/16 to stay fast; the full-width build is checked per backbone below)."""
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 4, 32, 32), torch.rand(2, 2) * 2 - 1
    for row in _unique_architectures(i3d.i3d_grid("paper")):
        model = i3d.I3D(**dict(i3d.model_kwargs(row), width=1 / 16))
        settings = i3d.train_config(row, model)
        assert settings.multiplier == row["multiplier"] == model.multiplier
        before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        params = [p for p in model.parameters() if p.requires_grad]
        loss = training_step(model, torch.optim.Adam(params, lr=settings.lr), make_loss(settings), x,
                             y * settings.multiplier, settings, params)
        assert torch.isfinite(loss)
        assert any(not torch.equal(b, p) for b, p in zip(before, params)), row


@pytest.mark.parametrize("backbone", ["vgg11_bn", "vgg16", "vgg16_bn", "resnet50"])
def test_full_width_paper_models_build_and_run(backbone):
    row = next(r for r in i3d.i3d_grid("paper") if r["backbone"] == backbone and r["preset"] == "C2")
    model = i3d.I3D(**i3d.model_kwargs(row)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 2, 32, 32)).shape == (1, 2)


def test_table3_presets_agree_with_the_paper():
    table = i3d.table3_side_by_side()
    assert table["agree"].all()
    assert i3d.preset_options("C2") == {"inflation": "copied", "init": "zero", "mask_center": True,
                                        "dilation": [1, 2, 4, 8], "multiplier": 100.0}
    assert set(PRESETS) == {"C1", "C2"}


# --------------------------------------------------------------------------------------------------
# A tiny corpus (no face detection): 6 videos of 30 frames at 10 fps, two per split
# --------------------------------------------------------------------------------------------------

def _record(tmp_path, name, split, rng, n=30, missing=()):
    frames = pd.DataFrame({"frame": np.arange(n), "time": np.arange(n) / 10.0})
    frames["kept"] = ~frames["frame"].isin(list(missing))
    kept = int(frames["kept"].sum())
    crops = rng.integers(0, 256, (kept, 100, 80, 3), dtype=np.uint8)
    track = FaceTrack(path=tmp_path / name, crops=crops, frames=frames, meta={"key": name})
    t = np.arange(n) / 10.0
    labels = np.c_[0.5 * np.sin(t + len(name)), 0.4 * np.cos(2 * t)]
    kept_t = frames.loc[frames["kept"], "time"].to_numpy()
    per_face = np.stack([np.interp(kept_t, t, labels[:, d]) for d in range(2)], 1).astype(np.float32)
    return VideoRecord(name, name, split, track, per_face, t, labels)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("i3d_corpus")
    rng = np.random.default_rng(0)
    splits = ["train", "train", "validation", "validation", "test", "test"]
    videos = [_record(tmp, f"V{i}", s, rng, missing=(12,) if i == 0 else ()) for i, s in enumerate(splits)]
    return Corpus(videos, 10.0, "tiny test corpus", "fingerprint-0")


def _tiny_row(**changes):
    row = dict(i3d.i3d_grid("smoke")[0], backbone="vgg11", base_model="VGG-11", width=0.0625, input_size=[32, 32],
               seq_len=4, overlap=0.5, eval_overlap=0.5, epochs=2, patience=2, n_boot=20, lr=1e-3)
    row.update(changes)
    return row


def test_pixel_clips_shapes_and_range(corpus):
    records = corpus.split("train")
    clips = pixel_clips(records, seq_len=4, overlap=0.5, input_size=(48, 40))
    # Video 0 lost frame 12: no clip spans it with tolerance 1.
    starts = clips.index[clips.index[:, 0] == 0, 1].tolist()
    assert starts == [0, 2, 4, 6, 8, 12, 14, 16, 18, 20, 22, 24]
    x, y = clips[3]
    assert x.shape == (3, 4, 48, 40) and x.dtype == torch.float32 and y.shape == (2,)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # The resize acts per frame: frame t of the clip is the resized crop t (channels first).
    crop = torch.from_numpy(np.array(records[0].track.crops[6])).permute(2, 0, 1).float() / 255
    expected = torch.nn.functional.interpolate(crop[None], size=(48, 40), mode="bilinear", antialias=True)[0]
    torch.testing.assert_close(x[:, 0], expected.clamp(0, 1))


def test_wrong_fps_is_refused(corpus):
    with pytest.raises(ValueError, match="50 fps"):
        i3d.check_corpus(_tiny_row(fps=50), corpus)


@pytest.mark.parametrize("preset", ["C1", "C2"])
@pytest.mark.parametrize("n_frozen", [0, 3, 4])
def test_split_prefix_then_suffix_is_the_whole_network(preset, n_frozen):
    row = _tiny_row(finetune_from="Conv_4_1", preset=preset, **i3d.preset_options(preset))
    model = i3d.I3D(**i3d.model_kwargs(row)).eval()
    x = torch.rand(2, 3, 4, 32, 32)
    prefix, suffix = model.split(n_frozen)
    with torch.no_grad():
        torch.testing.assert_close(suffix(prefix(x)), model(x))
    # the suffix shares the model's modules: training it trains the model
    assert {id(p) for p in suffix.parameters()} <= {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="n_frozen"):
        model.split(6)


@pytest.fixture()
def weights(tmp_path):
    """A 2D checkpoint of ours (the form Table 1 leaves): VGG-11 at width 1/16."""
    model = CNN2D("vgg11", task="regression", width=0.0625, seed=3)
    path = tmp_path / "best.pt"
    ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config)}, path)
    return path


def test_frozen_stages_of_the_i3d_are_the_2d_network_frame_by_frame(weights):
    """C2 (copied, masked, dilated) on the trained stages only: the frozen conv1-conv4 give the shared
    prefix's maps, which the 2D models read (the prefix is computed once for all three models)."""
    row = _tiny_row(finetune_from="Conv_5_1", shared_prefix=True, preset="C2", **i3d.preset_options("C2"))
    model = i3d.I3D(**i3d.model_kwargs(row, weights)).eval()
    assert model.config["frame_stages"] == 4 and model.config["inflation"] == "copied"
    clips = torch.rand(2, 3, 5, 32, 32)
    prefix_2d, _ = load_model(weights).split(4)
    with torch.no_grad():
        expected = torch.stack([prefix_2d(clips[:, :, t]) for t in range(5)], 2)
        torch.testing.assert_close(model.split(4)[0](clips), expected, rtol=1e-4, atol=1e-5)
    conv5 = [m for m in model.features.conv5.modules() if isinstance(m, torch.nn.Conv3d)]
    assert conv5 and all(type(m).__name__ == "MaskedConv3d" for m in conv5)


@pytest.mark.parametrize("shared", [True, False])
def test_cached_rerun_does_not_retrain(corpus, weights, tmp_path, monkeypatch, shared):
    calls = []
    module = prefix if shared else i3d
    real_fit = module.fit
    monkeypatch.setattr(module, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    monkeypatch.setattr(i3d, "initial_weights", lambda row, store: weights)
    store = ArtefactStore(tmp_path / "artefacts", "smoke")
    row = _tiny_row(shared_prefix=shared, finetune_from="Conv_4_1", preset="C2",
                    **i3d.preset_options("C2"))
    first = i3d.run_i3d(row, corpus, store)
    assert first["status"] == "ok" and len(calls) == 1
    second = i3d.run_i3d(row, corpus, store)
    assert len(calls) == 1 and second["valence_CCC"] == first["valence_CCC"]
    assert -1 <= first["arousal_CCC"] <= 1 and first["arousal_CCC_lo"] <= first["arousal_CCC_hi"]
    # best.pt is a complete i3D checkpoint: it rebuilds the trained network with its C2 options.
    model = load_model(f"{first['folder']}/best.pt")
    assert model.multiplier == 100.0 and model.config["inflation"] == "copied"
    # ... and records the data it was trained on, in plain values the safe unpickler reads
    trained_on = torch.load(f"{first['folder']}/best.pt", weights_only=True)["trained_on"]
    assert trained_on["data"] == "tiny test corpus" and trained_on["synthetic"] is False
    assert set(trained_on) == {"data", "synthetic", "profile", "seed", "commit"}
    assert not (tmp_path / "artefacts" / "smoke" / i3d.TABLE / f"{first['folder'].split('/')[-1]}"
                / "checkpoint.pt").exists()
    preds = i3d.load_predictions(first["folder"], "test")
    assert set(preds) == {"V4", "V5"} and preds["V4"].shape == (30, 2)
    # Another seed is another experiment.
    i3d.run_i3d(row, corpus, store, seed=1)
    assert len(calls) == 2


def test_missing_weights_are_reported_not_run(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))
    store = ArtefactStore(tmp_path / "artefacts", "cpu")
    row = dict(i3d.i3d_grid("paper")[0])
    imagenet = next(r for r in i3d.i3d_grid("paper") if r["source"] == "imagenet")
    result = i3d.run_i3d(imagenet, corpus, store)
    assert result["status"].startswith("not available offline") and "nothing is downloaded" in result["status"]
    raf = dict(row, source="raf")
    assert i3d.run_i3d(raf, corpus, store)["status"].startswith("missing")
    assert not (store.root / i3d.TABLE).exists()


def _result(backbone, source, preset, val_v, test_v, val_a, test_a):
    options = i3d.preset_options(preset)
    row = {"backbone": backbone, "base_model": {"vgg16": "VGG-16", "resnet50": "ResNet50"}[backbone],
           "source": source, "preset": preset, "status": "ok", **options, "best_epoch": 1}
    for label, val, test in (("valence", val_v, test_v), ("arousal", val_a, test_a)):
        row.update({f"val_pp_{label}_CCC": val, f"val_{label}_CCC": val - 0.05, f"{label}_CCC": test,
                    f"{label}_PCC": test + 0.01, f"{label}_MAPE": 50.0, f"{label}_CCC_lo": test - 0.1,
                    f"{label}_CCC_hi": test + 0.1})
    return row


def test_best_per_label_uses_validation_never_test():
    # C1 wins valence on validation but loses it on test; C2 the other way round for arousal.
    results = pd.DataFrame([_result("vgg16", "raf", "C1", 0.40, 0.10, 0.20, 0.60),
                            _result("vgg16", "raf", "C2", 0.30, 0.50, 0.25, 0.05),
                            _result("resnet50", "identity", "C1", 0.1, 0.1, 0.1, 0.1),
                            {"backbone": "resnet50", "base_model": "ResNet50", "source": "imagenet",
                             "status": "not available offline: ..."}])
    best = i3d.best_per_label(results).set_index(["backbone", "source", "label"])
    assert best.loc[("vgg16", "raf", "valence"), "preset"] == "C1"
    assert best.loc[("vgg16", "raf", "arousal"), "preset"] == "C2"
    assert best.loc[("vgg16", "raf", "valence"), "valence_CCC"] == 0.10  # the test score is reported, not used
    assert ("resnet50", "imagenet", "valence") not in best.index
    table6 = i3d.table6_side_by_side(results).set_index(["Base model", "Initialisation"])
    assert table6.loc[("VGG-16", "RAF-DB"), "valence CCC (ours)"] == 0.10
    assert table6.loc[("VGG-16", "RAF-DB"), "arousal CCC (ours)"] == 0.05
    assert table6.loc[("VGG-16", "RAF-DB"), "valence CCC (paper)"] == 0.028
    assert table6.loc[("ResNet50", "ImageNet"), "ours from"].startswith("not available offline")
    assert np.isnan(table6.loc[("VGG-16", "ImageNet"), "valence CCC (ours)"])
    table4 = i3d.table45_side_by_side(results, "valence").set_index(["Base model", "Initialisation"])
    assert table4.loc[("VGG-16", "RAF-DB"), "Inflation (ours)"] == "Centered"
    assert table4.loc[("VGG-16", "RAF-DB"), "Inflation (paper)"] == "Copied"
    with pytest.raises(ValueError, match="by must be"):
        i3d.best_per_label(results, by="test")
