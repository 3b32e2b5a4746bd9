"""Tests for emorec.paper: cells checked against the paper's text."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emorec import paper

PAPER_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "paper"


def row(df, **match):
    mask = np.ones(len(df), dtype=bool)
    for key, value in match.items():
        mask &= (df[key] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {match}, got {mask.sum()}"
    return df[mask].iloc[0]


def test_cells_against_the_text():
    assert row(paper.table1(), model="VGG-16", pretraining="VGG-Face", block="Conv_4_1").accuracy == 79.9
    assert row(paper.table1(), model="VGG-11", block="Conv_5_1").accuracy == 70.3
    assert row(paper.table1(), model="CNN+RAN").accuracy == 86.9
    t2 = paper.table2()
    best = row(t2, init="RAF-DB", fps=10, label="valence")
    assert (best.CCC, best.PCC, best.SL, best.OR, best.FM) == (0.625, 0.631, 64, 0.8, "mean")
    assert row(t2, init="VGG-Face", fps=50, label="arousal").MAPE == 3.4
    t6 = paper.table6()
    assert row(t6, base_model="ResNet50", init="VGG-Face").arousal_PCC == 0.406
    assert row(t6, base_model="VGG-16-BN", init="ImageNet").valence_CCC == 0.304
    t7 = paper.table7()
    zhao = row(t7, reference="Zhao et al. (2019)")
    assert zhao.arousal_CCC == 0.594 and np.isnan(zhao.valence_PCC)
    assert row(t7, model="ResNet18 (CCC)").valence_CCC == 0.350
    assert row(paper.table4(), base_model="ResNet50", init="RAF-DB").dilation == "VIII"
    assert row(paper.table5(), base_model="VGG-16", init="RAF-DB").multiplier == 100
    assert paper.table3().loc["Multiplier", "C2"] == "×100"


def test_tables_are_consistent_with_each_other():
    t2, t6, t7 = paper.table2(), paper.table6(), paper.table7()
    lstm = row(t7, model="2D-CNN-LSTM")
    assert lstm.valence_CCC == row(t2, init="RAF-DB", fps=10, label="valence").CCC
    assert lstm.arousal_CCC == row(t2, init="RAF-DB", fps=10, label="arousal").CCC
    i3d = row(t7, model="i3D-CNN")
    vgg16bn = row(t6, base_model="VGG-16-BN", init="ImageNet")
    assert (i3d.valence_PCC, i3d.valence_CCC, i3d.arousal_PCC, i3d.arousal_CCC) == (
        vgg16bn.valence_PCC, vgg16bn.valence_CCC, vgg16bn.arousal_PCC, vgg16bn.arousal_CCC)
    # every base model appears with each of its three initialisations in Tables 4-6
    for df in (paper.table4(), paper.table5(), t6):
        assert len(df) == 11 and not df.duplicated(["base_model", "init"]).any()
    assert paper.I3D_CONFIGS["C2"]["dilation"] == (1, 2, 4, 8)


def test_tables_are_fresh_copies():
    df = paper.table6()
    df.loc[0, "valence_PCC"] = -1.0
    assert paper.table6().loc[0, "valence_PCC"] == 0.035


def test_circumplex_coordinates():
    df = paper.circumplex_coordinates()
    assert len(df) == len(paper.CIRCUMPLEX_WORDS)
    np.testing.assert_allclose(np.hypot(df.valence, df.arousal), 1.0)
    happy, sleepy = row(df, word="happy"), row(df, word="sleepy")
    assert happy.valence > 0.9 and abs(happy.arousal) < 0.2
    assert sleepy.arousal < -0.99
    assert (row(df, word="sad").valence < 0) and (row(df, word="sad").arousal < 0)


def _paper_text() -> str:
    files = sorted(PAPER_DIR.glob("*.txt")) if PAPER_DIR.is_dir() else []
    if not files:
        pytest.skip(f"the paper's text is not in {PAPER_DIR} (it lives outside the repository, in the team's shared folder)")
    return files[0].read_text(encoding="utf-8")


def test_every_table6_and_table7_row_appears_in_the_paper_text():
    text = _paper_text()
    for r in paper.table6().itertuples(index=False):
        cells = [f"{r.valence_PCC:.3f}", f"{r.valence_CCC:.3f}", f"{r.valence_MAPE:.1f}",
                 f"{r.arousal_PCC:.3f}", f"{r.arousal_CCC:.3f}", f"{r.arousal_MAPE:.1f}"]
        assert f"{r.init}\t" + "\t".join(cells) in text, (r.base_model, r.init)
    for r in paper.table7().itertuples(index=False):
        cells = ["NA" if np.isnan(v) else f"{v:.3f}" for v in (r.valence_PCC, r.valence_CCC, r.arousal_PCC, r.arousal_CCC)]
        assert f"{r.model}" in text and "\t".join(cells) in text, r.model


def test_every_table1_and_table2_row_appears_in_the_paper_text():
    text = _paper_text()
    for r in paper.table1().itertuples(index=False):
        assert f"{'NA' if pd.isna(r.block) else r.block}\t{r.accuracy:.1f}" in text, (r.model, r.block)
    for r in paper.table2().itertuples(index=False):
        line = f"{r.label.capitalize()}\t{r.SL}, {r.OR}, {r.FM}\t{r.PCC:.3f}\t{r.CCC:.3f}\t{r.MAPE:.1f}"
        assert line in text, line


def test_circumplex_plot_places_every_word_on_the_circle():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emorec.plots import circumplex

    fig, ax = plt.subplots()
    circumplex(ax, points=np.array([[0.2, -0.1], [0.5, 0.5]]))
    texts = {t.get_text() for t in ax.texts}
    assert set(paper.CIRCUMPLEX_WORDS) <= texts
    assert {w.upper() for w in paper.CIRCUMPLEX_OCTANTS} <= texts
    dots = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.hypot(dots[:, 0], dots[:, 1]), 1.0)
    assert ax.get_xlim() == (-1.35, 1.35) and "valence" in ax.get_xlabel()
    plt.close(fig)
