"""The browser check of the built book (emorec.bookcheck) on small books with one defect per page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imsave

from emorec import bookcheck

pytestmark = pytest.mark.skipif(not bookcheck.CHROMIUM.is_file(),
                                reason=f"{bookcheck.CHROMIUM} missing (make browser installs it)")

# The shape of a Jupyter Book page: a main column of fixed width inside a wider window.
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<style>article.bd-article {{ width: 620px; margin-left: 200px; }} table {{ border-collapse: collapse; }}
.pst-scrollable-table-container {{ overflow-x: auto; }}</style></head>
<body><main><article class="bd-article"><h1 id="top">{title}</h1>{body}</article></main></body></html>"""

PAGES = {
    "clean": '<p>A figure, a table and a link.</p><figure><img src="../_images/a.png"></figure>'
             '<table class="dataframe"><tr><th>CCC</th><td>0.512</td></tr></table>'
             '<a href="twice.html#top">elsewhere</a> <a href="#top">up</a> <a href="https://example.org/x">out</a>'
             '<p>Results in artefacts/cpu/table2 and ~/.cache/torch; and/or tmp/ is not a path.</p>',
    "twice": '<img src="../_images/a.png"><figure><img src="../_images/a-copy.png">'
             '<figcaption>Figure 4: the same figure again</figcaption></figure>',
    "wide-table": '<div class="pst-scrollable-table-container"><table class="dataframe"><tr>'
                  + "".join(f"<th>valence CCC (paper) {i}</th>" for i in range(14)) + "</tr></table></div>",
    "wide-text": "<pre>" + "data: synthetic SEWA-like corpus | profile: cpu " * 8 + "</pre>",
    "broken-image": '<img src="../_images/missing.png">',
    "machine-path": "<pre>2 configurations loaded from {root}/artefacts/smoke/table2</pre>"
                    "<p>weights expected at /root/.cache/torch/hub/checkpoints/vgg16.pth</p>",
    "broken-link": '<a href="gone.html">gone</a> <a href="clean.html#no-such-anchor">anchor</a>',
}


def write_book(html: Path, root: Path) -> None:
    (html / "chapters").mkdir(parents=True)
    (html / "_images").mkdir()
    image = np.linspace(0, 1, 48).reshape(4, 4, 3)
    imsave(html / "_images" / "a.png", image)
    (html / "_images" / "a-copy.png").write_bytes((html / "_images" / "a.png").read_bytes())
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=chapters/clean.html" />')
    for name, body in PAGES.items():
        page = PAGE.format(title=name, body=body.replace("{root}", str(root)))
        (html / "chapters" / f"{name}.html").write_text(page, encoding="utf-8")


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The reports of one check of the small book, by page name; and the screenshot folder."""
    base = tmp_path_factory.mktemp("book")
    root = base / "repository"
    html, screens = root / "_build" / "html", root / "_build" / "screens"
    write_book(html, root)
    reports, external = bookcheck.check_book(html, screens, root=root)
    return {Path(r.name).stem: r.problems for r in reports}, screens, external


def test_clean_page_passes_and_every_page_gets_a_screenshot(checked):
    problems, screens, external = checked
    assert problems["clean"] == []
    assert problems["index"] == []  # the redirect's target exists
    assert sorted(p.stem for p in screens.glob("*.png")) == sorted(f"chapters__{name}" for name in PAGES)
    assert external == []  # a link to another host is not a request


def test_figure_shown_twice_fails(checked):
    assert any(p.startswith("figure shown 2 times") for p in checked[0]["twice"])


def test_table_wider_than_the_column_fails(checked):
    found = checked[0]["wide-table"]
    assert len(found) == 1 and found[0].startswith("too wide: div.pst-scrollable-table-container > table")
    assert "620 px column" in found[0]


def test_printed_text_wider_than_the_column_fails(checked):
    assert [p for p in checked[0]["wide-text"] if p.startswith("too wide: pre")]


def test_broken_image_fails(checked):
    found = checked[0]["broken-image"]
    assert "image does not load: _images/missing.png" in found
    assert any("HTTP 404" in p for p in found)  # the browser's failed request is reported too


def test_machine_paths_fail(checked):
    found = " ".join(checked[0]["machine-path"])
    assert "/repository'" in found and "/root/.cache/torch/hub/checkpoints/vgg16.pth" in found


def test_broken_links_fail(checked):
    assert sorted(checked[0]["broken-link"]) == [
        "broken link: chapters/clean.html#no-such-anchor (no anchor #no-such-anchor)",
        "broken link: chapters/gone.html (no such file)"]


def test_main_lists_problems_by_page_and_exits_1(tmp_path, capsys):
    html = tmp_path / "html"
    write_book(html, tmp_path)
    assert bookcheck.main([str(html), "--screens", str(tmp_path / "screens")]) == 1
    out = capsys.readouterr().out
    assert "chapters/twice.html:\n  - figure shown 2 times" in out
    assert "chapters/clean.html:" not in out
    assert f"bookcheck: {len(PAGES) + 1} pages," in out


def test_not_a_built_book_is_one_line_and_exit_1(tmp_path, capsys):
    assert bookcheck.main([str(tmp_path), "--screens", str(tmp_path / "screens")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and "no index.html" in err
    assert not (tmp_path / "screens").exists()


def test_a_real_page_passes_and_fails_once_broken(tmp_path):
    """A one-chapter book built with the repository's _config.yml (theme scripts, download menu)
    passes; its page fails with the figure's image repeated, and with a table wider than the column."""
    from test_book import GOOD_BODY, make_book

    from emorec import book

    root = make_book(tmp_path / "repository", GOOD_BODY)
    book.run_book(root, "smoke")
    html = root / "_build/smoke/site/_build/html"
    page = html / "chapters" / "one.html"
    text = page.read_text()
    assert 'href="../_sources/chapters/one.md"' in text and (html / "_sources/chapters/one.md").is_file()
    assert 'href="../_sources/chapters/one.ipynb"' in text  # the executed notebook
    assert "repository-button" not in text  # no repository URL configured
    reports, _ = bookcheck.check_book(html, tmp_path / "screens", root=root)
    assert {r.name: r.problems for r in reports if r.problems} == {}

    def problems_after(old: str, new: str) -> dict:
        page.write_text(text.replace(old, new, 1))
        reports, _ = bookcheck.check_book(html, tmp_path / "screens", root=root)
        return {r.name: r.problems for r in reports if r.problems}

    image = text[text.index("<img"):text.index(">", text.index("<img")) + 1]
    src = re.search(r'src="\.\./([^"]+)"', image).group(1)
    assert problems_after(image, image + image) == {"chapters/one.html": [f"figure shown 2 times: {src}, {src}"]}
    wide = ('<table class="dataframe"><tr>' + "".join(f"<th>valence CCC (paper) {i}</th>" for i in range(12))
            + "</tr></table>")
    found = problems_after("</figure>", "</figure>" + wide)
    assert list(found) == ["chapters/one.html"] and len(found["chapters/one.html"]) == 1
    assert found["chapters/one.html"][0].startswith("too wide: ")

