"""The book runner (what `make book` and `make test` call) fails loudly on a broken chapter.

Each test builds a one-chapter book in a temporary folder with the repository's own `_config.yml`,
so the checks cover the real configuration (warnings as errors, execution off, glue figures).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emorec import book, paths

REPO = Path(__file__).resolve().parents[1]

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: emorec
  language: python
  name: emorec
---
"""

GOOD_BODY = """\
# A chapter

```{code-cell} ipython3
:tags: [parameters]

profile = "cpu"
n = 3
```

```{code-cell} ipython3
import matplotlib.pyplot as plt
from myst_nb import glue

fig, ax = plt.subplots()
ax.plot(range(n))
glue("fig-line", fig, display=False)
plt.close(fig)  # else the inline backend shows it a second time
print(f"profile={profile} n={n}")
```

```{glue:figure} fig-line
Figure 1: a line.
```
"""

BIB = """\
@article{teixeira2021,
  title = {Continuous Emotion Recognition with Spatiotemporal Convolutional Neural Networks},
  author = {Teixeira, Thomas and Granger, Eric and Koerich, Alessandro Lameiras},
  journal = {Applied Sciences},
  year = {2021}
}
"""


def make_book(root: Path, body: str, chapter_params: str = "") -> Path:
    """A minimal book: the repository's _config.yml, one chapter, a smoke profile."""
    (root / "chapters").mkdir(parents=True)
    (root / "lib" / "emorec").mkdir(parents=True)  # marks the project root for emorec.paths
    (root / "params").mkdir()
    shutil.copy2(REPO / "_config.yml", root / "_config.yml")
    (root / "references.bib").write_text(BIB)
    (root / "_toc.yml").write_text("format: jb-book\nroot: chapters/one\n")
    (root / "chapters" / "one.md").write_text(HEADER + body)
    (root / "params" / "smoke.yaml").write_text(
        "common:\n  profile: smoke\n  seed: 0\n  cell_timeout: 120\n" + chapter_params)
    return root


def test_good_chapter_executes_with_profile_parameters_and_renders_outputs(tmp_path):
    root = make_book(tmp_path, GOOD_BODY, "one:\n  n: 5\n")
    book.run_book(root, "smoke")
    executed = (root / "_build/smoke/book/chapters/one.ipynb").read_text()
    assert "profile=smoke n=5" in executed  # common and chapter parameters both injected
    html = (root / "_build/smoke/site/_build/html/chapters/one.html").read_text()
    assert "profile=smoke n=5" in html  # the page shows papermill's outputs
    assert "<img" in html  # and the glued figure


def test_broken_cell_fails_and_leaves_no_executed_notebook(tmp_path):
    body = GOOD_BODY.replace('print(f"profile', 'raise RuntimeError("deliberately broken")\nprint(f"profile')
    root = make_book(tmp_path, body)
    with pytest.raises(book.BookError, match="deliberately broken"):
        book.run_book(root, "smoke")
    assert not (root / "_build/smoke/book/chapters/one.ipynb").exists()
    assert (root / "_build/smoke/book/chapters/one.failed.ipynb").exists()


def test_missing_figure_fails_the_html_build(tmp_path):
    body = GOOD_BODY.replace("{glue:figure} fig-line", "{glue:figure} fig-never-glued")
    root = make_book(tmp_path, body)
    with pytest.raises(book.BookError, match="fig-never-glued"):
        book.run_book(root, "smoke")


def test_sphinx_warning_fails_the_html_build(tmp_path):
    root = make_book(tmp_path, GOOD_BODY + "\nSee {cite}`no_such_reference`.\n")
    with pytest.raises(book.BookError, match="no_such_reference"):
        book.run_book(root, "smoke")


def test_parameter_the_chapter_does_not_declare_is_rejected(tmp_path):
    root = make_book(tmp_path, GOOD_BODY, "one:\n  n_typo: 5\n")
    with pytest.raises(book.BookError, match="n_typo"):
        book.run_book(root, "smoke", html=False)


