"""emorec run: the plan, the read-only chapters, and a grid killed mid-training that resumes."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emorec import config, run
from emorec.experiments import ArtefactStore, Experiment, NotRunYet, read_only

REPO = Path(__file__).resolve().parents[1]


def test_the_dry_run_plans_every_grid_of_the_paper_profile_and_labels_its_assumptions():
    text = run.plan("all", config.load("paper", root=REPO))
    assert "ASSUMED" in text and "nothing is run" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] in
             (["table1"], ["table2"], ["i3d"])}
    assert lines["table1"][1] == "26" and lines["table2"][1] == "72" and lines["i3d"][1] == "312"
    assert "4575000" in text  # 1,525 min of SEWA-DB at 50 fps
    assert "109.80" in text  # ... as 100x80x3 crops: GB
    total = next(line for line in text.splitlines() if line.startswith("total:"))
    assert "GPU-hours" in total and "GB" in total and "ASSUMED" in total


def test_a_measured_throughput_replaces_the_assumed_one(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"common:\n  artefact_root: {tmp_path}\n")
    cfg = config.load("smoke", mine, root=REPO)
    (tmp_path / "smoke").mkdir()
    measured = tmp_path / "smoke" / "throughput.json"
    measured.write_text(json.dumps({"device": run._device_name(), "frames_per_s": {"cnn2d": 1e9}, "source": "test"}))
    text = run.plan("table1", cfg)
    assert "MEASURED on" in text and "(test): cnn2d;" in text and "total: 0.0 GPU-hours" in text
    assert "(measured)" in text  # Table 1 needs only the 2D CNN's rate
    assert "(partly ASSUMED)" in run.plan("table2", cfg)  # faces and the CNN-LSTM stay assumed
    measured.write_text(json.dumps({"device": "another GPU", "frames_per_s": {"cnn2d": 1e9}}))
    assert "MEASURED on" not in run.plan("table1", cfg)  # a figure of another device is not used


def test_cli_dry_run(capsys):
    from emorec import cli

    assert cli.main(["run", "i3d", "--profile", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "i3d" in out and "table2" not in out.split("grids")[1] and "faces" in out


def test_read_only_reports_a_missing_experiment_and_trains_nothing(tmp_path):
    store = ArtefactStore(tmp_path, "smoke")
    exp = Experiment("t", {"a": 1})
    with read_only("emorec run table2 --profile paper"):
        with pytest.raises(NotRunYet, match="not run yet — `emorec run table2 --profile paper`"):
            store.run(exp, lambda work: pytest.fail("trained in a read-only chapter"))
    assert not (tmp_path / "smoke" / "t").exists()
    assert store.run(exp, lambda work: {"x": 2}) == {"x": 2}
    with read_only("emorec run table2 --profile paper"):
        assert store.run(exp, lambda work: pytest.fail("retrained")) == {"x": 2}  # what exists is read


def _run(params: Path, step: str = "table1") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "emorec.cli", "run", step, "--profile", "smoke", "--params",
                             str(params), "--launcher", "local"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(params: Path) -> str:
    proc = _run(params)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    return out


def _results(root: Path) -> dict:
    return {p.parent.name: {k: v for k, v in json.loads(p.read_text()).items() if k != "seconds"}
            for p in (root / "smoke" / "table1").glob("*/result.json")}


def _one_row_grid(path: Path, artefacts: Path) -> Path:
    """The smoke profile with Table 1 cut to one row of three epochs, results under ``artefacts``."""
    path.write_text(f"common:\n  artefact_root: {artefacts}\n04_3_finetuning:\n  rows: [[vgg16_bn, identity, Full]]\n"
                    f"  epochs: 3\n  patience: 3\n")
    return path


def test_a_grid_killed_mid_training_resumes_to_the_same_result_and_a_rerun_trains_nothing(tmp_path):
    killed = _one_row_grid(tmp_path / "killed.yaml", tmp_path / "killed")
    proc = _run(killed)
    work = tmp_path / "killed" / "smoke" / "table1"
    deadline = time.monotonic() + 600
    while not list(work.glob("*.partial/checkpoint.pt")):  # the row's first epoch is saved
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its submitit job, mid-training
    proc.wait()
    assert not _results(tmp_path / "killed")
    out = _finish(killed)
    assert "table1: 1 of 1 to run" in out, out
    assert not list((tmp_path / "killed").rglob("*.partial"))
    clean = _finish(_one_row_grid(tmp_path / "clean.yaml", tmp_path / "clean"))  # never interrupted
    assert _results(tmp_path / "killed") == _results(tmp_path / "clean") and len(_results(tmp_path / "clean")) == 1
    again = _finish(killed)
    assert "table1: 0 of 1 to run" in again, again  # the store has it: no job at all


def test_a_finished_configuration_keeps_no_epoch_checkpoint(tmp_path):
    store = ArtefactStore(tmp_path, "smoke")

    def train(work):  # what fit leaves: the resumable state and the best weights, here and in a sub-folder
        for folder in (work, work / "train"):
            folder.mkdir(exist_ok=True)
            (folder / "checkpoint.pt").write_bytes(b"weights + Adam state")
            (folder / "best.pt").write_bytes(b"weights")
        return {"ok": True}

    store.run(Experiment("t", {"a": 1}), train)
    folder = store.folder(Experiment("t", {"a": 1}))
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.pt")) == ["best.pt", "train/best.pt"]


def test_local_jobs_get_one_gpu_each_and_slurm_needs_a_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "_cuda_devices", lambda: 4)
    slots = run.executors("local", 3, tmp_path)
    assert [e.parameters["visible_gpus"] for e in slots] == [[0], [1], [2]]
    assert {e.parameters["gpus_per_node"] for e in slots} == {1}
    with pytest.raises(ValueError, match="--gpus 5: this machine has 4"):
        run.executors("local", 5, tmp_path)
    monkeypatch.setattr(run, "_cuda_devices", lambda: 0)
    assert len(run.executors("local", 3, tmp_path)) == 1  # no CUDA: one job at a time
    if not shutil.which("srun"):
        with pytest.raises(ValueError, match="--launcher slurm"):
            run.executors("slurm", 1, tmp_path)


def test_a_failed_job_is_one_error_naming_the_job_and_its_log(tmp_path):
    params = tmp_path / "mine.yaml"
    params.write_text(f"common:\n  artefact_root: {tmp_path}\n")
    job = run.Job("table1", "smoke", str(params), index=99)  # no such row
    with pytest.raises(run.JobFailed, match=r"job table1\[99\] failed \(log: .*\): .*IndexError"):
        run.launch([job], run.executors("local", 1, tmp_path / "submitit"), 1, report=lambda line: None)


def test_configurations_sharing_what_they_make_first_wait_for_one_of_them():
    cfg = config.load("cpu", root=REPO)
    first, rest = run.waves("table1", cfg, None, list(range(6)))
    grid = run.grid_of("table1", cfg)
    assert [grid[j.index]["source"] for j in first] == ["identity"]  # one per identity pre-training
    assert len(first) + len(rest) == 6
    first, rest = run.waves("table2", cfg, None, [0, 1])  # the shared prefix per (init, fps)
    assert sorted((j.index for j in first)) == [0, 1] and rest == []
    grid = run.grid_of("i3d", cfg)  # (raf, C1), (raf, C2), (identity, C1), (identity, C2)
    assert [(r["source"], r["preset"]) for r in grid] == [("raf", "C1"), ("raf", "C2"), ("identity", "C1"),
                                                          ("identity", "C2")]
    assert run.waves("i3d", cfg, None, [0, 1, 3]) == [[run.Job("i3d", "cpu", None, index=0),
                                                       run.Job("i3d", "cpu", None, index=3)],
                                                      [run.Job("i3d", "cpu", None, index=1)]]


def _scored(row: dict, valence: float, arousal: float, **more) -> dict:
    return {**row, "val_pp_valence_CCC": valence, "val_pp_arousal_CCC": arousal, **more}


def test_the_seeds_step_picks_as_chapter_4_4_and_adds_the_baseline_beside_the_chosen_raf_cascade(tmp_path):
    from emorec.experiments.evaluation import best_per_label
    from emorec.experiments.temporal import baseline_config

    mine = tmp_path / "mine.yaml"
    mine.write_text("04_4_cnn_lstm:\n  seq_lens: [8, 16]\n  overlaps: [0.5]\n  fusions: [mean]\n")
    cfg = config.load("cpu", mine, root=REPO)  # 2 inits x 1 fps x 2 SL; 3 seeds
    grid = run.grid_of("table2", cfg)
    scores = {("VGG-Face", 8): (0.5, 0.1), ("VGG-Face", 16): (0.2, 0.3), ("RAF-DB", 8): (0.1, 0.6),
              ("RAF-DB", 16): (0.4, 0.2)}
    rows = [_scored(r, *scores[r["init"], r["seq_len"]], grid_index=i, folder=f"f{i}") for i, r in enumerate(grid)]
    picked = run.seed_runs("table2", cfg, rows)
    cascades = {(r.config["init"], r.config["seq_len"], r.seed) for r in picked if r.model == "cnn_lstm"}
    # every configuration is chosen for one label here; seeds 1 and 2 of each, seed 0 being the grid's own
    assert cascades == {(init, sl, s) for init in ("VGG-Face", "RAF-DB") for sl in (8, 16) for s in (1, 2)}
    chosen_raf = [c["row"] for c in best_per_label(rows, ("init", "fps")) if c["init"] == "RAF-DB"]
    baselines = [(r.config, r.seed) for r in picked if r.model == "frame_baseline"]
    assert baselines == [(baseline_config(cfg.table2.base(cfg.seed), row), s) for row in chosen_raf for s in (0, 1, 2)]
    assert {c["seq_len"] for c, _ in baselines} == {8, 16} and all("val_pp_valence_CCC" not in c for c, _ in baselines)

    # a configuration not in the store, or one that could not run, is never chosen
    rows[2], rows[3] = None, {**rows[3], "status": "weights absent"}
    assert not [r for r in run.seed_runs("table2", cfg, rows) if r.config["init"] == "RAF-DB"]


def test_the_seeds_step_of_the_i3d_trains_the_chosen_grid_rows_again(tmp_path):
    cfg = config.load("cpu", root=REPO)  # (raf, C1), (raf, C2), (identity, C1), (identity, C2); 3 seeds
    grid = run.grid_of("i3d", cfg)
    values = [(0.1, 0.5), (0.3, 0.2), (0.4, 0.4), (0.2, 0.1)]
    rows = [_scored(r, *v, grid_index=i, folder=f"f{i}", status="ok") for i, (r, v) in enumerate(zip(grid, values))]
    picked = run.seed_runs("i3d", cfg, rows)
    assert {r.model for r in picked} == {"i3d"}
    assert sorted((grid.index(r.config), r.seed) for r in picked) == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]


def test_only_the_seed_runs_not_in_the_store_become_jobs(monkeypatch):
    cfg = config.load("cpu", root=REPO)
    wanted = [run.SeedRun("cnn_lstm", {"fps": 10, "init": "RAF-DB"}, s) for s in (1, 2)]

    def stored_or_not(seed_run, inputs):  # seed 2 was trained by an earlier run
        if seed_run.seed == 1:
            raise NotRunYet("not run yet — `emorec run seeds`")
        return {"valence_CCC": 0.3}

    monkeypatch.setattr(run, "train_seed", stored_or_not)
    todo = run.missing_seed_runs(wanted, run.Inputs(cfg))
    assert todo == wanted[:1]
    assert run.Job("seeds", "cpu", None, seed_run=todo[0]).describe() == "seeds: cnn_lstm seed 1"


def test_pruning_keeps_the_chosen_weights_and_every_result(tmp_path):
    store = ArtefactStore(tmp_path, "paper")

    def finished(work):  # what a Table 2 run leaves
        (work / "train").mkdir()
        for name in ("model.pt", "train/best.pt", "predictions.npz"):
            (work / name).write_bytes(b"x")
        return {"ok": True}

    experiments = [Experiment("table2", {"i": i}) for i in range(3)]
    for exp in experiments:
        store.run(exp, finished)
    folders = [store.folder(exp) for exp in experiments]
    foreign = tmp_path / "paper" / "table2" / "not-ours"  # a folder emorec did not make
    foreign.mkdir()
    (foreign / "model.pt").write_bytes(b"someone else's")
    rows = [{"folder": str(f), "grid_index": i, "init": "RAF-DB", "fps": 10, "val_pp_valence_CCC": v,
             "val_pp_arousal_CCC": a} for i, (f, v, a) in enumerate(zip(folders, (0.9, 0.1, 0.2), (0.1, 0.1, 0.8)))]
    rows.append({"folder": str(foreign), "grid_index": 3, "init": "RAF-DB", "fps": 10, "val_pp_valence_CCC": 0.0,
                 "val_pp_arousal_CCC": 0.0})
    cfg = config.load("paper", root=REPO)
    deleted = run.prune_weights("table2", rows + [None], cfg)
    assert sorted(deleted) == [folders[1] / "model.pt", folders[1] / "train" / "best.pt"]
    for kept in (folders[0], folders[2]):  # chosen for valence, for arousal
        assert (kept / "model.pt").is_file() and (kept / "train" / "best.pt").is_file()
    assert (folders[1] / "predictions.npz").is_file() and (foreign / "model.pt").is_file()
    assert all(store.run(exp, lambda work: pytest.fail("retrained")) == {"ok": True} for exp in experiments)
    assert run.prune_weights("table2", rows, cfg) == []  # nothing left to delete


def test_pruning_table1_keeps_the_initialisations_and_the_store_counts_every_row(tmp_path, monkeypatch):
    from emorec.data.synthetic import RafSize, generate_raf_like
    from emorec.experiments import finetuning as ft
    from test_finetuning import tiny_row

    raf = generate_raf_like(tmp_path / "raf", RafSize(n_train=42, n_test=14, n_identities=6, image_size=40), seed=0)
    grid = [tiny_row("vgg11", "identity", "Full"), tiny_row("vgg11", "identity", "Conv_4_1"),
            tiny_row("vgg11", "scratch", "Full"), tiny_row("vgg16", "scratch", "Full"),
            tiny_row("vgg11", "imagenet", "Full")]  # weights absent offline: a row that cannot run
    art = tmp_path / "art"
    cfg = config.load("paper", root=REPO)
    cfg = dataclasses.replace(cfg, common={**cfg.common, "artefact_root": str(art)})
    monkeypatch.setattr(run, "grid_of", lambda step, c: grid)
    monkeypatch.setattr(run, "train_table1",
                        lambda rows, inputs: ft.run_table1(rows, raf, art, "paper").to_dict("records"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    keys = [r["key"] for r in run.train_table1(grid, None)][:4]
    folders = [art / "paper" / ft.TABLE / key for key in keys]
    for folder, val in zip(folders, (0.3, 0.4, 0.9, 0.8)):  # the scratch row "wins" on validation
        result = folder / "result.json"
        result.write_text(json.dumps(dict(json.loads(result.read_text()), val_accuracy=val)))
    inits = {(b, i): ft.video_initialisation(i, art, "paper", b) for b in ("vgg11", "vgg16") for i in ft.VIDEO_INITS}
    before = {p: p.read_bytes() for p in art.rglob("*") if p.is_file()}
    assert inits["vgg11", "RAF-DB"].checkpoint == folders[1] / "best.pt"  # the better identity row

    stored = run.stored_rows("table1", run.Inputs(cfg))
    assert stored[4]["status"].startswith("not available offline") and stored[4]["folder"] is None
    deleted = run.prune_weights("table1", stored, cfg)
    assert sorted(deleted) == sorted(folders[i] / "best.pt" for i in (0, 2, 3))  # vgg16: no row from VGG-Face
    assert (folders[1] / "best.pt").read_bytes() == before[folders[1] / "best.pt"]
    identity = ft.identity_checkpoint(art, "paper", "vgg11")  # the "VGG-Face" stand-in, another table's
    assert identity.read_bytes() == before[identity]
    for folder in folders:  # results and predictions stay
        for name in ("result.json", "test_predictions.csv"):
            assert (folder / name).read_bytes() == before[folder / name]
    # what chapter 4.3 and the video models read is unchanged, and nothing is missing or retrained
    assert {(b, i): ft.video_initialisation(i, art, "paper", b) for b in ("vgg11", "vgg16")
            for i in ft.VIDEO_INITS} == inits
    assert run.missing("table1", run.Inputs(cfg)) == []
    monkeypatch.setattr(ft, "fit", lambda *a, **k: pytest.fail("a pruned row was retrained"))
    assert [r["key"] for r in run.train_table1(grid, None)][:4] == keys
    assert run.prune_weights("table1", run.stored_rows("table1", run.Inputs(cfg)), cfg) == []
    (folders[1] / "best.pt").unlink()  # lost by other means: named, never replaced by another row's
    with pytest.raises(FileNotFoundError, match=f"{folders[1] / 'best.pt'}: the weights of the Table-1 row"):
        ft.best_expression_checkpoint(art, "paper", "vgg11")


def test_the_plan_counts_the_seeds_step_and_the_weights_kept():
    paper = run.plan("all", config.load("paper", root=REPO))
    assert "seeds (table2)" in paper and "seeds (i3d)" in paper and "keep_weights: chosen" in paper
    cfg = config.load("paper", root=REPO)
    kept = run.grid_plan("table2", cfg, 1.0)["GB"]
    every = run.grid_plan("table2", dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, keep_weights="all")),
                          1.0)["GB"]
    assert every == pytest.approx(kept * 72 / 8)  # 2 inits x 2 fps x 2 labels chosen of 72
    assert run.seeds_plan("table2", cfg, 1.0)["configurations"] == 2 * 4 * 2 + 2 * 3
    assert "seeds" not in run.plan("table1", cfg)
