"""Sphinx extension of the scorelab book: make every page work offline.

Jupyter Book 1 (Sphinx + myst-nb) renders the executed chapters. Left alone, a page
would fetch MathJax, RequireJS, the ipywidgets manager and (through plotly's notebook
renderer) a second MathJax from CDNs. This extension

* copies the pinned JavaScript in ``book/vendor/`` (MathJax 3, RequireJS, the
  ``@jupyter-widgets/html-manager`` bundle) and ``plotly.min.js`` of the installed plotly
  package into ``_static/vendor/`` of the built site (``_config.yml`` points MathJax and
  myst-nb's ``nb_ipywidgets_js`` there);
* strips what notebook outputs would load from elsewhere: the 4.8 MB inline copy of
  plotly.js that plotly's ``notebook`` renderer writes once per notebook, the
  ``<script src=".../mathjax/...">`` CDN tag before every plotly figure, and the CDN Font
  Awesome stylesheet of matplotlib's animation player (see :func:`clean_output_html`);
* adds ``_static/vendor/plotly.min.js`` to the pages that hold a plotly figure, loaded
  before RequireJS so that plotly sets ``window.Plotly`` instead of registering an
  anonymous AMD module;
* on pages with ipywidgets, points RequireJS at ``_static/vendor/`` (the widget manager
  finds its fonts there) and forwards the MathJax 2 call ipywidgets 8 makes to MathJax 3;
* keeps myst-nb quiet about plotly's JSON output and the exercise checks' JSON record (their
  HTML twins are what renders), and
  drops the second copy of sphinx-thebe's inline script, which throws in the browser.

The same clean-up serves the slide decks (``scripts/book.py slides``), which import
:func:`clean_output_html` from here.

Plotly figures reach the book only if the kernels that execute the notebooks run with
``PLOTLY_RENDERER=plotly_mimetype+notebook`` (``scripts/book.py`` sets it): then each
figure output carries ``text/html`` beside plotly's JSON, and myst-nb renders the HTML.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from docutils import nodes

from scorelab._nbexec import poll_shell_in_slices, sliced_get_msg  # noqa: F401  (re-exported)

BOOK_DIR = Path(__file__).resolve().parent.parent
VENDOR_DIR = BOOK_DIR / "vendor"
# What the book pages need from book/vendor (the reveal.js copy is for the decks only).
BOOK_VENDOR_PARTS = ("mathjax", "requirejs", "@jupyter-widgets")
PLOTLY_JS = "vendor/plotly.min.js"

# <script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/3.2.2/es5/tex-svg.min.js"></script>
_MATHJAX_CDN_TAG = re.compile(
    r"<script[^>]*\bsrc=[\"'][^\"']*mathjax[^\"']*[\"'][^>]*>\s*</script>", re.IGNORECASE
)
# <link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/...">
_FONT_AWESOME_LINK = re.compile(
    r"<link[^>]*\bhref=[\"']https?://[^\"']*font-awesome[^\"']*[\"'][^>]*>", re.IGNORECASE
)
# Button icons of matplotlib's JavaScript animation player, without Font Awesome.
ANIMATION_ICONS_CSS = """<style>
.anim-buttons i.fa { font-style: normal; font-family: sans-serif; }
.anim-buttons i.fa-minus:before { content: "\\2212"; }
.anim-buttons i.fa-plus:before { content: "+"; }
.anim-buttons i.fa-fast-backward:before { content: "\\21E4"; }
.anim-buttons i.fa-step-backward:before { content: "\\25C1"; }
.anim-buttons i.fa-play:before { content: "\\25B6"; }
.anim-buttons i.fa-play.fa-flip-horizontal:before { content: "\\25C0"; }
.anim-buttons i.fa-pause:before { content: "\\275A\\275A"; }
.anim-buttons i.fa-step-forward:before { content: "\\25B7"; }
.anim-buttons i.fa-fast-forward:before { content: "\\21E5"; }
</style>"""
# The header plotly.js starts with: "/**\n* plotly.js v4.1.1".
_PLOTLY_BUNDLE_HEAD = re.compile(r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v\d")


def plotly_js_path() -> Path:
    """Path of ``plotly.min.js`` inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package at {path}")
    return path


def clean_output_html(html: str) -> str:
    """Return ``html`` (one ``text/html`` notebook output) fit for an offline static page.

    * plotly's inline plotly.js bundle is dropped (the page loads ``plotly.min.js`` from a
      local file instead; the small configuration script before it stays);
    * CDN MathJax ``<script>`` tags before plotly figures are dropped (the page has its
      own local MathJax);
    * the Font Awesome 4 stylesheet that matplotlib's ``to_jshtml`` animations link from
      a CDN becomes a few inline rules that draw the player's button icons with Unicode
      characters.

    Anything else is returned unchanged.
    """
    head = _PLOTLY_BUNDLE_HEAD.search(html[:4000])
    if head:
        end = html.rfind("</script>")
        if end > head.start():
            return html[: head.start()] + html[end + len("</script>"):]
    if "plotly" in html and "mathjax" in html.lower():
        html = _MATHJAX_CDN_TAG.sub("", html)
    if "font-awesome" in html:
        html = _FONT_AWESOME_LINK.sub(lambda m: ANIMATION_ICONS_CSS, html)
    return html


def has_plotly_figure(html: str) -> bool:
    """True when ``html`` contains a plotly figure that needs ``window.Plotly``."""
    return "plotly-graph-div" in html or "Plotly.newPlot" in html


