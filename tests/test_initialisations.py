"""Issue 10 (items 3-4): Table 1 on a real RAF-DB layout (no identity list) with published weights from
local files, and the paper's initialisations of the video models (§4.3-4.5)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from emorec.data.synthetic import RafSize, generate_raf_like
from emorec.experiments import ArtefactStore
from emorec.experiments import finetuning as ft
from emorec.experiments import i3d
from emorec.models import load_model
from emorec.models.weights import VGGFACE_ENV

from fake_weights import fake_imagenet, fake_vggface, install_fake_weights

TINY = dict(width=0.125, input_size=[32, 32], pool_size=[1, 1], lr=1e-3, batch_size=8, epochs=1, patience=1,
            val_fraction=0.25)


def tiny_row(backbone, source, block="Full"):
    row = dict(TINY, backbone=backbone, model=backbone, source=source, block=block, augment=True,
               class_weighting=True, pretrain=dict(lr=1e-3, epochs=1, patience=1) if source == "identity" else None)
    if source in ft.PUBLISHED:
        row["width"] = 1.0
    return row


@pytest.fixture(scope="module")
def real_raf(tmp_path_factory):
    """A RAF-DB basic folder as the real dataset has it (no identities.csv), fake published weights in a
    temporary TORCH_HOME, and Table 1 run on it once, recording the first conv kernel each fit starts from."""
    base = tmp_path_factory.mktemp("real_raf")
    raf = generate_raf_like(base / "raf", RafSize(n_train=42, n_test=14, n_identities=6, image_size=40), seed=0)
    (raf / ft.IDENTITIES).unlink()  # real RAF-DB lists no identities
    grid = [tiny_row("vgg16_bn", "identity"), tiny_row("vgg16", "vggface"), tiny_row("vgg11", "imagenet"),
            tiny_row("vgg11", "scratch")]
    starts, real_fit = {}, ft.fit
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(base / "torch"))
        mp.delenv(VGGFACE_ENV, raising=False)
        files = install_fake_weights(base / "torch", imagenet=("vgg11",))

        def spy(model, *args, **kwargs):
            starts[model.config["weights"]] = model.features.conv1[0].weight.detach().clone()
            return real_fit(model, *args, **kwargs)

        mp.setattr(ft, "fit", spy)
        df = ft.run_table1(grid, raf, base / "art", "smoke", seed=0)
    return {"base": base, "raf": raf, "df": df.set_index("source"), "starts": starts, "files": files}


def test_identity_stand_in_on_real_rafdb_pretrains_on_the_synthetic_identities(real_raf, tmp_path):
    """Real RAF-DB lists no identities: given the synthetic RAF-like set as identity_root, the identity row
    pre-trains there and fine-tunes on the real folder, so "RAF-DB" exists without vgg_face_dag.pth."""
    synthetic = generate_raf_like(tmp_path / "ids", RafSize(n_train=42, n_test=14, n_identities=6, image_size=40),
                                  seed=1)
    df = ft.run_table1([tiny_row("vgg11", "identity")], real_raf["raf"], tmp_path / "art", "smoke", seed=0,
                       identity_root=synthetic)
    assert df["status"].eq("ok").all()
    pretraining = json.loads(next((tmp_path / "art" / "smoke" / ft.PRETRAIN_TABLE).glob("*/config.json")).read_text())
    assert pretraining["data"] != json.loads(
        (tmp_path / "art" / "smoke" / ft.TABLE / df["key"][0] / "config.json").read_text())["data"]
    got = ft.video_initialisation("RAF-DB", tmp_path / "art", "smoke", "vgg11")
    assert got.checkpoint is not None and "identity (synthetic VGG-Face analogue)" in got.used


def test_identity_rows_on_real_rafdb_say_why_they_cannot_run(real_raf):
    status = real_raf["df"].loc["identity", "status"]
    assert status.startswith("not applicable") and "identities.csv" in status and str(real_raf["raf"]) in status
    assert real_raf["df"].loc[["vggface", "imagenet", "scratch"], "status"].eq("ok").all()
    table = ft.side_by_side(real_raf["df"].reset_index(), "smoke")
    assert table["note"].str.startswith("not applicable").sum() == 1


def test_published_rows_train_from_the_weight_files(real_raf):
    starts = real_raf["starts"]
    assert torch.equal(starts["vggface"], fake_vggface()["conv1_1.weight"])
    assert torch.equal(starts["imagenet"], fake_imagenet("vgg11")["features.0.weight"])


def test_video_initialisations_use_real_vggface_and_its_table1_row(real_raf, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(real_raf["base"] / "torch"))
    art = real_raf["base"] / "art"
    vggface = ft.video_initialisation("VGG-Face", art, "smoke", "vgg16")
    assert vggface.used.startswith("VGG-Face (vgg_face_dag.pth)")
    model = load_model(vggface.checkpoint)
    assert model.config["width"] == 1.0 and model.config["weights"] is None
    assert torch.equal(model.features.conv1[0].weight, fake_vggface()["conv1_1.weight"])
    rafdb = ft.video_initialisation("RAF-DB", art, "smoke", "vgg16")
    assert rafdb.checkpoint.parent.name == real_raf["df"].loc["vggface", "key"]
    assert "from VGG-Face, fine-tuned on RAF from Full" in rafdb.used
    # VGG-16-BN: no row started from VGG-Face (its identity row could not run): said, not faked
    missing = ft.video_initialisation("RAF-DB", art, "smoke", "vgg16_bn")
    assert missing.checkpoint is None and "starts from VGG-Face" in missing.used


def test_without_vggface_weights_or_identities_vggface_is_not_available(real_raf, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    got = ft.video_initialisation("VGG-Face", real_raf["base"] / "art", "smoke", "vgg16")
    assert got.checkpoint is None and got.used.startswith("not available")
    with pytest.raises(ValueError, match="initialisation"):
        ft.video_initialisation("ImageNet", real_raf["base"] / "art", "smoke", "vgg16")


def test_rafdb_initialisation_is_never_a_scratch_row(tmp_path):
    """Even when the scratch row has the best validation accuracy, "RAF-DB" starts from VGG-Face (§4.4)."""
    raf = generate_raf_like(tmp_path / "raf", RafSize(n_train=42, n_test=14, n_identities=6, image_size=40), seed=0)
    grid = [tiny_row("vgg11", "identity"), tiny_row("vgg11", "identity", "Conv_4_1"), tiny_row("vgg11", "scratch")]
    df = ft.run_table1(grid, raf, tmp_path / "art", "smoke", seed=0).set_index("block", append=True)
    keys = df["key"].tolist()
    for key, val in zip(keys, (0.3, 0.4, 0.9)):  # the scratch row "wins" on validation
        path = tmp_path / "art" / "smoke" / ft.TABLE / key / "result.json"
        path.write_text(json.dumps(dict(json.loads(path.read_text()), val_accuracy=val)))
    best = ft.best_expression_checkpoint(tmp_path / "art", "smoke", "vgg11")
    assert best.parent.name == keys[1]  # the better of the two rows from the (stand-in) VGG-Face
    got = ft.video_initialisation("RAF-DB", tmp_path / "art", "smoke", "vgg11")
    assert "from identity (synthetic VGG-Face analogue), fine-tuned on RAF from Conv_4_1" in got.used
    assert "val. acc. 40.0 %" in got.used
    stand_in = ft.video_initialisation("VGG-Face", tmp_path / "art", "smoke", "vgg11")
    assert stand_in.used == ft.SOURCE_LABELS["identity"]


def test_i3d_rows_follow_the_same_rule_and_take_the_checkpoint_width(real_raf, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(real_raf["base"] / "torch"))
    store = ArtefactStore(real_raf["base"] / "art", "smoke")
    row = dict(i3d.i3d_grid("smoke")[0], backbone="vgg16", base_model="VGG-16", width=0.125)
    for source, expected in (("identity", "VGG-Face (vgg_face_dag.pth)"), ("raf", "from VGG-Face")):
        weights = i3d.initial_weights(dict(row, source=source), store)
        assert expected in i3d.weights_used(row, weights)
        assert i3d._fitted_to(row, weights)["width"] == 1.0  # the width the weights exist at
    resnet = dict(row, backbone="resnet50", base_model="ResNet50", source="vggface", width=1.0)
    assert i3d.unavailable(resnet, store).startswith("not applicable") and "resnet50_ft_dag" in i3d.unavailable(
        resnet, store)


def test_a_copy_of_a_real_raf_root_keeps_working_after_the_weights_go(real_raf, tmp_path, monkeypatch):
    """Removing vgg_face_dag.pth later: the VGG-Face row reports the missing file; nothing crashes."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    raf = shutil.copytree(real_raf["raf"], tmp_path / "raf")
    df = ft.run_table1([tiny_row("vgg16", "vggface"), tiny_row("vgg16_bn", "identity")], raf, tmp_path / "art",
                       "smoke", seed=0)
    assert df["status"].str.startswith(("not available offline", "not applicable")).all()
