"""The synthetic SEWA-like and RAF-like corpora: determinism, formats, splits, annotator lag, faces."""

import json

import numpy as np
import pandas as pd
import pytest

from emorec.data import rafdb, sewa, synthetic, video
from emorec.data.synthetic import RafSize, SewaSize

TINY_SEWA = SewaSize(1, 1, 1, 2.0)
TINY_RAF = RafSize(21, 14, 4)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return synthetic.ensure_corpora(root, "smoke", seed=0)


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_same_seed_same_corpus_other_seed_differs(tmp_path):
    a = synthetic.generate_sewa_like(tmp_path / "a", TINY_SEWA, seed=3, workers=1)
    b = synthetic.generate_sewa_like(tmp_path / "b", TINY_SEWA, seed=3, workers=1)
    c = synthetic.generate_sewa_like(tmp_path / "c", TINY_SEWA, seed=4, workers=1)
    assert _files(a) == _files(b)
    for rel in _files(a):
        if rel.suffix in (".csv", ".json"):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for rel in (p for p in _files(a) if p.suffix == ".avi"):
        first_a = next(video.iter_frames(a / rel))[2]
        np.testing.assert_array_equal(first_a, next(video.iter_frames(b / rel))[2])
    def labels(root):
        return [(root / p).read_bytes() for p in _files(root) if p.name.endswith("_Aligned.csv")]
    assert labels(a) == labels(b) and labels(a) != labels(c)


def test_raf_like_deterministic(tmp_path):
    a = synthetic.generate_raf_like(tmp_path / "a", TINY_RAF, seed=1)
    b = synthetic.generate_raf_like(tmp_path / "b", TINY_RAF, seed=1)
    assert _files(a) == _files(b)
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in _files(a))


def test_sewa_like_formats_parse_with_the_readers(smoke):
    corpus = sewa.load_sewa(smoke["sewa"])
    size = synthetic.profile_sizes("smoke")[0]
    assert len(corpus) == size.n_train + size.n_val + size.n_test
    assert corpus["video"].str.fullmatch(r"SEW[1-6]\d{3}").all()
    for _, row in corpus.iterrows():
        info = video.video_info(row["video_path"])
        assert (info.fps, info.width, info.height) == (50.0, 320, 240)
        assert info.n_frames == int(size.duration_s * 50)
        labels = sewa.read_video_labels(row)
        np.testing.assert_allclose(np.diff(labels["time"]), 0.1, atol=1e-9)
        video.check_label_coverage(info.duration_s, labels["time"], row["video_path"], row["valence_path"])
        ann = sewa.read_annotations(row["arousal_path"])
        assert size.min_annotators <= ann.shape[1] - 2 <= size.max_annotators
        assert ann.columns[0] == "time" and ann.columns[-1] == "fused"
    raw = (smoke["sewa"] / "annotations" / f"{corpus['video'][0]}_Valence_V_Aligned.csv").read_text()
    assert raw.startswith("Time,Annotator1,")


def test_splits_are_subject_disjoint_and_groups_mixed(smoke):
    meta = pd.read_csv(smoke["sewa"] / "metadata.csv")
    size = synthetic.profile_sizes("smoke")[0]
    counts = meta["split"].value_counts().to_dict()
    assert counts == {"train": size.n_train, "validation": size.n_val, "test": size.n_test}
    subjects = {s: set(meta.loc[meta["split"] == s, "subject"]) for s in ("train", "validation", "test")}
    assert not (subjects["train"] & subjects["validation"] or subjects["train"] & subjects["test"]
                or subjects["validation"] & subjects["test"])
    assert meta["group"].nunique() == 6  # six appearance groups, like SEWA's six cultures
    corpus = sewa.load_sewa(smoke["sewa"])
    assert dict(zip(corpus["video"], corpus["split"])) == dict(zip(meta["video"], meta["split"]))


def test_latent_signals_bounded_smooth_and_neutral_heavy():
    t, v, a = synthetic.latent_signals(300.0, 50.0, np.random.default_rng(0))
    assert len(t) == 15000 and np.abs(v).max() < 1 and np.abs(a).max() < 1
    assert np.abs(np.diff(v)).max() < 0.05  # smooth at 50 Hz
    assert np.mean(np.abs(v) < 0.25) > 0.4  # most of the time near neutral
    assert v.std() > 0.15 and a.std() > 0.15  # but with real episodes


def test_annotators_lag_the_latent_signal():
    rng = np.random.default_rng(1)
    _, v, _ = synthetic.latent_signals(120.0, 50.0, rng)
    times = np.arange(1200) / 10
    x = v[::5]
    for _ in range(4):
        trace, lag = synthetic.annotate(v, 50.0, times, rng)
        assert 0.3 <= lag <= 1.0
        cc = [np.corrcoef(trace[k:], x[: len(x) - k])[0, 1] for k in range(21)]
        assert abs(int(np.argmax(cc)) - lag * 10) <= 1.5, (cc, lag)
        assert max(cc) > 0.8


def test_corpus_records_lags_and_latent(smoke):
    corpus = sewa.load_sewa(smoke["sewa"])
    for _, row in corpus.iterrows():
        lat = np.load(row["latent_path"])
        assert len(lat["time"]) == len(lat["valence"]) == len(lat["visible"]) == 400
        n_annot = sewa.read_annotations(row["valence_path"]).shape[1] - 2
        assert len(lat["lag_valence"]) == n_annot
        assert ((lat["lag_valence"] >= 0.3) & (lat["lag_valence"] <= 1.0)).all()


