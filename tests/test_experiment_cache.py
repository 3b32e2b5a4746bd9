"""The artefact cache reruns exactly what changed and never mistakes a killed run for a finished one."""

from __future__ import annotations

import json
import sys

import pytest

from emorec.experiments import ArtefactStore, Experiment, data_fingerprint, source_fingerprint


def counting_run(calls):
    def fn(work):
        calls.append(work)
        (work / "weights.txt").write_text("trained")
        return {"ccc": 0.5}
    return fn


def test_second_call_loads_instead_of_rerunning(tmp_path):
    store, calls = ArtefactStore(tmp_path, "smoke"), []
    exp = Experiment("table2", {"sl": 16, "seed": 0}, data="d1")
    assert store.run(exp, counting_run(calls)) == {"ccc": 0.5}
    assert store.run(exp, counting_run(calls)) == {"ccc": 0.5}
    assert len(calls) == 1
    folder = store.folder(exp)
    assert (folder / "weights.txt").read_text() == "trained"
    assert json.loads((folder / "config.json").read_text())["config"] == {"sl": 16, "seed": 0}
    assert store.results("table2") == [{"config": {"sl": 16, "seed": 0}, "result": {"ccc": 0.5}}]


@pytest.mark.parametrize("changed", [
    Experiment("table2", {"sl": 64, "seed": 0}, data="d1"),  # configuration
    Experiment("table2", {"sl": 16, "seed": 0}, data="d2"),  # data
    Experiment("table4", {"sl": 16, "seed": 0}, data="d1"),  # table
])
def test_any_change_of_configuration_or_data_is_a_new_key(changed):
    assert Experiment("table2", {"sl": 16, "seed": 0}, data="d1").key != changed.key


def test_key_ignores_dict_order():
    assert Experiment("t", {"a": 1, "b": 2}).key == Experiment("t", {"b": 2, "a": 1}).key


def test_editing_a_dependency_changes_the_key_and_an_unrelated_module_does_not(tmp_path, monkeypatch):
    for name in ("dep_mod", "other_mod"):
        (tmp_path / f"{name}.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    exp = Experiment("t", {"a": 1}, modules=("dep_mod",))
    before = exp.key
    (tmp_path / "other_mod.py").write_text("X = 2\n")
    assert exp.key == before
    (tmp_path / "dep_mod.py").write_text("X = 2\n")
    assert exp.key != before
    sys.modules.pop("dep_mod", None)


def test_library_package_fingerprint_covers_its_modules():
    assert source_fingerprint(["emorec.experiments"]) != source_fingerprint(["emorec.experiments.cache"])
    with pytest.raises(ValueError, match="no_such_module"):
        source_fingerprint(["emorec.no_such_module"])


def test_killed_run_is_not_finished_and_resumes_in_the_same_folder(tmp_path):
    store = ArtefactStore(tmp_path, "smoke")
    exp = Experiment("t", {"a": 1})
    seen = []

    def dies(work):
        seen.append(work)
        (work / "checkpoint.txt").write_text("epoch 1")
        raise KeyboardInterrupt  # stands in for a kill mid-training

    with pytest.raises(KeyboardInterrupt):
        store.run(exp, dies)
    assert store.load(exp) is None and not store.folder(exp).exists()

    def resumes(work):
        seen.append(work)
        return {"resumed_from": (work / "checkpoint.txt").read_text()}

    assert store.run(exp, resumes) == {"resumed_from": "epoch 1"}
    assert seen[0] == seen[1]
    assert not seen[0].exists() and store.folder(exp).is_dir()


def test_data_fingerprint_sees_content_and_names(tmp_path):
    (tmp_path / "a.csv").write_text("time,v\n0,0.1\n")
    first = data_fingerprint(tmp_path)
    assert data_fingerprint(tmp_path) == first
    (tmp_path / "a.csv").write_text("time,v\n0,0.2\n")
    second = data_fingerprint(tmp_path)
    assert second != first
    (tmp_path / "a.csv").rename(tmp_path / "b.csv")
    assert data_fingerprint(tmp_path) != second
    big = tmp_path / "video.avi"
    big.write_bytes(bytes(3 << 20))
    third = data_fingerprint(tmp_path)
    with big.open("r+b") as handle:
        handle.seek(-10, 2)
        handle.write(b"x")
    assert data_fingerprint(tmp_path) != third
    with pytest.raises(FileNotFoundError, match="missing"):
        data_fingerprint(tmp_path / "missing")


def test_summaries_round_trip_and_name_the_chapter_when_missing(tmp_path):
    from emorec.experiments import read_summary, write_summary

    write_summary(tmp_path, "smoke", "table2", {"best": {"valence_CCC": 0.6}})
    assert read_summary(tmp_path, "smoke", "table2", "04_4_cnn_lstm") == {"best": {"valence_CCC": 0.6}}
    with pytest.raises(FileNotFoundError, match="04_5_i3d"):
        read_summary(tmp_path, "smoke", "table6", "04_5_i3d")


def test_a_folder_at_the_artefact_path_that_emorec_did_not_make_is_refused_before_the_run(tmp_path):
    store, calls = ArtefactStore(tmp_path, "smoke"), []
    exp = Experiment("t", {"a": 1})
    final = store.folder(exp)
    final.mkdir(parents=True)
    (final / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"{final}: exists and is not an emorec artefact folder .*notes.txt"):
        store.run(exp, lambda work: calls.append(work) or {"v": 1})
    assert calls == [] and (final / "notes.txt").read_text() == "mine"
    (final / "notes.txt").unlink()
    assert store.run(exp, lambda work: {"v": 2}) == {"v": 2}  # an empty folder holds nothing to lose