def test_chapter_without_parameters_cell_is_rejected(tmp_path):
    root = make_book(tmp_path, GOOD_BODY.replace(":tags: [parameters]\n", ""))
    with pytest.raises(book.BookError, match="exactly one cell tagged 'parameters'"):
        book.run_book(root, "smoke", html=False)


def test_command_line_exit_status_is_nonzero_on_a_broken_chapter(tmp_path):
    """`make book` and `make test` both run this command, so both fail on a broken cell."""
    root = make_book(tmp_path, GOOD_BODY.replace("ax.plot(range(n))", "ax.plot(range(n)) + undefined_name"))
    result = subprocess.run([sys.executable, "-m", "emorec.book", "--profile", "smoke", "--root", str(root)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "NameError" in result.stderr and "one.md" in result.stderr


def test_toc_entry_without_source_is_an_error(tmp_path):
    root = make_book(tmp_path, GOOD_BODY)
    (root / "_toc.yml").write_text("format: jb-book\nroot: chapters/one\nchapters:\n  - file: chapters/two\n")
    with pytest.raises(book.BookError, match="chapters/two"):
        book.read_toc(root)


def test_repository_toc_lists_only_existing_chapters_each_with_one_parameters_cell():
    for page in book.read_toc(REPO):
        if page.is_notebook:
            assert book.declared_parameters(page) >= {"profile"}, page.source


def test_relative_paths_resolve_against_the_project_root_from_a_subfolder(tmp_path, monkeypatch):
    root = make_book(tmp_path, GOOD_BODY)
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.chdir(root / "chapters")
    assert paths.resolve("data") == root.resolve() / "data"
    assert paths.resolve(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path / "elsewhere"))
    assert paths.resolve("data") == (tmp_path / "elsewhere" / "data").resolve()


def test_the_repository_button_appears_once_a_url_is_configured(tmp_path):
    root = make_book(tmp_path, GOOD_BODY)
    config = root / "_config.yml"
    config.write_text(config.read_text().replace('url: ""', 'url: "https://github.com/example/emorec"'))
    book.run_book(root, "smoke")
    text = (root / "_build/smoke/site/_build/html/chapters/one.html").read_text()
    assert 'href="https://github.com/example/emorec"' in text and "repository-button" in text


def test_a_full_run_replaces_its_own_stage_but_never_an_unmarked_folder(tmp_path):
    root = make_book(tmp_path, GOOD_BODY)
    book.run_book(root, "smoke", html=False)
    stage = root / "_build/smoke/book"
    (stage / "chapters" / "removed_chapter.ipynb").write_text("{}")  # a page no longer in _toc.yml
    book.run_book(root, "smoke", html=False)
    assert not (stage / "chapters" / "removed_chapter.ipynb").exists()
    assert (stage / "chapters" / "one.ipynb").is_file()

    (stage / ".emorec.json").unlink()  # as an older emorec (or a user) left it: not provably ours
    with pytest.raises(book.BookError, match="is not an emorec executed book .*deleting it by hand"):
        book.run_book(root, "smoke", html=False)
    assert (stage / "chapters" / "one.ipynb").is_file()  # nothing deleted


def test_publishing_replaces_its_own_copy_but_never_an_unmarked_html_folder(tmp_path):
    root = make_book(tmp_path, GOOD_BODY)
    book.run_book(root, "smoke", publish=True)
    published = root / "_build/html"
    assert (published / "chapters/one.html").is_file() and (published / ".emorec.json").is_file()
    shutil.rmtree(published)
    published.mkdir()
    (published / "notes.txt").write_text("a user's file")
    with pytest.raises(book.BookError, match="is not an emorec published book"):
        book.run_book(root, "smoke", publish=True)
    assert (published / "notes.txt").read_text() == "a user's file"
