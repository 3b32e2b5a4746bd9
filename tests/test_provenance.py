"""Issue 10 (item 2): provenance lines name the dataset actually read, with its root shown relative to
the repository or with ~, and the corpus in use is the one a root points at."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emorec import reporting
from emorec.data.synthetic import ensure_corpora
from emorec.experiments.corpus import sewa_index
from emorec.paths import project_root


def test_display_path_is_relative_to_the_repository_or_home():
    assert reporting.display_path(project_root() / "data" / "sewa") == "data/sewa"
    assert reporting.display_path("data/sewa") == "data/sewa"
    assert reporting.display_path(Path.home() / "datasets" / "RAF") == "~/datasets/RAF"
    assert reporting.display_path("/opt/corpora/sewa") == "/opt/corpora/sewa"


def test_dataset_description_names_the_root_or_the_stand_in():
    assert reporting.dataset_description("RAF-DB", None, "synthetic RAF-like set") == "synthetic RAF-like set"
    assert reporting.dataset_description("RAF-DB", Path.home() / "RAF") == "RAF-DB at ~/RAF"


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return ensure_corpora(tmp_path_factory.mktemp("data"), "smoke", 0)["sewa"]


def test_a_sewa_root_is_the_corpus_read_never_the_synthetic_one(synthetic_root, tmp_path):
    real = shutil.copytree(synthetic_root, tmp_path / "my_sewa")
    (real / "metadata.csv").unlink()
    shutil.rmtree(real / "latent")  # a real copy has no latent signals
    split = tmp_path / "split.csv"
    (real / "splits.csv").rename(split)
    index = sewa_index(tmp_path / "data", "smoke", 0, real, split)
    assert index.attrs["description"] == f"SEWA-DB at {reporting.display_path(real)}"
    assert all(Path(p).is_relative_to(real) for p in index["video_path"])
    assert index["latent_path"].isna().all()
    assert not (tmp_path / "data").exists()  # nothing synthetic was generated for it
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sewa_index(tmp_path / "data", "smoke", 0, tmp_path / "nowhere")
