"""Run the book: execute each chapter once with papermill, then build the HTML from those outputs.

This is what ``make book`` and ``make test`` call (``python -m emorec.book --profile cpu``):

1. read the chapters, in order, from ``_toc.yml``;
2. convert each MyST notebook with jupytext and execute it once with papermill, with the working
   directory at the repository root, the ``emorec`` kernel, a per-cell timeout, and the parameters
   of ``params/<profile>.yaml`` (its ``common`` section merged with the chapter's own section), with
   a user's ``--params FILE.yaml`` of the same structure merged over it (:func:`load_params`); the
   values in force and their source go to ``_build/<profile>/params.json`` for the appendix;
3. stage the executed notebooks beside a copy of ``_config.yml``, ``_toc.yml`` and
   ``references.bib`` under ``_build/<profile>/book`` (a folder holding no ``.md`` twin, so Jupyter
   Book renders papermill's outputs and never executes anything itself);
4. build the HTML with Jupyter Book, warnings as errors.

A cell error, an undeclared parameter, a missing figure (an unresolved ``glue`` key) or any Sphinx
warning stops the run with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import config, storage
from .paths import project_root
from .sphinxext import MARKDOWN

PROFILES = config.PROFILES
KERNEL = "emorec"
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
# ``common`` keys read by the runner, not by chapters: the weight locations become the environment
# variables the library reads (emorec.models.weights), so every kernel and `emorec train` sees them.
WEIGHT_ENVIRONMENT = {"vggface_weights": "EMOREC_VGGFACE_WEIGHTS", "torch_home": "TORCH_HOME"}
STAGE_KIND = "executed book"  # _build/<profile>/book: the executed notebooks and the staged sources
SITE_KIND = "published book"  # _build/html (make book's publish step)
RUNNER_KEYS = set(config.RUNNER_KEYS)  # "cell_timeout" and the keys of WEIGHT_ENVIRONMENT


class BookError(RuntimeError):
    """A chapter failed, or the book's configuration is inconsistent."""


@dataclass(frozen=True)
class Page:
    """One entry of ``_toc.yml``: ``stem`` like ``04_2_metrics``, ``source`` the file on disk."""

    docname: str  # as written in the TOC, e.g. "chapters/04_2_metrics"
    source: Path

    @property
    def stem(self) -> str:
        return Path(self.docname).name

    @property
    def is_notebook(self) -> bool:
        return is_notebook(self.source)


def is_notebook(path: Path) -> bool:
    """A MyST page is a notebook when its front matter declares a kernel (jupytext pairing)."""
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec:" in head


def _toc_docnames(entries: list[dict]) -> list[str]:
    names = []
    for entry in entries:
        if "file" in entry:
            names.append(entry["file"])
        for key in ("sections", "chapters"):
            names += _toc_docnames(entry.get(key, []))
        for part in entry.get("parts", []):
            names += _toc_docnames(part.get("chapters", []))
    return names


def read_toc(root: Path) -> list[Page]:
    """The pages of ``_toc.yml`` in reading order (root first)."""
    toc_path = root / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    docnames = [toc["root"]] + _toc_docnames(toc.get("chapters", []) + toc.get("parts", []))
    pages = []
    for name in docnames:
        name = str(Path(name).with_suffix(""))
        source = root / f"{name}.md"
        if not source.is_file():
            raise BookError(f"{toc_path}: page {name!r} has no source file {source}")
        pages.append(Page(name, source))
    return pages


def load_profile(root: Path, profile: str) -> dict:
    """``params/<profile>.yaml`` as a dict with a ``common`` section, one section per chapter and the
    typed sections of :mod:`emorec.config` (their keys checked there)."""
    try:
        path = config.profile_file(profile, root)
        params = config.read_sections(path)
        config.check_typed_keys(params, f"params/{profile}.yaml")
    except config.ConfigError as err:
        raise BookError(str(err)) from None
    if not isinstance(params.get("common"), dict):
        raise BookError(f"{path}: needs a 'common:' section")
    return params


