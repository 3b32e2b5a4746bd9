"""Sphinx extension of the book's HTML (ours; issue 13), listed in ``_config.yml``.

- Every chapter's download menu offers the executed notebook (``.ipynb``) and its MyST source
  (``.md``): :func:`emorec.book.stage_book` copies the sources under ``_markdown/`` of the staged
  book, and this extension publishes them beside the notebooks in ``_sources/``.
- The repository button appears only when ``repository: url:`` in ``_config.yml`` is set.
- Each inline script is included once: sphinx-thebe registers its configuration script twice in
  Jupyter Book 1, and the second copy is a browser error ("THEBE_JS_URL has already been declared").
"""

from __future__ import annotations

import shutil
from pathlib import Path

MARKDOWN = "_markdown"  # folder of the staged book holding the chapters' MyST sources


def markdown_source(app, pagename: str) -> Path:
    return Path(app.srcdir) / MARKDOWN / f"{pagename}.md"


def repository_button_when_configured(app) -> None:
    """Turn the repository button on exactly when a repository URL is configured (the theme reads
    the builder's copy of the options)."""
    from pydata_sphinx_theme.utils import get_theme_options_dict

    options = get_theme_options_dict(app)
    options["use_repository_button"] = bool(options.get("repository_url"))


def add_markdown_download(app, pagename, templatename, context, doctree) -> None:
    """Add ``.md`` after ``.ipynb`` in the page's download menu when the page has a MyST source."""
    if not markdown_source(app, pagename).is_file():
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(1, {
                "type": "link", "url": f"{context['pathto']('_sources', 1)}/{pagename}.md", "text": ".md",
                "tooltip": "Download the MyST Markdown source", "icon": "fas fa-file-lines",
                "label": "download-markdown-button"})


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of identical script entries (same file and same inline body). In place: the
    list is the builder's own (reset for every page), which the page is rendered from."""
    scripts = context.get("script_files", [])
    seen, unique = set(), []
    for script in scripts:
        # an inline script has filename None or "" depending on who added it
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def publish_markdown_sources(app, exception) -> None:
    """Copy the staged MyST sources to ``_sources/`` of the HTML, where the download links point."""
    source = Path(app.srcdir) / MARKDOWN
    if exception is None and app.builder.format == "html" and source.is_dir():
        shutil.copytree(source, Path(app.outdir) / "_sources", dirs_exist_ok=True)


def setup(app):
    app.connect("builder-inited", repository_button_when_configured)
    app.connect("html-page-context", add_markdown_download, priority=600)  # after the theme's buttons
    app.connect("html-page-context", drop_repeated_scripts, priority=600)
    app.connect("build-finished", publish_markdown_sources)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
