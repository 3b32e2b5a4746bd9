"""Check the built book as a reader sees it, in a real browser (ours; issue 13).

``python -m emorec.bookcheck _build/<profile>/site/_build/html --screens _build/<profile>/screens``
serves the HTML from a localhost server, opens every page in Debian's headless ``chromium``
(driven by Playwright, which starts the installed browser and downloads none) in a 1280 px wide
window, and checks on each page that

- every image loads (``naturalWidth > 0``);
- no figure is shown twice in the main column (the same ``src``, or the same image content);
- no link inside the book points to a missing page, file or anchor;
- the browser logs no error (console errors and uncaught exceptions; a missing file counts);
- nothing in the main column is wider than the column (tables, ``pre`` blocks, images: an
  element whose ``scrollWidth`` exceeds its width, or which sticks out of the column);
- no absolute path of the build machine is printed (the repository root, the home folder,
  ``/root``, ``/home/...``, ``/tmp/...``);

and saves a full-page screenshot of each page under ``--screens``. It prints what is wrong on
which page and exits with status 1 when anything is. Requests to other hosts are not made (the
check runs offline); they are listed, and errors they cause in the browser are not counted.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import http.server
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from playwright.sync_api import Error as PlaywrightError

from .paths import project_root

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW = {"width": 1280, "height": 1600}
SKIP_FOLDERS = {"_static", "_sources", "_images"}
REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.IGNORECASE)
SLACK_PX = 2  # sub-pixel rounding: an element this much wider than its box is not an overflow
# An absolute path of a typical build machine: /root, /home/<user>, /tmp/<x> (not part of a URL).
MACHINE_PATH = re.compile(r"(?<![\w.~/:-])/(?:root|home|tmp)(?:/[^\s'\"<>)\]]*)?(?![\w-])")

# Runs in the page; returns what the checks need. "Visible" = rendered (not inside a closed
# <details>, e.g. a folded input cell). Overflow is reported once, at the outermost element.
PAGE_SCRIPT = """() => {
  const main = document.querySelector('article.bd-article') || document.querySelector('main')
               || document.body;
  const column = main.getBoundingClientRect();
  const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const describe = el => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += '#' + el.id;
    const classes = [...el.classList].slice(0, 2);
    if (classes.length) name += '.' + classes.join('.');
    const inner = el.firstElementChild;
    if (inner && ['TABLE', 'PRE', 'IMG', 'CODE'].includes(inner.tagName)) name += ' > ' + inner.tagName.toLowerCase();
    const text = (el.textContent || el.getAttribute('src') || '').replace(/\\s+/g, ' ').trim().slice(0, 60);
    return text ? `${name} ("${text}")` : name;
  };
  const overflows = [];
  const reported = [];
  for (const el of main.querySelectorAll('*')) {
    if (!visible(el) || reported.some(outer => outer.contains(el))) continue;
    const box = el.getBoundingClientRect();
    const scrolls = el.clientWidth > 0 && el.scrollWidth > el.clientWidth + %(slack)d;
    const sticksOut = box.width > 0 && box.right > column.right + %(slack)d;
    if (scrolls || sticksOut) {
      reported.push(el);
      const width = scrolls ? el.scrollWidth : Math.round(box.right - column.left);
      overflows.push(`${describe(el)} is ${width} px wide in a ${Math.round(column.width)} px column`);
    }
  }
  const images = [...document.images].filter(visible).map(img => ({
    src: img.currentSrc || img.src, loaded: img.complete && img.naturalWidth > 0,
    inMain: main.contains(img)}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const ids = [...document.querySelectorAll('[id]')].map(el => el.id)
              .concat([...document.querySelectorAll('a[name]')].map(a => a.name));
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && !['SCRIPT', 'STYLE', 'NOSCRIPT'].includes(parent.tagName)) texts.push(walker.currentNode.nodeValue);
  }
  return {overflows, images, links, ids, text: texts.join(' ')};
}""" % {"slack": SLACK_PX}

WAIT_FOR_IMAGES = """() => Promise.all([...document.images].map(img => img.complete ? null :
  new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })))"""


class BookCheckError(RuntimeError):
    """The check could not run (no HTML folder, no browser): not a finding about the book."""


@dataclass
class PageReport:
    """What was found on one page (``name`` relative to the HTML folder, e.g. ``chapters/x.html``)."""

    name: str
    problems: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


def book_pages(html_dir: Path) -> list[Path]:
    """The HTML pages of a built book (not Sphinx's copies under ``_static``, ``_sources``, ``_images``)."""
    return sorted(p for p in html_dir.rglob("*.html")
                  if not SKIP_FOLDERS & set(p.relative_to(html_dir).parts[:-1]))


def machine_path_patterns(root: Path) -> list[re.Pattern]:
    """Patterns of absolute paths of this machine: the repository root, the home folder, /root, /home, /tmp."""
    literals = {str(root.resolve()), str(root.absolute())}
    home = Path.home()
    if home != Path("/"):
        literals.add(str(home))
    return [re.compile(re.escape(text) + r"(?![\w-])") for text in sorted(literals, key=len, reverse=True)] \
        + [MACHINE_PATH]


def machine_paths(text: str, patterns: list[re.Pattern]) -> list[str]:
    """The distinct absolute machine paths printed in ``text``, each with a little context."""
    found = {}
    for pattern in patterns:
        for match in pattern.finditer(text):
            line = text[max(0, match.start() - 30):match.end() + 30].replace("\n", " ").strip()
            found.setdefault(match.group(0), line)
    return [f"machine path {path!r} printed (…{context}…)" for path, context in found.items()]


def image_digest(src: str, html_dir: Path, base_url: str) -> str | None:
    """SHA-256 of an image's bytes: a ``data:`` URI decoded, or the served file; None if neither."""
    if src.startswith("data:"):
        header, _, payload = src.partition(",")
        data = base64.b64decode(payload) if header.endswith(";base64") else unquote(payload).encode()
        return hashlib.sha256(data).hexdigest()
    target = local_file(src, html_dir, base_url)
    return hashlib.sha256(target.read_bytes()).hexdigest() if target and target.is_file() else None


def local_file(url: str, html_dir: Path, base_url: str) -> Path | None:
    """The file under ``html_dir`` that a URL of the local server names (None for other hosts)."""
    if not url.startswith(base_url):
        return None
    path = unquote(urlsplit(url).path).lstrip("/")
    target = html_dir / path
    return target / "index.html" if target.is_dir() or not path else target


def short_url(url: str, base_url: str) -> str:
    return url[len(base_url):] if url.startswith(base_url) else url


def repeated_figures(images: list[dict], html_dir: Path, base_url: str) -> list[str]:
    """Images of the main column shown more than once (same ``src``, or the same bytes)."""
    shown = defaultdict(list)
    for image in images:
        if image["inMain"]:
            key = image_digest(image["src"], html_dir, base_url) or image["src"]
            shown[key].append(short_url(image["src"], base_url)[:80])
    return [f"figure shown {len(srcs)} times: {', '.join(srcs)}" for srcs in shown.values() if len(srcs) > 1]


def broken_links(reports: list[PageReport], html_dir: Path, base_url: str) -> None:
    """Add to each page's problems the links inside the book whose file or anchor does not exist."""
    ids_by_file = {(html_dir / r.name).resolve(): r.ids for r in reports}
    for report in reports:
        for url in dict.fromkeys(report.links):
            target = local_file(url, html_dir, base_url)
            if target is None:
                continue
            fragment = unquote(urlsplit(url).fragment)
            if not target.is_file():
                report.problems.append(f"broken link: {short_url(url, base_url)} (no such file)")
            elif fragment and target.suffix == ".html" and fragment not in anchors(target, ids_by_file):
                report.problems.append(f"broken link: {short_url(url, base_url)} (no anchor #{fragment})")


def anchors(page: Path, ids_by_file: dict[Path, set[str]]) -> set[str]:
    """The ids of a page: as the browser saw them, or parsed from a page the check did not open."""
    page = page.resolve()
    if page not in ids_by_file:
        text = page.read_text(encoding="utf-8", errors="replace")
        ids_by_file[page] = set(re.findall(r'\b(?:id|name)="([^"]+)"', text))
    return ids_by_file[page]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the check reports failures itself
        pass


def serve(html_dir: Path) -> http.server.ThreadingHTTPServer:
    """A localhost HTTP server of ``html_dir`` on a free port, running in a background thread."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def check_page(context, url: str, name: str, screenshot: Path, patterns, html_dir: Path,
               base_url: str, external: set[str]) -> PageReport:
    """Open one page and check it; the screenshot is written to ``screenshot``."""
    report = PageReport(name)
    page = context.new_page()
    errors = []

    def on_console(message):
        source = message.location.get("url", "") if message.location else ""
        if message.type == "error" and source not in external:  # not the requests the check blocks
            errors.append(message.text)

    def on_response(response):
        if response.status >= 400:
            errors.append(f"{short_url(response.url, base_url)}: HTTP {response.status}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught {error}"))
    page.on("response", on_response)
    try:
        page.goto(url, wait_until="load", timeout=60_000)
        page.evaluate(WAIT_FOR_IMAGES)
        found = page.evaluate(PAGE_SCRIPT)
        page.screenshot(path=str(screenshot), full_page=True)
    except PlaywrightError as err:
        report.problems.append(f"page did not load: {str(err).splitlines()[0]}")
        return report
    finally:
        page.close()
    report.problems += [f"image does not load: {short_url(i['src'], base_url)[:100]}"
                        for i in found["images"] if not i["loaded"]]
    report.problems += repeated_figures(found["images"], html_dir, base_url)
    report.problems += [f"browser error: {text[:200]}" for text in dict.fromkeys(errors)]
    report.problems += [f"too wide: {text}" for text in found["overflows"]]
    report.problems += machine_paths(found["text"], patterns)
    report.links, report.ids = found["links"], set(found["ids"])
    return report


def check_book(html_dir: Path, screens: Path, root: Path | None = None,
               chromium: Path = CHROMIUM) -> tuple[list[PageReport], list[str]]:
    """Check every page of the book in ``html_dir``; returns the page reports and the external
    URLs the pages asked for (not fetched)."""
    from playwright.sync_api import sync_playwright

    html_dir = html_dir.resolve()
    if not (html_dir / "index.html").is_file():
        raise BookCheckError(f"{html_dir}: no index.html, not a built book (run python -m emorec.book first)")
    if not chromium.is_file():
        raise BookCheckError(f"{chromium}: chromium is not installed (apt-get install chromium)")
    pages = book_pages(html_dir)
    patterns = machine_path_patterns(root or project_root())
    screens.mkdir(parents=True, exist_ok=True)
    server = serve(html_dir)
    base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    external: set[str] = set()

    def offline(route):
        url = route.request.url
        if url.startswith(base_url) or url.startswith("data:"):
            route.continue_()
        else:
            external.add(url)
            route.abort()

    reports = []
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="emorec-chromium-") as profile:
            try:
                context = playwright.chromium.launch_persistent_context(
                    profile, executable_path=str(chromium), headless=True, chromium_sandbox=False,
                    args=CHROMIUM_FLAGS, viewport=WINDOW)
            except PlaywrightError as err:
                raise BookCheckError(f"{chromium}: could not start: {str(err).splitlines()[0]}") from None
            context.route("**/*", offline)
            for path in pages:
                name = path.relative_to(html_dir).as_posix()
                redirect = REDIRECT.search(path.read_text(encoding="utf-8", errors="replace")[:1000])
                if redirect:  # index.html only forwards to the first page: check that it exists
                    reports.append(PageReport(name, links=[urljoin(base_url + name, redirect.group(1))]))
                    continue
                shot = screens / (name.removesuffix(".html").replace("/", "__") + ".png")
                reports.append(check_page(context, base_url + name, name, shot, patterns, html_dir,
                                          base_url, external))
            context.close()
    finally:
        server.shutdown()
        server.server_close()
    broken_links(reports, html_dir, base_url)
    return reports, sorted(external)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emorec.bookcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the book's HTML folder, e.g. _build/smoke/site/_build/html")
    parser.add_argument("--screens", type=Path, required=True, help="folder for one screenshot per page")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help=f"the browser (default: {CHROMIUM})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        reports, external = check_book(args.html, args.screens, chromium=args.chromium)
    except BookCheckError as err:
        print(f"bookcheck: error: {err}", file=sys.stderr)
        return 1
    failed = [r for r in reports if r.problems]
    for report in failed:
        print(f"{report.name}:")
        print("\n".join(f"  - {problem}" for problem in report.problems))
    if external:
        print(f"not fetched (other hosts, the check runs offline): {', '.join(external)}")
    problems = sum(len(r.problems) for r in failed)
    print(f"bookcheck: {len(reports)} pages, {problems} problems on {len(failed)} pages; "
          f"screenshots in {args.screens} ({time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