@dataclass
class ParamSet:
    """The parameters in force: ``values`` (``common`` plus chapter sections, as ``params/*.yaml``) and
    ``sources`` ((section, key) → the file each value came from)."""

    values: dict
    sources: dict

    def records(self) -> list[dict]:
        """One row per value in force: section, parameter, value, source (for the appendix)."""
        return [{"section": section, "parameter": key, "value": value, "source": self.sources[section, key]}
                for section, part in self.values.items() for key, value in part.items()]


def read_params_file(path: Path) -> dict:
    """A ``--params`` file: a mapping of sections (``common``, a chapter stem, or a section of
    :mod:`emorec.config`) to mappings (ours)."""
    try:
        return config.read_sections(path)
    except config.ConfigError as err:
        raise BookError(str(err)) from None


def _allowed_keys(section: str, declared: dict[str, set[str]]) -> set[str]:
    """What a section of a parameters file may set: the chapter's parameters and the typed keys."""
    return declared.get(section, set()) | config.section_fields(section)


def merge_params(profile_params: dict, override: dict, declared: dict[str, set[str]], source: str,
                 profile_source: str) -> ParamSet:
    """``override`` merged over the profile's parameters, each key checked against the chapters (ours).

    ``declared`` maps each chapter stem to the names its parameters cell assigns. A ``common`` key must
    be declared by some chapter (or be one of the runner's :data:`RUNNER_KEYS`); a chapter section's
    key by that chapter or by its typed section (:func:`emorec.config.section_fields`); the sections
    ``corpus`` and ``run`` hold only their typed keys. Anything else is a :class:`BookError` naming the
    key and ``source``."""
    everywhere = set().union(*declared.values()) | RUNNER_KEYS
    for section, part in override.items():
        if section != "common" and section not in declared and section not in config.OWN_SECTIONS:
            raise BookError(f"{source}: section {section!r} is neither 'common' nor a chapter of _toc.yml "
                            f"(nor {' or '.join(config.OWN_SECTIONS)})")
        allowed = everywhere if section == "common" else _allowed_keys(section, declared)
        for key in part:
            if key == "profile":
                raise BookError(f"{source}: {section}: 'profile' cannot be set here; use --profile")
            if key not in allowed:
                where = "no chapter declares it" if section == "common" else \
                    f"chapter {section} does not declare it" + (
                        " (nor does its section of emorec.config)" if config.section_fields(section) else "")
                raise BookError(f"{source}: parameter {key!r} in section {section!r}: {where}")
    values, sources = config.merge(profile_params, override, profile_source, source)
    return ParamSet(values, sources)


def load_params(root: Path, profile: str, params_file: Path | None = None) -> ParamSet:
    """The parameters in force: ``params/<profile>.yaml`` with ``params_file`` merged over it (ours).

    The book runner's view (checked against the chapters' parameters cells); the typed view of the
    same files, for the library, the CLI and ``emorec run``, is :func:`emorec.config.load`."""
    params = load_profile(root, profile)
    profile_source = f"params/{profile}.yaml"
    if params_file is None:
        return merge_params(params, {}, {}, "", profile_source)
    declared = {page.stem: declared_parameters(page) for page in read_toc(root) if page.is_notebook}
    return merge_params(params, read_params_file(params_file), declared, str(params_file), profile_source)


def set_weight_environment(common: dict) -> None:
    """Export the weight locations of ``common`` (:data:`WEIGHT_ENVIRONMENT`) for the library (ours)."""
    for key, variable in WEIGHT_ENVIRONMENT.items():
        if common.get(key):
            os.environ[variable] = str(Path(str(common[key])).expanduser().resolve())


def chapter_parameters(profile_params: dict, page: Page, declared: set[str]) -> dict:
    """The profile's ``common`` values the chapter declares, overridden by the chapter's own section.

    A chapter section's keys that the chapter does not declare but its typed section does
    (:mod:`emorec.config`, e.g. Table 1's rows) are read by the library, not injected. A key that
    neither declares is an error (a typo in ``params/*.yaml`` would otherwise be silently ignored)."""
    own = profile_params.get(page.stem) or {}
    if not isinstance(own, dict):
        raise BookError(f"params section {page.stem!r} must hold 'key: value' lines")
    unknown = sorted(set(own) - set(declared) - config.section_fields(page.stem))
    if unknown:
        raise BookError(f"params section {page.stem!r} sets {unknown}, which {page.source} does not declare "
                        f"in its parameters cell")
    common = {k: v for k, v in profile_params["common"].items() if k in declared}
    return {**common, **{k: v for k, v in own.items() if k in declared}}


