"""Table 1 (§4.3): grids, the RAF dataset, the cached fine-tuning runs and the checkpoints they leave."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from emorec import paper
from emorec.data.synthetic import RafSize, generate_raf_like
from emorec.experiments import finetuning as ft
from emorec.models import BLOCKS, CNN2D, CNNLSTM, STAGES, build_model, load_model
from emorec.train import class_weights

TINY = dict(width=0.125, input_size=[32, 32], pool_size=[1, 1], lr=1e-3, batch_size=8, epochs=1, patience=1,
            val_fraction=0.25)


def tiny_row(backbone, source, block):
    row = dict(TINY, backbone=backbone, model=backbone, source=source, block=block, augment=True,
               class_weighting=True, pretrain=dict(lr=1e-3, epochs=1, patience=1) if source == "identity" else None)
    if source in ft.PUBLISHED:
        row["width"] = 1.0
    return row


# ------------------------------------------------------------------------------------------------ grids

@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_grids_are_valid(profile):
    grid = ft.table1_grid(profile)
    assert grid
    for row in grid:
        ft.check_row(row)
        assert row["width"] == 1.0 or row["source"] not in ft.PUBLISHED  # published weights exist at width 1 only
    assert json.loads(json.dumps(grid)) == grid  # plain data: the cache key survives a JSON round trip


def test_paper_grid_covers_every_row_of_the_papers_table1():
    ref = paper.table1()
    wanted = {tuple(r) for r in ref.loc[ref["reference"] == "Proposed", ["model", "pretraining", "block"]].values}
    grid = ft.table1_grid("paper")
    real = {(r["model"], ft.PAPER_SOURCE[r["source"]], r["block"]) for r in grid if r["source"] in ft.PUBLISHED}
    assert wanted <= real
    assert {"identity", "scratch"} <= {r["source"] for r in grid}
    settings = grid[0]
    assert (settings["lr"], settings["batch_size"], settings["input_size"]) == (1e-5, 16, [100, 80])  # §4.3


def test_invalid_rows_are_refused():
    with pytest.raises(ValueError, match="source"):
        ft.check_row(tiny_row("vgg16", "imagenet21k", "Full"))
    with pytest.raises(ValueError, match="block"):
        ft.check_row(tiny_row("vgg16", "scratch", "Conv_6_1"))
    with pytest.raises(ValueError, match="pretrain"):
        ft.check_row(dict(tiny_row("vgg16", "scratch", "Full"), pretrain={"lr": 1e-3}))
    with pytest.raises(ValueError, match="profile"):
        ft.table1_grid("laptop")


@pytest.mark.parametrize("row", ft.table1_grid("paper"), ids=lambda r: f"{r['backbone']}-{r['source']}-{r['block']}")
def test_every_paper_configuration_builds_and_takes_one_training_step(row):
    """Issue 5: each paper-profile model, built from its configuration (published weights left out),
    trains one Adam step with §4.3's settings; frozen blocks do not move, trained ones do."""
    model = build_model(ft.model_config(row, seed=0), pretrained=False)
    config = ft.train_config(row, seed=0)
    assert (config.lr, config.batch_size, config.class_weighting, config.augment) == (1e-5, 16, True, True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    loss = F.cross_entropy(model.train()(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    n_frozen = BLOCKS.index(row["block"])
    for name, p in model.named_parameters():
        stage = name.split(".")[1] if name.startswith("features.") else None
        frozen = stage is not None and STAGES.index(stage) < n_frozen
        assert p.requires_grad != frozen, name
        assert torch.equal(p, before[name]) == frozen, name


# ------------------------------------------------------------------------------------------------ data

def write_raf_folder(root, colours, labels, identities=None):
    """A hand-made RAF-DB basic folder: solid-colour 100×100 aligned faces and the label file."""
    (root / "Image" / "aligned").mkdir(parents=True)
    (root / "EmoLabel").mkdir()
    names = []
    for k, (split, rgb) in enumerate(colours):
        stem = f"{split}_{k + 1:05d}" if split == "train" else f"{split}_{k + 1:04d}"
        img = np.zeros((100, 100, 3), np.uint8)
        img[:] = rgb
        img[:10] = 255 - np.array(rgb, np.uint8)  # a stripe on top: the resize must keep it on top
        cv2.imwrite(str(root / "Image" / "aligned" / f"{stem}_aligned.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        names.append(f"{stem}.jpg")
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "".join(f"{n} {lab}\n" for n, lab in zip(names, labels)))
    if identities is not None:
        pd.DataFrame({"image": names, "identity": identities, "group": 1}).to_csv(root / "identities.csv", index=False)
    return names


def test_dataset_decodes_a_raf_folder_once_as_rgb_in_unit_range(tmp_path):
    colours = [("train", (200, 30, 40)), ("test", (10, 220, 30)), ("train", (20, 40, 230))]
    write_raf_folder(tmp_path, colours, [4, 7, 1], identities=[12, 5, 12])
    train = ft.RafDataset(tmp_path, "train", (20, 16))
    assert len(train) == 2 and train.images.dtype == np.uint8
    x, y = train[0]
    assert x.shape == (3, 20, 16) and x.dtype == torch.float32
    assert torch.allclose(x[:, -5:].mean(dim=(1, 2)), torch.tensor([200, 30, 40]) / 255, atol=0.03)  # RGB order
    assert torch.allclose(x[:, 0].mean(dim=1), torch.tensor([55, 225, 215]) / 255, atol=0.06)  # stripe stays on top
    assert [train[i][1] for i in range(2)] == [3, 0]  # file labels 1..7 -> 0..6
    assert ft.RafDataset(tmp_path, "test", (20, 16))[0][1] == 6
    assert list(train.with_identity_targets().labels) == [0, 0]
    for path in (tmp_path / "Image" / "aligned").iterdir():
        path.unlink()  # items come from memory, not from the files
    assert torch.allclose(train[1][0][:, -5:].mean(dim=(1, 2)), torch.tensor([20, 40, 230]) / 255, atol=0.03)


def test_dataset_names_a_missing_image(tmp_path):
    write_raf_folder(tmp_path, [("train", (1, 2, 3))], [1])
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg 2\n")
    with pytest.raises(FileNotFoundError, match="train_00002_aligned.jpg"):
        ft.RafDataset(tmp_path, "train", (20, 16))


def test_validation_split_is_identity_disjoint_or_stratified():
    table = pd.DataFrame({"label": np.arange(60) % 6, "identity": np.arange(60) // 5})
    train, val = ft.validation_split(table, 0.2, seed=1)
    assert sorted(np.concatenate([train, val])) == list(range(60))
    assert not set(table["identity"][train]) & set(table["identity"][val])
    assert len(val) >= 12
    train, val = ft.validation_split(table.drop(columns="identity"), 0.2, seed=1)
    assert np.bincount(table["label"][val], minlength=6).tolist() == [2] * 6


def test_classification_scores_against_hand_counts():
    true, pred = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]
    s = ft.classification_scores(true, pred, n_classes=3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 * 1 / 1.5]  # precision, recall per class by hand
    assert s["macro_f1"] == pytest.approx(np.mean(f1))
    assert s["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


# ------------------------------------------------------------------------------------------------ runs

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny RAF-like set and a two-row grid (identity stand-in and scratch), run once, with the
    class weights every cross-entropy call receives recorded."""
    base = tmp_path_factory.mktemp("table1")
    data = generate_raf_like(base / "raf", RafSize(n_train=42, n_test=14, n_identities=6, image_size=40), seed=0)
    grid = [tiny_row("vgg11", "identity", "Full"), tiny_row("vgg11", "scratch", "Conv_4_1")]
    seen, original = [], F.cross_entropy

    def spy(logits, target, *args, weight=None, **kwargs):
        seen.append(None if weight is None else weight.detach().clone())
        return original(logits, target, *args, weight=weight, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "cross_entropy", spy)
        df = ft.run_table1(grid, data, base / "art", "smoke", seed=0)
    return {"data": data, "art": base / "art", "grid": grid, "df": df, "weights": seen}


def test_rows_finish_with_scores_and_a_best_checkpoint(tiny_run):
    df = tiny_run["df"]
    assert list(df["status"]) == ["ok", "ok"]
    assert list(df["pretraining"]) == ["identity (synthetic VGG-Face analogue)", "scratch (random init, ours)"]
    assert df["accuracy"].between(0, 100).all() and df["macro_f1"].between(0, 100).all()
    for key in df["key"]:
        folder = tiny_run["art"] / "smoke" / ft.TABLE / key
        assert (folder / "best.pt").is_file() and (folder / "test_predictions.csv").is_file()
        preds = pd.read_csv(folder / "test_predictions.csv")
        assert 100 * np.mean(preds["label"] == preds["pred"]) == pytest.approx(df.set_index("key").loc[key, "accuracy"])


def test_second_call_loads_from_the_cache_without_training(tiny_run, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("fit called although every result is cached")

    monkeypatch.setattr(ft, "fit", no_training)
    again = ft.run_table1(tiny_run["grid"], tiny_run["data"], tiny_run["art"], "smoke", seed=0)
    pd.testing.assert_frame_equal(again, tiny_run["df"])


def test_class_weights_reach_the_loss(tiny_run):
    ds = ft.RafDataset(tiny_run["data"], "train", TINY["input_size"])
    fit_idx, _ = ft.validation_split(ds.table, TINY["val_fraction"], seed=0)
    expected = class_weights(ds.labels[fit_idx], 7)
    assert len(set(expected.tolist())) > 2  # RAF's imbalance: the weights differ
    assert any(w is not None and len(w) == 7 and torch.allclose(w, expected) for w in tiny_run["weights"])


def test_unavailable_weights_give_an_explanatory_row(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("EMOREC_VGGFACE_WEIGHTS", str(tmp_path / "nowhere" / "vgg_face_dag.pth"))
    monkeypatch.setattr(ft, "fit", lambda *a, **k: pytest.fail("an unavailable source must not train"))
    grid = [tiny_row("vgg11", "imagenet", "Full"), tiny_row("vgg16", "vggface", "Conv_4_1")]
    df = ft.run_table1(grid, tiny_run["data"], tmp_path / "art", "smoke", seed=0)
    assert df["status"].str.startswith("not available offline: pre-trained weights not found").all()
    assert str(tmp_path / "torch") in df["status"][0] and "vgg_face_dag.pth" in df["status"][1]
    assert df["accuracy"].isna().all() and df["key"].isna().all()
    assert not list((tmp_path / "art").rglob("result.json"))  # nothing cached: adding the file later runs them
    table = ft.side_by_side(df, "smoke")
    assert table["note"].str.startswith("not available offline").sum() == 2


def test_checkpoints_for_the_video_models(tiny_run):
    best = ft.best_expression_checkpoint(tiny_run["art"], "smoke", backbone="vgg11")
    assert tiny_run["df"].set_index("key").loc[best.parent.name, "source"] == "identity"  # never scratch
    model = load_model(best)
    assert isinstance(model, CNN2D) and model.config["num_outputs"] == 7
    x = torch.rand(1, 3, 32, 32)
    # its backbone starts the video models (the "RAF-DB" initialisation of §4.4-4.5)
    reg = CNN2D("vgg11", task="regression", width=TINY["width"], weights=best).eval()
    assert torch.equal(reg.features(reg.normalize(x)), model.features(model.normalize(x)))
    lstm = CNNLSTM("vgg11", width=TINY["width"], weights=best)
    assert torch.equal(lstm.features.conv1[0].weight, model.features.conv1[0].weight)
    ident = load_model(ft.identity_checkpoint(tiny_run["art"], "smoke", backbone="vgg11"))
    assert ident.config["num_outputs"] > 1


def test_missing_results_say_which_chapter_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="04_3_finetuning"):
        ft.best_expression_checkpoint(tmp_path, "cpu")
    with pytest.raises(FileNotFoundError, match="04_3_finetuning"):
        ft.identity_checkpoint(tmp_path, "cpu")


def test_side_by_side_puts_stand_ins_next_to_the_source_they_replace():
    def ours(backbone, model, block, acc):
        return ft._table_row(dict(tiny_row(backbone, "identity", block), model=model),
                             {"status": "ok", "accuracy": acc, "balanced_accuracy": 0.4, "macro_f1": 0.3,
                              "val_accuracy": 0.5}, block)
    rows = pd.DataFrame([ours("vgg16", "VGG-16", "Conv_4_1", 0.5), ours("vgg16_bn", "VGG-16-BN", "Full", 0.6),
                         ours("vgg16_bn", "VGG-16-BN", "Conv_5_1", 0.7)])
    table = ft.side_by_side(rows, "cpu")
    mine = table[table["our model"] != ""].set_index("our acc. (%)")
    assert mine.loc[50.0, ["paper model", "block", "paper acc. (%)"]].tolist() == ["VGG-16", "Conv_4_1", 79.9]
    assert mine.loc[60.0, ["paper model", "block", "paper acc. (%)"]].tolist() == ["VGG-16-BN", "Full", 78.4]
    # no BN row at Conv_5_1 in the paper: our BN model stands beside the plain one, and says so
    assert mine.loc[70.0, ["paper model", "our model", "paper acc. (%)"]].tolist() == ["VGG-16", "VGG-16-BN", 74.4]
    assert mine["our pre-training"].str.startswith("identity (synthetic").all()
    n_paper = len(paper.table1().query("reference == 'Proposed'"))
    assert (table["note"] == "not in the cpu grid").sum() == n_paper - 3
    assert (table["block"] == "NA").sum() == 4  # the cited baselines
