"""How the chapters show paths, provenance and tables (emorec.reporting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emorec import reporting


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A repository root inside a home folder, as on a developer's machine."""
    home = tmp_path / "home" / "ana"
    root = home / "src" / "emorec"
    (root / "lib" / "emorec").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: intro\n")
    monkeypatch.setenv("EMOREC_ROOT", str(root))
    monkeypatch.setenv("HOME", str(home))
    return root, home


def test_display_path_is_relative_to_the_root_else_under_home_else_unchanged(machine):
    root, home = machine
    assert reporting.display_path(root / "artefacts" / "cpu" / "table2" / "ab12") == "artefacts/cpu/table2/ab12"
    assert reporting.display_path("artefacts/cpu") == "artefacts/cpu"  # relative: taken from the root
    assert reporting.display_path(root) == "."
    assert reporting.display_path(home / ".cache" / "torch" / "hub") == "~/.cache/torch/hub"
    assert reporting.display_path("/srv/data/sewa") == "/srv/data/sewa"


def test_display_paths_in_rewrites_the_paths_inside_a_message(machine):
    root, home = machine
    message = (f"pre-trained weights not found: {home}/.cache/torch/hub/checkpoints/vgg16.pth; "
               f"results in {root}/artefacts/smoke/table2")
    assert reporting.display_paths_in(message) == (
        "pre-trained weights not found: ~/.cache/torch/hub/checkpoints/vgg16.pth; results in artefacts/smoke/table2")


def test_short_text_shortens_at_a_word_and_hides_machine_paths(machine):
    _, home = machine
    text = reporting.short_text(f"not available offline: weights not found: {home}/.cache/torch/hub/x.pth", 45)
    assert text == "not available offline: weights not found: …"
    assert reporting.short_text("ok") == "ok"


def test_provenance_prints_as_text_and_renders_as_an_escaped_paragraph():
    line = reporting.provenance("synthetic <SEWA-like> corpus", "smoke", 0)
    assert str(line).startswith("data: synthetic <SEWA-like> corpus | profile: smoke | seed: 0 | emorec ")
    assert line._repr_html_().startswith('<p class="emorec-provenance">data: synthetic &lt;SEWA-like&gt; corpus')


def test_result_table_drops_the_index_and_rounds_in_html_and_text():
    frame = pd.DataFrame({"model": ["2D-CNN-LSTM"], "CCC": [0.51234]})
    shown = reporting.result_table(frame, index=False, float_format="{:.3f}".format)
    html = shown._repr_html_()
    assert "<td>0.512</td>" in html and "<th>0</th>" not in html and 'class="dataframe"' in html
    assert repr(shown).split() == ["model", "CCC", "2D-CNN-LSTM", "0.512"]
    assert "<th>accuracy</th>" in reporting.result_table(pd.Series([1.0], name="accuracy"))._repr_html_()


def test_paper_and_ours_as_rows_reads_both_column_namings():
    frame = pd.DataFrame({
        "label": ["valence", "arousal"],
        "paper CCC": [0.625, 0.557], "ours CCC": [0.41, np.nan], "ours CCC 95% CI": ["[0.3, 0.5]", ""],
        "Mult (paper)": ["×1", "×2"], "Mult (ours)": ["×1", "×1"], "ours from": ["RAF-like", "not run"]})
    rows = reporting.paper_and_ours_as_rows(frame, ["label"])
    assert list(rows.index) == [("valence", "paper"), ("valence", "ours"), ("arousal", "paper"), ("arousal", "ours")]
    assert list(rows.columns) == ["CCC", "CCC 95% CI", "Mult", "from"]
    assert rows.loc[("valence", "paper")].tolist() == [0.625, "", "×1", ""]
    assert rows.loc[("valence", "ours")].tolist() == [0.41, "[0.3, 0.5]", "×1", "RAF-like"]
    assert np.isnan(rows.loc[("arousal", "ours"), "CCC"])


def test_display_path_without_a_home_folder_keeps_absolute_paths(machine, monkeypatch):
    monkeypatch.setenv("HOME", "/")
    assert reporting.display_path("/opt/weights/vgg16.pth") == "/opt/weights/vgg16.pth"
    assert reporting.display_path(Path(machine[0]) / "data") == "data"


def test_decimals_rounds_numbers_and_leaves_blanks_and_text():
    show = reporting.decimals(1)
    assert [show(v) for v in (3.8, 90.512, np.float64(2.25), np.nan, "", "not run")] == \
        ["3.8", "90.5", "2.2", "", "", "not run"]
    rows = pd.DataFrame({"MAPE (%)": [3.8, ""]})
    assert "<td>3.8</td>" in reporting.result_table(rows, formatters={"MAPE (%)": show})._repr_html_()
