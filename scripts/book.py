"""Build the scorelab book and its slide decks from the notebooks present.

    python scripts/book.py toc                 # print the table of contents it would use
    python scripts/book.py book                # make book:   book/_build/html/index.html
    python scripts/book.py slides              # make slides: book/_slides/<chapter>.slides.html

The book is a Jupyter Book 1 site (Sphinx + myst-nb). ``book/`` holds its configuration
(``_config.yml``), landing page (``intro.md``), a small Sphinx extension (``_ext/``) and the
pinned JavaScript it serves locally (``vendor/``); the chapters stay where the authors
write them. ``book`` therefore *stages* a source folder: links to the book files and to
``chapters/``, ``exercises/`` and ``solutions/``, plus a ``_toc.yml`` written from the
notebooks found there, ordered by their section numbers (4.1, 4.2, ..., 4.10). Each
exercise sits under its chapter; the solutions form a part of their own at the end.
A new chapter, exercise or solution therefore appears in the book without any edit here.

The notebooks are executed during the build with ``PLOTLY_RENDERER=plotly_mimetype+notebook``
(so plotly figures carry HTML the static page can render) and the full default settings
(``SCORELAB_FAST`` passes through if set). Warnings are errors (``-W -n --keep-going``).
``BOOK_EXECUTE=cache`` reuses unchanged notebooks' outputs from the jupyter-cache in
``_build/.jupyter_cache``; the default ``force`` re-executes every notebook.

``slides`` exports each chapter as a reveal.js deck with nbconvert, from the executed
notebook the book build left in ``_build/jupyter_execute`` when that one is newer than both
the notebook and the ``scorelab`` package, else by executing the notebook itself. Each
deck loads reveal.js, RequireJS, MathJax, plotly.js and the widget manager from
``_vendor/`` beside it, so the folder opens offline (and can be copied elsewhere whole).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
VENDOR = BOOK / "vendor"
DECK_TEMPLATES = BOOK / "deck_template"
PLOTLY_RENDERER = "plotly_mimetype+notebook"
# Folders of notebooks, in the order their entries are listed for one section.
KINDS = ("chapters", "exercises", "solutions")
# Book files linked into the staged source folder.
BOOK_FILES = ("_config.yml", "intro.md", "_ext", "_static")
EXECUTE_MODES = ("force", "cache", "off")

sys.path.insert(0, str(BOOK / "_ext"))
from scorelab_book import MATHJAX2_SHIM_JS, clean_output_html, plotly_js_path  # noqa: E402

from scorelab._nbexec import execute_notebook as _execute  # noqa: E402


@dataclass(frozen=True)
class Entry:
    """One notebook of the book: ``kind`` is a folder of KINDS, ``path`` relative to the repo."""

    kind: str
    path: str
    section: tuple

    @property
    def docname(self) -> str:
        return self.path.rsplit(".", 1)[0]


_SECTION = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?:\.(\d+))?")


def section_of(text: str):
    """First section number such as ``4.1`` or ``4.3.2`` in ``text`` as a tuple of ints, or None."""
    m = _SECTION.search(text)
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def _first_heading(nb_path: Path) -> str:
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for line in source.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ""


def discover(repo: Path = REPO, only=None) -> list[Entry]:
    """Every notebook of ``chapters/``, ``exercises/`` and ``solutions/`` in reading order.

    The section number comes from the file name (``4.2-score-matching.ipynb``,
    ``ex4.2-compare.ipynb``) or else from the notebook's first heading; notebooks without
    one come last, by name. ``only``: optional fnmatch patterns on the repo-relative path.
    """
    entries = []
    for kind in KINDS:
        folder = repo / kind
        if not folder.is_dir():
            continue
        for nb in folder.glob("*.ipynb"):
            rel = nb.relative_to(repo).as_posix()
            if only and not any(fnmatch.fnmatch(rel, pat) for pat in only):
                continue
            section = section_of(nb.stem) or section_of(_first_heading(nb))
            entries.append(Entry(kind, rel, section or ()))
    return sorted(entries, key=_sort_key)


def _sort_key(entry: Entry):
    return (not entry.section, entry.section, KINDS.index(entry.kind), entry.path)


def make_toc(entries: list[Entry]) -> dict:
    """The ``_toc.yml`` (jb-book format) for ``entries``, as a dict.

    Part 1 lists the chapters in section order, each with the exercises of its section
    nested under it (an exercise whose section has no chapter stands on its own).
    Part 2 lists the solutions.
    """
    main: list[dict] = []
    by_section: dict[tuple, dict] = {}
    # Entries come sorted by (section, kind), so a chapter precedes its section's exercises.
    for e in sorted(entries, key=_sort_key):
        if e.kind == "chapters":
            item = {"file": e.docname}
            main.append(item)
            if e.section:
                by_section.setdefault(e.section[:2], item)
        elif e.kind == "exercises":
            parent = by_section.get(e.section[:2]) if e.section else None
            if parent is None:
                main.append({"file": e.docname})
            else:
                parent.setdefault("sections", []).append({"file": e.docname})
    parts = []
    if main:
        parts.append({"caption": "第 4 章 基于分数的生成模型：正文与习题", "chapters": main})
    solutions = [{"file": e.docname} for e in entries if e.kind == "solutions"]
    if solutions:
        parts.append({"caption": "习题解答", "chapters": solutions})
    toc = {"format": "jb-book", "root": "intro"}
    if parts:
        toc["parts"] = parts
    return toc


def toc_yaml(entries: list[Entry]) -> str:
    import yaml

    header = "# Written by scripts/book.py from the notebooks present; do not edit.\n"
    return header + yaml.safe_dump(make_toc(entries), allow_unicode=True, sort_keys=False)


def kernel_env(fast: bool = False) -> dict:
    """Environment for the kernels that execute the notebooks of the book and the decks.

    Plotly figures carry HTML (``PLOTLY_RENDERER``); ``MPLBACKEND`` is dropped so that
    matplotlib uses the notebook's inline backend even when the caller set one (a test
    session sets ``Agg``, which would leave every matplotlib figure out). ``fast`` sets
    ``SCORELAB_FAST=1`` (shrunk step counts); otherwise the caller's setting passes through.
    """
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(PLOTLY_RENDERER=PLOTLY_RENDERER, PYDEVD_DISABLE_FILE_VALIDATION="1")
    if fast:
        env["SCORELAB_FAST"] = "1"
    return env


def stage(entries: list[Entry], stage_dir: Path, repo: Path = REPO) -> Path:
    """Create the book's source folder ``stage_dir``: links to book files, chapters, a _toc.yml."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    for name in BOOK_FILES:
        if (BOOK / name).exists():
            (stage_dir / name).symlink_to(BOOK / name)
    for kind in KINDS:
        if (repo / kind).is_dir():
            (stage_dir / kind).symlink_to(repo / kind, target_is_directory=True)
    (stage_dir / "_toc.yml").write_text(toc_yaml(entries), encoding="utf-8")
    return stage_dir