def test_raf_like_layout_and_imbalance(smoke):
    labels = rafdb.read_labels(smoke["rafdb"], check_images=True)
    size = synthetic.profile_sizes("smoke")[1]
    assert (labels["split"] == "train").sum() == size.n_train and (labels["split"] == "test").sum() == size.n_test
    train = labels[labels["split"] == "train"]["label"].value_counts()
    assert train.idxmax() == 3 and train.idxmin() == 1  # Happiness most, Fear least, as in RAF-DB
    assert set(train.index) == set(range(7))
    import cv2
    img = cv2.imread(labels["path"][0])
    assert img.shape == (100, 100, 3)
    ids = rafdb.read_identities(smoke["rafdb"])
    assert list(ids["image"]) == list(labels["image"]) and ids["identity"].nunique() > 5


def test_ensure_corpora_reuses_and_regenerates(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "profile_sizes", lambda profile: (TINY_SEWA, TINY_RAF))
    paths = synthetic.ensure_corpora(tmp_path, "tiny", seed=0, workers=1)
    marker = paths["sewa"] / synthetic.MARKER
    assert json.loads(marker.read_text())["seed"] == 0
    stamp = marker.stat().st_mtime_ns
    synthetic.ensure_corpora(tmp_path, "tiny", seed=0, workers=1)
    assert marker.stat().st_mtime_ns == stamp  # reused
    synthetic.ensure_corpora(tmp_path, "tiny", seed=5, workers=1)
    assert json.loads(marker.read_text())["seed"] == 5  # a changed seed regenerates
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["rafdb", "sewa"]  # no temp dirs left


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def broken(spec, root):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_render_video", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.generate_sewa_like(tmp_path / "sewa", TINY_SEWA, seed=0, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_users_folder_at_the_corpus_path_is_never_replaced(tmp_path):
    """Issue 14: `emorec synth --data-root DIR` must not delete DIR/<profile>/rafdb if it is not ours."""
    mine = tmp_path / "rafdb"
    (mine / "photos").mkdir(parents=True)
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(ValueError, match=r"rafdb: exists and is not a corpus generated by emorec"):
        synthetic.generate_raf_like(mine, TINY_RAF, seed=0)
    assert (mine / "thesis.txt").read_text() == "years of work" and (mine / "photos").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rafdb"]  # no staging folder left either
    synthetic.generate_raf_like(tmp_path / "empty", TINY_RAF, seed=0)  # a new folder is fine


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        synthetic.ensure_corpora("data", "huge")


def test_mtcnn_finds_visible_faces_and_misses_hidden_ones(smoke):
    """The drawn faces must be real faces to MTCNN (§3.2.1), and the drop-out segments must hide them."""
    import torch
    from facenet_pytorch import MTCNN

    torch.manual_seed(0)
    detector = MTCNN(keep_all=False, device="cpu", min_face_size=40)
    corpus = sewa.load_sewa(smoke["sewa"])
    shown, hidden = [], []
    for _, row in corpus.iterrows():
        visible = np.load(row["latent_path"])["visible"]
        for i, _, rgb in video.iter_frames(row["video_path"], fps=1):
            (shown if visible[i] > 0.99 else hidden if visible[i] < 0.3 else []).append(rgb)
    assert len(shown) >= 25 and len(hidden) >= 2
    _, p_shown = detector.detect(shown)
    _, p_hidden = detector.detect(hidden)
    p_shown = np.array([0.0 if p[0] is None else p[0] for p in p_shown])
    p_hidden = np.array([0.0 if p[0] is None else p[0] for p in p_hidden])
    assert np.mean(p_shown > 0.9) > 0.85
    assert np.mean(p_hidden > 0.9) < 0.2


def _calm_and_excited(fn, seconds=60.0, fps=50.0):
    n = int(seconds * fps)
    return [fn(n, fps, np.full(n, alpha), np.random.default_rng(0)) for alpha in (0.1, 0.9)]


def test_arousal_sets_the_tempo_of_head_rotation_not_the_poses_a_frame_shows():
    # chapter 4.1: turning and tilting survive face cropping; their speed carries arousal, their
    # angle does not, so only a model that compares frames can read it
    (_, _, roll_calm, yaw_calm), (_, _, roll_excited, yaw_excited) = _calm_and_excited(synthetic._head_motion)
    for calm, excited in ((roll_calm, roll_excited), (yaw_calm, yaw_excited)):
        assert np.std(excited) == pytest.approx(np.std(calm), rel=0.25)  # same spread of poses
        speed = np.abs(np.diff(excited)).mean() / np.abs(np.diff(calm)).mean()
        assert speed > 4  # 0.95 Hz against 0.15 Hz


def test_talking_rate_follows_arousal_and_stays_visible_at_10_fps():
    calm, excited = _calm_and_excited(synthetic._talking)
    assert calm.max() == pytest.approx(excited.max(), rel=0.05)  # fixed depth: no single-frame cue

    def syllables_per_talking_second(mouth):
        peaks = (mouth[1:-1] > mouth[:-2]) & (mouth[1:-1] >= mouth[2:]) & (mouth[1:-1] > 0.05)
        return peaks.sum() / ((mouth > 0).sum() / 50.0)

    rate_calm, rate_excited = syllables_per_talking_second(calm), syllables_per_talking_second(excited)
    assert 1.5 <= rate_calm < rate_excited < 5.0  # below the Nyquist rate of faces sampled at 10 fps