# Outputs whose text/html twin is what the page shows: plotly's figure JSON, and the JSON
# record of an exercise check (read back by scorelab.grade, not meant for readers).
SILENT_MIME_TYPES = ("application/vnd.plotly.v1+json", "application/vnd.scorelab.check+json")


class SilentMimePlugin:
    """myst-nb mime plugin: render one JSON mime type as nothing (its ``text/html`` twin shows).

    myst-nb renders every mime type of an output while parsing and picks one per builder
    later; without this plugin it warns ``skipping unknown output mime type: ...`` for every
    such output, which ``-W`` turns into an error.
    """

    def __init__(self, mime_type: str):
        self.mime_type = mime_type
        self.mime_priority_overrides = [("*", mime_type, None)]

    def handle_mime(self, renderer, data, inline):
        return [] if data.mime_type == self.mime_type else None


def _register_mime_plugin():
    # myst-nb loads mime plugins from the "myst_nb.mime_renderers" entry point group into
    # a cached list; a local extension has no entry point, so it joins that list directly.
    from myst_nb.core.render import load_mime_renders

    plugins = load_mime_renders()
    present = {p.mime_type for p in plugins if isinstance(p, SilentMimePlugin)}
    plugins.extend(SilentMimePlugin(m) for m in SILENT_MIME_TYPES if m not in present)


def _clean_doctree(app, doctree, docname):
    for node in list(doctree.findall(nodes.raw)):
        if "html" not in node.get("format", "").split():
            continue
        text = node.astext()
        cleaned = clean_output_html(text)
        if cleaned != text:
            new = nodes.raw(cleaned, cleaned, format=node["format"], classes=node.get("classes", []))
            node.replace_self(new)


# Must run before plotly.js loads: plotly then leaves the page's MathJax 3 alone (the
# same line plotly's notebook renderer puts before its inline copy of plotly.js).
PLOTLY_CONFIG_JS = "window.PlotlyConfig = {MathJaxConfig: 'local'};"
# ipywidgets 8 typesets widget labels with the MathJax 2 call MathJax.Hub.Queue, which
# throws under MathJax 3; forward it to MathJax 3 (shared with the slide decks).
MATHJAX2_SHIM_JS = """\
(function () {
  var hub = {Queue: function (args) {
    var M = window.MathJax, el = args && args[2];
    if (M && M.typesetPromise) { M.typesetPromise(el ? [el] : undefined).catch(function () {}); }
  }};
  function install() { if (window.MathJax && !window.MathJax.Hub) { window.MathJax.Hub = hub; } }
  install();
  document.addEventListener('DOMContentLoaded', install);
  window.addEventListener('load', install);
})();"""
# Pages with ipywidgets: RequireJS resolves module names under _static/vendor/, where the
# widget manager finds its icon fonts (vendor/@jupyter-widgets/html-manager/dist/).
WIDGETS_SETUP_JS = (
    "var require = {baseUrl: (document.documentElement.dataset.content_root || '') "
    "+ '_static/vendor/'};\n" + MATHJAX2_SHIM_JS
)


def _add_page_js(app, pagename, templatename, context, doctree):
    body = context.get("body", "")
    if has_plotly_figure(body):
        # Before RequireJS (myst-nb adds it at the default priority 500).
        app.add_js_file(None, body=PLOTLY_CONFIG_JS, priority=199)
        app.add_js_file(PLOTLY_JS, priority=200)
    if "application/vnd.jupyter.widget-view+json" in body:
        app.add_js_file(None, body=WIDGETS_SETUP_JS, priority=201)


def _dedupe_inline_scripts(app, pagename, templatename, context, doctree):
    # sphinx-thebe's inline settings script (const THEBE_JS_URL = ...) reaches every page
    # twice under Jupyter Book 1, and the second copy throws "Identifier has already been
    # declared". Keep the first copy of each identical inline script.
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for js in scripts:
        body = getattr(js, "attributes", {}).get("body") if not getattr(js, "filename", None) else None
        if body:
            if body in seen:
                continue
            seen.add(body)
        kept.append(js)
    scripts[:] = kept


def _copy_vendor(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static" / "vendor"
    static.mkdir(parents=True, exist_ok=True)
    for part in BOOK_VENDOR_PARTS:
        shutil.copytree(VENDOR_DIR / part, static / part, dirs_exist_ok=True)
    shutil.copy2(plotly_js_path(), static / "plotly.min.js")


def _execution_mode(app, config):
    # scripts/book.py passes BOOK_EXECUTE (force, cache or off) through this variable,
    # since jupyter-book 1 has no command-line switch for it.
    mode = os.environ.get("SCORELAB_BOOK_EXECUTE")
    if mode:
        if mode not in ("force", "cache", "auto", "off"):
            raise ValueError(f"SCORELAB_BOOK_EXECUTE must be force, cache, auto or off, got {mode!r}")
        config.nb_execution_mode = mode


def setup(app):
    _register_mime_plugin()
    poll_shell_in_slices()  # myst-nb executes the notebooks in this process, through nbclient
    app.connect("config-inited", _execution_mode)
    app.connect("doctree-resolved", _clean_doctree)
    app.connect("html-page-context", _add_page_js)
    app.connect("html-page-context", _dedupe_inline_scripts, priority=900)
    app.connect("build-finished", _copy_vendor)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