def build_book(out: Path, *, entries: list[Entry], execute: str = "force", repo: Path = REPO,
               quiet: bool = False, fast: bool = False) -> Path:
    """Build the HTML book into ``out/_build/html`` and return that folder.

    ``execute`` is myst-nb's execution mode (force, cache or off); ``fast`` executes the
    notebooks with ``SCORELAB_FAST=1`` (the browser test does, to save time). Raises
    ``subprocess.CalledProcessError`` when the build fails or warns.
    """
    if execute not in EXECUTE_MODES:
        raise ValueError(f"execute must be one of {EXECUTE_MODES}, got {execute!r}")
    out = Path(out).resolve()
    src = stage(entries, out / "_build" / "_source", repo)
    env = kernel_env(fast)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--path-output", str(out),
           "-W", "-n", "--keep-going", "--all",
           "--config", str(src / "_config.yml"), "--toc", str(src / "_toc.yml")]
    if quiet:
        cmd.append("-q")
    # jupyter-book has no CLI switch for the execution mode; a second config file would
    # replace the first, so pass it through an environment variable read by the extension.
    env["SCORELAB_BOOK_EXECUTE"] = execute
    subprocess.run(cmd, check=True, env=env, cwd=repo)
    html = out / "_build" / "html"
    if not (html / "index.html").is_file():
        raise RuntimeError(f"the build finished but {html / 'index.html'} is missing")
    return html


# --------------------------------------------------------------------------- slides


def _newest_mtime(paths) -> float:
    return max((p.stat().st_mtime for p in paths), default=0.0)


def executed_notebook(entry: Entry, executed_dirs, repo: Path = REPO):
    """Path of an executed copy of ``entry`` (with outputs) newer than it and than scorelab, or None."""
    source = repo / entry.path
    newest = max(source.stat().st_mtime, _newest_mtime((repo / "scorelab").rglob("*.py")))
    for d in executed_dirs:
        candidate = Path(d) / entry.path
        if candidate.is_file() and candidate.stat().st_mtime >= newest and _has_outputs(candidate):
            return candidate
    return None


def _has_outputs(nb_path: Path) -> bool:
    # A book built with BOOK_EXECUTE=cache leaves copies without outputs in jupyter_execute.
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(cell.get("outputs") for cell in nb.get("cells", []))


def execute_notebook(path: Path, timeout: int = 300, fast: bool = False):
    """Execute the notebook at ``path`` in its folder (plotly HTML output on) and return it.

    ``timeout`` is per cell, as in the book's ``_config.yml``. A chapter's cells take seconds;
    the limit also bounds the stall where a finished cell's reply is only picked up when
    the wait for it times out (see ``scorelab._nbexec.poll_shell_in_slices``).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return _execute(nb, cwd=path.parent, timeout=timeout, env=kernel_env(fast))


def clean_outputs(nb):
    """Apply :func:`clean_output_html` to every ``text/html`` output of ``nb`` (in place)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                html = data["text/html"]
                html = "".join(html) if isinstance(html, list) else html
                data["text/html"] = clean_output_html(html)
    return nb


