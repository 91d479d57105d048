"""What a reader sees, checked in a real browser (headless Chromium driven by Playwright).

1. JupyterLab: a server on 127.0.0.1 opens the first chapter (a copy, so nothing is
   saved into the repository), runs all cells from the Run menu and waits until every
   code cell has finished. Then the ipywidgets controls and the plotly figures must be on
   the page, and pressing the arrow keys on a slider must redraw the figure of its cell.
2. RISE: the same chapter opens as a live slideshow (jupyterlab_rise).
3. The book and the slides: the first chapter is built into a small book and a reveal.js
   deck with the very pipeline of ``make book`` / ``make slides`` (scripts/book.py), served
   from 127.0.0.1; a plotly figure must render on the book page, the deck's figures must
   render, and neither may request anything from outside 127.0.0.1 (they work offline).

Screenshots land in ``artifacts/screenshots/``. The module is skipped, with the reason,
where ``/usr/bin/chromium`` (Debian's ``chromium`` package; override with
``SCORELAB_CHROMIUM``) or the playwright package is missing, unless
``SCORELAB_REQUIRE_BROWSER=1`` (set by .ci/run), which turns that into a failure.
Marker: ``browser`` (``pytest -m "not browser"`` leaves it out).

The small book is kept in ``artifacts/browser-book/`` and reused while it is newer than the
chapter, the scorelab package and the book pipeline, so a second local run skips the build.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("SCORELAB_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
# Chromium flags that work as root in a container and keep the browser off the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
RUN_ALL_TIMEOUT_S = 900      # the whole chapter, on a loaded 2-core machine
SLIDER_TIMEOUT_S = 120       # one redraw after a slider move

pytestmark = pytest.mark.browser

# CI sets SCORELAB_REQUIRE_BROWSER=1 (.ci/run installs Chromium): there a missing browser fails.
_REQUIRED = os.environ.get("SCORELAB_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str):
    if _REQUIRED:
        pytest.fail(f"SCORELAB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.exists():
    _unavailable(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium "
                 "fonts-noto-cjk) to run the browser test")
try:
    from playwright import sync_api
except ImportError:
    _unavailable("the playwright package is not installed")


from book_script import book as bookbuild  # noqa: E402


def _first_chapter():
    chapters = [e for e in bookbuild.discover(REPO) if e.kind == "chapters"]
    if not chapters:
        pytest.skip("no chapter notebook in chapters/ yet")
    preferred = [e for e in chapters if e.path == "chapters/4.1-score-function.ipynb"]
    return (preferred or chapters)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shot(page_or_locator, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page_or_locator.screenshot(path=str(path))
    return path


class PageWatch:
    """Collects a page's uncaught errors and its requests to hosts other than 127.0.0.1.

    Playwright's sync API serves these handlers (and the routed requests) only inside its
    own calls, so a test that waits on a page uses ``page.wait_for_timeout``, never
    ``time.sleep``.
    """

    def __init__(self, page):
        self.errors: list[str] = []
        self.external: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text[:400]}")
                if m.type in ("error", "warning") else None)
        page.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chapter():
    return _first_chapter()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _lab_settings(settings_dir: Path) -> None:
    """JupyterLab user settings for the test: every cell in the DOM, no autosave, no news."""
    overrides = {
        # Lab 4 renders only the cells in view by default; the test inspects all of them.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false", "checkForUpdates": False},
    }
    for rel, value in overrides.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")


class LabServer:
    def __init__(self, root: Path, port: int, token: str, proc, log: Path):
        self.root, self.port, self.token, self.proc, self.log = root, port, token, proc, log

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_state(self, nb_path: str):
        # JupyterLab 4 names sessions by the notebook's file name (its path is a document id).
        name = Path(nb_path).name
        for s in self.api("api/sessions"):
            if name in (s.get("name"), Path(s.get("path", "")).name) and s.get("kernel"):
                return s["kernel"].get("execution_state")
        return None

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chapter):
    """JupyterLab on a free 127.0.0.1 port, serving a temp folder with a copy of the chapter."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    (root / "chapters").mkdir(parents=True)
    shutil.copy2(REPO / chapter.path, root / chapter.path)
    _lab_settings(base / "settings")
    port, token = _free_port(), os.urandom(16).hex()
    # The reader's defaults: the test session may set MPLBACKEND=Agg (conftest.py), which
    # would keep matplotlib figures out of the notebook; plotly picks its own renderer.
    env = {k: v for k, v in os.environ.items() if k not in ("PLOTLY_RENDERER", "MPLBACKEND")}
    env["SCORELAB_FAST"] = "1"   # the numbers are checked by the notebook run of `make test`
    env.update(JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               IPYTHONDIR=str(base / "ipython"), PYDEVD_DISABLE_FILE_VALIDATION="1")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={base / 'settings'}",
           f"--LabApp.workspaces_dir={base / 'workspaces'}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = base / "jupyterlab.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = LabServer(root, port, token, proc, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 120 s:\n{server.log_tail()}")
                time.sleep(0.5)  # no page yet: a plain sleep is fine here
        yield server
    finally:
        try:
            for k in server.api("api/kernels") or []:
                server.api(f"api/kernels/{k['id']}", method="DELETE")
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _fresh(target: Path, sources) -> bool:
    if not target.is_file():
        return False
    newest = max((p.stat().st_mtime for p in sources if p.is_file()), default=0.0)
    return target.stat().st_mtime >= newest


@pytest.fixture(scope="module")
def built(chapter):
    """A book of the landing page and the first chapter, and the chapter's deck.

    Built with scripts/book.py into artifacts/browser-book/ (warnings are errors there as
    in ``make book``), or reused from there while newer than everything it is made from.
    The chapter executes once, with SCORELAB_FAST=1: this test checks what renders, while
    the notebook run of ``make test`` checks the numbers with the full settings.
    """
    out = ARTIFACTS / "browser-book"
    html = out / "_build" / "html"
    stem = Path(chapter.path).stem
    page = html / f"{chapter.docname}.html"
    deck = out / "_slides" / f"{stem}.slides.html"
    sources = [REPO / chapter.path, REPO / "scripts" / "book.py"]
    sources += [p for d in ("scorelab", "book") for p in (REPO / d).rglob("*")
                if "_build" not in p.parts and "_slides" not in p.parts]
    if not (_fresh(page, sources) and _fresh(deck, sources)):
        if out.exists():
            shutil.rmtree(out)
        t0 = time.perf_counter()
        bookbuild.build_book(out, entries=[chapter], execute="force", quiet=True, fast=True)
        bookbuild.build_slides(out / "_slides", entries=[chapter], fast=True,
                               executed_dirs=[out / "_build" / "jupyter_execute"], log=lambda *a: None)
        print(f"built the book page and the deck of {chapter.path} in {time.perf_counter() - t0:.0f} s")
    assert page.is_file() and deck.is_file()
    return {"html": html, "page": page.relative_to(html).as_posix(), "slides": out / "_slides",
            "deck": deck.name}


@pytest.fixture(scope="module")
def static_server():
    """Serve folders over http://127.0.0.1 (like a reader's local web server)."""
    servers = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    def serve(folder: Path) -> str:
        handler = functools.partial(Quiet, directory=str(folder))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------- JupyterLab

_PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
                      .map(e => e.textContent.trim())"""
_ERRORS_JS = """() => Array.from(document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    .map(e => e.textContent).filter(t => /Traceback|Error/.test(t)).map(t => t.slice(-1500))"""
# What a cell's figure looks like: image sources, plotly SVG paths, canvas sizes.
_FIGURE_SIGNATURE_JS = """cell => {
    const parts = [];
    cell.querySelectorAll('.jp-OutputArea img').forEach(e => parts.push(e.getAttribute('src')));
    cell.querySelectorAll('.jp-OutputArea svg').forEach(e => parts.push(e.innerHTML));
    return parts.join('|');
}"""


def _run_all_and_wait(page, lab: LabServer, nb_path: str) -> list[str]:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    settled = 0
    while time.monotonic() < deadline:
        prompts = page.evaluate(_PROMPTS_JS)
        if prompts and all(p[1:-2].isdigit() for p in prompts):
            return prompts
        busy = any("*" in p for p in prompts) or lab.kernel_state(nb_path) != "idle"
        settled = 0 if busy else settled + 1
        if settled >= 10:   # idle for 10 s with cells left unrun: execution stopped on an error
            return prompts
        page.wait_for_timeout(1000)
    return page.evaluate(_PROMPTS_JS)


def test_chapter_runs_in_jupyterlab_with_live_widgets_and_plotly(lab, browser, chapter):
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    watch = PageWatch(page)
    try:
        page.goto(lab.url(f"lab/tree/{chapter.path}"), timeout=120_000)
        page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=120_000)
        deadline = time.monotonic() + 120
        while lab.kernel_state(chapter.path) != "idle":
            if time.monotonic() > deadline:
                _shot(page, "lab-kernel-not-idle.png")
                pytest.fail(f"the notebook's kernel did not become idle in 120 s; sessions: "
                            f"{lab.api('api/sessions')}\nserver log:\n{lab.log_tail(2000)}")
            page.wait_for_timeout(500)

        t0 = time.perf_counter()
        prompts = _run_all_and_wait(page, lab, chapter.path)
        print(f"JupyterLab ran {chapter.path} in {time.perf_counter() - t0:.0f} s")
        _shot(page, "lab-after-run-all.png")
        unrun = [i for i, p in enumerate(prompts) if not p[1:-2].isdigit()]
        assert prompts and not unrun, (
            f"code cells {unrun} of {len(prompts)} did not run; errors: {page.evaluate(_ERRORS_JS)}"
            f"\nserver log:\n{lab.log_tail(2000)}")

        # ipywidgets controls rendered by the widget manager.
        assert page.locator(".jp-OutputArea .jupyter-widgets").count() > 0, "no ipywidgets rendered"
        sliders = page.locator(".jp-OutputArea .widget-slider")
        assert sliders.count() > 0, "no ipywidgets slider rendered"
        # plotly figures rendered by the plotly mime renderer (an SVG inside .js-plotly-plot).
        plots = page.locator(".jp-OutputArea .js-plotly-plot")
        assert plots.count() > 0, "no plotly figure rendered"
        plots.first.locator(".main-svg").first.wait_for(timeout=60_000)
        plots.first.scroll_into_view_if_needed()
        _shot(plots.first, "lab-plotly-figure.png")

        # A slider moves the figure: arrow keys on the slider handle redraw its cell's output.
        cells = page.locator(".jp-CodeCell", has=page.locator(".jp-OutputArea .widget-slider"))
        moved = None
        for i in range(min(cells.count(), 4)):
            cell = cells.nth(i)
            cell.scroll_into_view_if_needed()   # widget outputs may draw only once in view
            before, end = "", time.monotonic() + 30
            while not before and time.monotonic() < end:
                page.wait_for_timeout(500)
                before = cell.evaluate(_FIGURE_SIGNATURE_JS)
            if not before:
                continue
            _shot(cell, "lab-slider-before.png")
            handle = cell.locator(".widget-slider .noUi-handle").first
            readout = cell.locator(".widget-slider .widget-readout").first
            value_before = readout.inner_text()
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            end = time.monotonic() + SLIDER_TIMEOUT_S
            while time.monotonic() < end:
                after = cell.evaluate(_FIGURE_SIGNATURE_JS)
                if after and after != before:
                    moved = (i, value_before, readout.inner_text())
                    break
                page.wait_for_timeout(500)
            if moved:
                cell.scroll_into_view_if_needed()
                _shot(cell, "lab-slider-after.png")
                break
        if not moved:
            _shot(page, "lab-slider-failure.png")
            detail = cells.evaluate_all("""cs => cs.map(c => ({
                imgs: c.querySelectorAll('img').length, svgs: c.querySelectorAll('svg').length,
                areas: c.querySelectorAll('.jp-OutputArea').length,
                readouts: Array.from(c.querySelectorAll('.widget-readout')).map(r => r.textContent)}))""")
        assert moved, (f"moving a slider with the arrow keys did not change any figure: {detail}"
                       f"\nbrowser console: {watch.console[-15:]}")
        assert moved[1] != moved[2], f"the slider readout did not change: {moved}"
        assert not watch.errors, f"uncaught errors on the JupyterLab page: {watch.errors}"
    finally:
        page.close()


def test_chapter_presents_as_a_rise_slideshow(lab, browser, chapter):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(lab.url(f"rise/{chapter.path}"), timeout=120_000)
        sections = page.locator(".reveal .slides section")
        sections.first.wait_for(state="attached", timeout=120_000)
        page.wait_for_timeout(2000)
        assert sections.count() > 1, "RISE rendered fewer than two slides"
        _shot(page, "rise-first-slide.png")
    finally:
        page.close()


# --------------------------------------------------------------------------- book and deck


def test_book_page_renders_plotly_offline(built, browser, static_server):
    base = static_server(built["html"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page)
    try:
        page.goto(f"{base}/intro.html")
        assert "scorelab" in page.title()
        page.goto(f"{base}/{built['page']}")
        graphs = page.locator(".plotly-graph-div")
        assert graphs.count() > 0, f"no plotly figure on {built['page']}"
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".every(g => g.querySelector('.main-svg'))", timeout=60_000)
        images = page.locator(".cell_output img")
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.cell_output img'))"
            ".every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
        if page.locator(".math").count():   # MathJax (local copy) typeset the formulas
            page.locator("mjx-container").first.wait_for(state="attached", timeout=60_000)
        graphs.first.scroll_into_view_if_needed()
        _shot(graphs.first, "book-plotly-figure.png")
        page.screenshot(path=str(SCREENSHOTS / "book-page.png"), full_page=True)
        print(f"book page: {graphs.count()} plotly figures, {images.count()} images")
        assert not watch.external, f"the book page requested outside hosts: {watch.external}"
        assert not watch.errors, f"uncaught errors on the book page: {watch.errors}"
    finally:
        page.close()


def test_slide_deck_renders_figures_offline(built, browser, static_server):
    base = static_server(built["slides"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    watch = PageWatch(page)
    try:
        page.goto(f"{base}/{built['deck']}")
        page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
        n_slides = page.evaluate("Reveal.getTotalSlides()")
        assert n_slides > 1
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".every(g => g.querySelector('.main-svg'))", timeout=60_000)
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.reveal img'))"
            ".every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
        n_plotly = page.locator(".plotly-graph-div:has(.main-svg)").count()
        n_images = page.locator(".reveal .jp-OutputArea-output img").count()
        assert n_plotly + n_images > 0, "the deck has no rendered figure"
        # Show the first slide with a figure, as the audience would see it.
        idx = page.evaluate("""() => {
            const s = document.querySelector('.reveal .jp-OutputArea-output img, .reveal .plotly-graph-div')
                          .closest('section');
            return Reveal.getIndices(s);
        }""")
        page.evaluate(f"Reveal.slide({idx['h']}, {idx.get('v') or 0})")
        page.wait_for_timeout(1000)
        _shot(page, "deck-figure-slide.png")
        print(f"deck: {n_slides} slides, {n_plotly} plotly figures, {n_images} images")
        assert not watch.external, f"the deck requested outside hosts: {watch.external}"
        assert not watch.errors, f"uncaught errors in the deck: {watch.errors}"
    finally:
        page.close()