def execute_chapter(page: Page, out_path: Path, parameters: dict, root: Path, timeout: int | None) -> float:
    """Execute one chapter with papermill into ``out_path`` (written only on success); seconds taken."""
    import jupytext
    import nbformat
    import papermill

    nb = jupytext.read(page.source)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    source_ipynb = out_path.with_suffix(".source.ipynb")
    partial = out_path.with_suffix(".partial.ipynb")
    nbformat.write(nb, source_ipynb)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source_ipynb), str(partial), parameters=parameters, kernel_name=KERNEL, cwd=str(root),
            execution_timeout=timeout, progress_bar=False, report_mode=False,
        )
    except papermill.PapermillExecutionError as err:
        failed = out_path.with_suffix(".failed.ipynb")
        os.replace(partial, failed)
        raise BookError(f"{page.source}: cell {err.exec_count} raised {err.ename}: {err.evalue} "
                        f"(executed notebook kept at {failed})") from None
    finally:
        source_ipynb.unlink(missing_ok=True)
    _show_injected_paths_relative(partial)
    os.replace(partial, out_path)
    out_path.with_suffix(".failed.ipynb").unlink(missing_ok=True)
    return time.perf_counter() - start


def _show_injected_paths_relative(path: Path) -> None:
    """Papermill's injected-parameters cell, as published, names paths the way every page does:
    relative to the repository root or with ``~`` (:func:`emorec.reporting.display_paths_in`). The
    chapters resolve both forms as before, so re-executing the notebook reads the same files."""
    import nbformat

    from .reporting import display_paths_in

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = display_paths_in(cell.source)
    nbformat.write(nb, path)


def stage_book(root: Path, stage: Path, pages: list[Page]) -> None:
    """Copy the book's configuration, its style sheet (``_static/``) and the non-notebook pages
    beside the executed notebooks; a notebook's MyST source goes under ``_markdown/`` (outside the
    table of contents, so not built) for the page's ``.md`` download (see :mod:`emorec.sphinxext`)."""
    for name in BOOK_FILES:
        shutil.copy2(root / name, stage / name)
    for page in pages:
        target = stage / (f"{page.docname}.md" if not page.is_notebook else f"{MARKDOWN}/{page.docname}.md")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page.source, target)
    for static in (root / "_static", root / "chapters" / "_static"):
        if static.is_dir():
            shutil.copytree(static, stage / static.relative_to(root), dirs_exist_ok=True)


