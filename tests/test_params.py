"""`--params FILE.yaml`: a user's parameters merged over the profile, by the book and by `emorec train`
/ `evaluate`, every key checked against the chapters, the values in force recorded with their source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emorec import book, cli
from test_book import GOOD_BODY, make_book

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_book_merges_the_file_over_the_profile_and_records_the_values_in_force(tmp_path):
    root = make_book(tmp_path / "book", GOOD_BODY, "one:\n  n: 5\n")
    params = write(tmp_path / "mine.yaml", "one:\n  n: 7\n")
    book.run_book(root, "smoke", html=False, params_file=params)
    executed = (root / "_build/smoke/book/chapters/one.ipynb").read_text()
    assert "profile=smoke n=7" in executed  # the file wins over params/smoke.yaml
    record = json.loads((root / "_build/smoke/params.json").read_text())
    rows = {(r["section"], r["parameter"]): (r["value"], r["source"]) for r in record["values"]}
    assert rows[("one", "n")] == (7, str(params))
    assert rows[("common", "seed")] == (0, "params/smoke.yaml")
    assert record["params_file"] == str(params)


@pytest.mark.parametrize("text, words", [
    ("common:\n  sewa_rot: /data/sewa\n", ["'sewa_rot'", "'common'", "no chapter declares it"]),
    ("one:\n  m: 3\n", ["'m'", "'one'", "chapter one does not declare it"]),
    ("04_9_nothing:\n  n: 3\n", ["'04_9_nothing'", "neither 'common' nor a chapter"]),
    ("common:\n  profile: paper\n", ["'profile'", "--profile"]),
    ("common: [1, 2]\n", ["expected sections"]),
    ("common:\n  n: [1\n", ["not valid YAML"]),
])
def test_a_key_no_chapter_declares_is_one_error_naming_key_and_file(tmp_path, text, words):
    root = make_book(tmp_path / "book", GOOD_BODY)
    params = write(tmp_path / "mine.yaml", text)
    with pytest.raises(book.BookError) as err:
        book.run_book(root, "smoke", html=False, params_file=params)
    message = str(err.value)
    assert str(params) in message and all(w in message for w in words), message
    assert not (root / "_build/smoke/book/chapters/one.ipynb").exists()  # nothing executed


def test_missing_params_file_from_the_command_line(tmp_path, capsys):
    root = make_book(tmp_path / "book", GOOD_BODY)
    code = book.main(["--profile", "smoke", "--root", str(root), "--params", str(tmp_path / "absent.yaml")])
    assert code == 1 and "absent.yaml: no such parameters file" in capsys.readouterr().err


def test_common_keys_reach_only_chapters_that_declare_them_and_weights_become_the_environment(tmp_path,
                                                                                             monkeypatch):
    weights = tmp_path / "vgg_face_dag.pth"
    params = write(tmp_path / "mine.yaml", f"common:\n  sewa_root: /data/SEWA\n  vggface_weights: {weights}\n"
                                           f"  torch_home: {tmp_path}\n")
    monkeypatch.delenv("EMOREC_VGGFACE_WEIGHTS", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    merged = book.load_params(REPO, "smoke", params)
    assert merged.values["common"]["sewa_root"] == "/data/SEWA"
    assert merged.sources["common", "sewa_root"] == str(params)
    assert merged.sources["common", "seed"] == "params/smoke.yaml"
    book.set_weight_environment(merged.values["common"])
    assert os.environ["EMOREC_VGGFACE_WEIGHTS"] == str(weights) and os.environ["TORCH_HOME"] == str(tmp_path)


def test_train_reads_the_same_file(tmp_path, capsys):
    """`emorec train` lists the grid of chapter 4.4 as the book would run it with the file."""
    params = write(tmp_path / "mine.yaml", "04_4_cnn_lstm:\n  seq_lens: [16, 32]\n  overlaps: [0.5]\n")
    assert cli.main(["train", "table2:smoke", "--params", str(params)]) == 0
    listed = capsys.readouterr().out
    assert "seq_len=32" in listed and "seq_len=16" in listed
    assert cli.main(["train", "table2:smoke"]) == 0
    assert "seq_len=32" not in capsys.readouterr().out
    bad = write(tmp_path / "bad.yaml", "04_4_cnn_lstm:\n  seq_len: [32]\n")
    assert cli.main(["train", "table2:smoke", "--params", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.yaml" in err[0] and "'seq_len'" in err[0]


def test_evaluate_takes_the_data_roots_of_the_file(tmp_path, capsys, monkeypatch):
    """`emorec evaluate --params` indexes the corpus the file names (here: one that is missing)."""
    import emorec.predict

    monkeypatch.setattr(emorec.predict, "load_predictor", lambda path: type("P", (), {"trained": {"fps": 10}})())
    params = write(tmp_path / "mine.yaml", f"common:\n  sewa_root: {tmp_path / 'no-sewa-here'}\n")
    assert cli.main(["evaluate", str(tmp_path / "model.pt"), "--profile", "smoke", "--params", str(params)]) == 1
    assert "no-sewa-here does not exist" in capsys.readouterr().err