def copy_vendor(dest: Path) -> None:
    """Copy reveal.js, RequireJS, MathJax, the widget manager and plotly.js into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("reveal.js", "requirejs", "mathjax", "@jupyter-widgets"):
        shutil.copytree(VENDOR / part, dest / part, dirs_exist_ok=True)
    shutil.copy2(plotly_js_path(), dest / "plotly.min.js")


def export_deck(nb, title: str, out_file: Path, vendor: str = "_vendor") -> Path:
    """Write ``nb`` (executed) as an offline reveal.js deck ``out_file``; ``vendor`` is relative."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    c = Config()
    c.SlidesExporter.reveal_url_prefix = f"{vendor}/reveal.js"
    c.SlidesExporter.reveal_theme = "white"
    c.SlidesExporter.reveal_transition = "none"
    c.SlidesExporter.reveal_scroll = True
    c.SlidesExporter.reveal_width = "1280"
    c.SlidesExporter.reveal_height = "800"
    c.SlidesExporter.require_js_url = f"{vendor}/requirejs/require.js"
    c.SlidesExporter.mathjax_url = f"{vendor}/mathjax/es5/tex-chtml-full.js"
    c.SlidesExporter.widget_renderer_url = f"{vendor}/@jupyter-widgets/html-manager/dist/embed-amd.js"
    c.SlidesExporter.exclude_input_prompt = True
    c.SlidesExporter.exclude_output_prompt = True
    exporter = SlidesExporter(config=c, extra_template_basedirs=[str(DECK_TEMPLATES)],
                              template_name="scorelab_reveal")
    nb.metadata["title"] = title
    resources = {"scorelab_vendor": vendor, "scorelab_mathjax2_shim": MATHJAX2_SHIM_JS}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(body, encoding="utf-8")
    return out_file


def build_slides(out: Path, *, entries: list[Entry], executed_dirs=(), repo: Path = REPO,
                 log=print, fast: bool = False) -> list[Path]:
    """Write one deck per chapter of ``entries`` into ``out`` (plus ``out/_vendor``).

    A chapter's executed notebook is reused from ``executed_dirs`` when fresh (see
    :func:`executed_notebook`), else the chapter is executed (``fast``: SCORELAB_FAST=1).
    """
    out = Path(out).resolve()
    copy_vendor(out / "_vendor")
    decks = []
    for entry in entries:
        if entry.kind != "chapters":
            continue
        source = repo / entry.path
        t0 = time.perf_counter()
        executed = executed_notebook(entry, executed_dirs, repo)
        if executed is not None:
            import nbformat

            nb = nbformat.read(executed, as_version=4)
            how = f"reused {executed.relative_to(executed.parents[len(Path(entry.path).parts)])}"
        else:
            nb = execute_notebook(source, fast=fast)
            how = "executed"
        clean_outputs(nb)
        title = _first_heading(source) or Path(entry.path).stem
        deck = export_deck(nb, title, out / f"{Path(entry.path).stem}.slides.html")
        log(f"  {deck.relative_to(out.parent) if out.parent in deck.parents else deck}"
            f"  ({how}, {time.perf_counter() - t0:.1f} s)")
        decks.append(deck)
    return decks


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("toc", "book", "slides"):
        p = sub.add_parser(name)
        p.add_argument("--only", action="append", metavar="GLOB",
                       help="only notebooks whose repo-relative path matches (repeatable), "
                            "e.g. 'chapters/4.1-*'")
    sub.choices["book"].add_argument("--out", type=Path, default=BOOK,
                                     help="output root; the site goes to OUT/_build/html")
    sub.choices["book"].add_argument("--execute", choices=EXECUTE_MODES,
                                     default=os.environ.get("BOOK_EXECUTE", "force"))
    sub.choices["slides"].add_argument("--out", type=Path, default=BOOK / "_slides")
    sub.choices["slides"].add_argument("--executed", type=Path, action="append",
                                       help="folder of executed notebooks to reuse "
                                            "(default: book/_build/jupyter_execute)")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    repo = args.repo.resolve()
    entries = discover(repo, args.only)
    if args.command == "toc":
        print(toc_yaml(entries), end="")
        return 0
    if args.command == "book":
        t0 = time.perf_counter()
        try:
            html = build_book(args.out, entries=entries, execute=args.execute, repo=repo)
        except subprocess.CalledProcessError as exc:
            print(f"book: the build failed (exit {exc.returncode}); warnings count as errors, "
                  "see the messages above", file=sys.stderr)
            return exc.returncode or 1
        print(f"book: {html / 'index.html'} ({len(entries)} notebooks, "
              f"{time.perf_counter() - t0:.0f} s)")
        return 0
    executed = args.executed or [BOOK / "_build" / "jupyter_execute"]
    t0 = time.perf_counter()
    print(f"slides -> {args.out}")
    decks = build_slides(args.out, entries=entries, executed_dirs=executed, repo=repo)
    print(f"slides: {len(decks)} decks in {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