def build_html(stage: Path, site: Path) -> Path:
    """Jupyter Book's HTML of the staged book, warnings as errors; returns the html folder."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(stage), "--path-output", str(site), "--all", "-W", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    log = result.stdout + result.stderr
    (site / "build.log").parent.mkdir(parents=True, exist_ok=True)
    (site / "build.log").write_text(log, encoding="utf-8")
    if result.returncode != 0 or "WARNING" in log:
        warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
        raise BookError("Jupyter Book build failed:\n" + "\n".join(warnings[:30] or log.splitlines()[-30:]))
    return site / "_build" / "html"


def run_book(root: Path, profile: str, only: list[str] | None = None, html: bool = True,
             publish: bool = False, params_file: Path | None = None) -> Path:
    """Execute the chapters (all, or those named in ``only``) and build the HTML; returns the stage.

    ``params_file`` (``--params``) is merged over the profile (:func:`load_params`)."""
    param_set = load_params(root, profile, params_file)
    try:  # the typed sections complete and well-formed before any chapter runs
        config.check_present(param_set.values, param_set.sources)
    except config.ConfigError as err:
        raise BookError(str(err)) from None
    params = param_set.values
    set_weight_environment(params["common"])
    pages = read_toc(root)
    if only:
        missing = sorted(set(only) - {p.stem for p in pages})
        if missing:
            raise BookError(f"--only names pages not in _toc.yml: {missing}")
    build = root / "_build" / profile
    stage = build / "book"
    if not only:  # a full run starts clean: no notebook of a removed or failed chapter survives
        _remove_own_folder(stage, STAGE_KIND)
    stage.mkdir(parents=True, exist_ok=True)
    if storage.read_marker(stage) is None:
        storage.write_marker(stage, STAGE_KIND, __name__)
    timeout = params["common"].get("cell_timeout")
    record = {"profile": profile, "params_file": str(params_file) if params_file else None,
              "values": param_set.records()}
    (build / "params.json").write_text(json.dumps(record, indent=1, default=str))
    timings_path = build / "timings.json"
    timings = json.loads(timings_path.read_text()) if only and timings_path.is_file() else {}
    for page in pages:
        if not page.is_notebook or (only and page.stem not in only):
            continue
        declared = declared_parameters(page)
        parameters = chapter_parameters(params, page, declared)
        if "params_file" in declared:  # chapters reading emorec.config see the same --params file
            parameters["params_file"] = str(Path(params_file).resolve()) if params_file else None
        print(f"[{profile}] executing {page.docname} ...", flush=True)
        seconds = execute_chapter(page, stage / f"{page.docname}.ipynb", parameters, root, timeout)
        timings[page.stem] = round(seconds, 1)
        # Written after each chapter, so the appendix (executed last) can show the times of this build.
        timings_path.write_text(json.dumps(timings, indent=2))
        print(f"[{profile}] {page.docname}: {seconds:.1f} s", flush=True)
    if html and not only:
        stage_book(root, stage, pages)
        print(f"[{profile}] building HTML ...", flush=True)
        html_dir = build_html(stage, build / "site")
        print(f"[{profile}] HTML: {html_dir / 'index.html'}", flush=True)
        if publish:
            published = root / "_build" / "html"
            _remove_own_folder(published, SITE_KIND)
            shutil.copytree(html_dir, published, dirs_exist_ok=True)  # absent or empty here
            storage.write_marker(published, SITE_KIND, __name__)
            print(f"[{profile}] published to {published / 'index.html'}", flush=True)
    return stage


def _remove_own_folder(folder: Path, kind: str) -> None:
    """Delete ``folder`` when emorec's book made it (its marker of ``kind``); an empty or absent one is
    left as it is; anything else is one BookError, nothing deleted (ours: a user's folder is never removed)."""
    try:
        storage.check_replaceable(folder, kind, lambda name: True,
                                  option="between moving it away and deleting it by hand (builds of an emorec "
                                         "older than its folder markers left it unmarked)")
    except storage.NotOurs as err:
        raise BookError(str(err)) from None
    storage.remove_ours(folder, kind, lambda name: True)


def declared_parameters(page: Page) -> set[str]:
    """Names assigned in the chapter's ``parameters`` cell; exactly one such cell is required."""
    import jupytext

    nb = jupytext.read(page.source)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise BookError(f"{page.source}: needs exactly one cell tagged 'parameters', found {len(tagged)}")
    try:
        tree = ast.parse(tagged[0].source)
    except SyntaxError as err:
        raise BookError(f"{page.source}: parameters cell is not valid Python: {err}") from None
    return {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The book's command-line options (shared by ``python -m emorec.book`` and ``emorec book``)."""
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="parameter set (default: cpu)")
    parser.add_argument("--only", action="append", metavar="STEM",
                        help="execute only this chapter (repeatable), e.g. --only 04_2_metrics; no HTML")
    parser.add_argument("--no-html", action="store_true", help="execute the chapters but skip the HTML build")
    parser.add_argument("--publish", action="store_true", help="copy the HTML to _build/html")
    parser.add_argument("--params", type=Path, default=None, metavar="FILE.yaml",
                        help="merge this file (common: plus chapter sections, as params/<profile>.yaml) over the "
                             "profile: data roots, split file, weight locations")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from cwd)")


def run_from_args(args: argparse.Namespace) -> int:
    root = (args.root or project_root()).resolve()
    start = time.perf_counter()
    try:
        run_book(root, args.profile, only=args.only, html=not args.no_html, publish=args.publish,
                 params_file=args.params)
    except BookError as err:
        print(f"book: error: {err}", file=sys.stderr)
        return 1
    print(f"[{args.profile}] done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emorec.book", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
