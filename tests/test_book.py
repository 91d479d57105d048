"""The book and slide pipeline (scripts/book.py, book/), checked without a browser.

The table of contents is read back with sphinx-external-toc's own parser (what Jupyter
Book uses); the HTML clean-up is fed real outputs of plotly's notebook renderer and of
matplotlib's animation writer; a deck is exported and every file it loads must be a local
file that exists. The browser test (tests/test_browser.py) then checks what renders.
"""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from unittest import mock

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KINDS = ("chapters", "exercises", "solutions")


from book_script import book  # noqa: E402


def _write_nb(path: Path, heading: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(heading)])
    nbformat.write(nb, path)


def _toc_files(toc: dict, tmp_path: Path) -> list[str]:
    """Docnames in reading order, parsed by sphinx-external-toc (Jupyter Book's parser)."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    path = tmp_path / "_toc.yml"
    path.write_text(yaml.safe_dump(toc, allow_unicode=True), encoding="utf-8")
    site_map = parse_toc_yaml(path)
    order = []

    def walk(docname):
        order.append(docname)
        for subtree in site_map[docname].subtrees:
            for child in subtree.files():
                walk(child)

    walk(site_map.root.docname)
    return order


# --------------------------------------------------------------------------- table of contents


def test_section_numbers_come_from_names_or_headings():
    assert book.section_of("4.10-large") == (4, 10)
    assert book.section_of("ex4.2-compare") == (4, 2)
    assert book.section_of("习题 4.3.2 自适应") == (4, 3, 2)
    assert book.section_of("design-project") is None


def test_toc_orders_sections_numerically_and_nests_exercises(tmp_path):
    repo = tmp_path / "repo"
    _write_nb(repo / "chapters/4.10-late.ipynb", "# 4.10 Late")
    _write_nb(repo / "chapters/4.2-second.ipynb", "# 4.2 Second")
    _write_nb(repo / "chapters/4.1-first.ipynb", "# 4.1 First")
    _write_nb(repo / "chapters/notes.ipynb", "# Notes without a number")
    _write_nb(repo / "exercises/ex4.2-compare.ipynb", "# Exercise 4.2")
    _write_nb(repo / "exercises/design.ipynb", "# 习题 4.6 design project")  # number in the heading
    _write_nb(repo / "solutions/4.2-compare.ipynb", "# Solution 4.2")
    _write_nb(repo / "solutions/4.1-sol.ipynb", "# Solution 4.1")
    (repo / "chapters/4.1-first.md").write_text("# the jupytext twin is not an entry\n")

    entries = book.discover(repo)
    assert [e.path for e in entries if e.kind == "chapters"] == [
        "chapters/4.1-first.ipynb", "chapters/4.2-second.ipynb", "chapters/4.10-late.ipynb",
        "chapters/notes.ipynb"]
    toc = book.make_toc(entries)
    assert _toc_files(toc, tmp_path) == [
        "intro",
        "chapters/4.1-first",
        "chapters/4.2-second", "exercises/ex4.2-compare",   # the exercise nests under its chapter
        "exercises/design",                                  # 4.6 has no chapter: on its own
        "chapters/4.10-late",
        "chapters/notes",
        "solutions/4.1-sol", "solutions/4.2-compare",        # solutions: a part of their own
    ]
    assert [p["caption"] for p in toc["parts"]][1] == "习题解答"
    only = book.discover(repo, only=["chapters/4.1-*"])
    assert [e.path for e in only] == ["chapters/4.1-first.ipynb"]


def test_repository_toc_lists_every_notebook_once(tmp_path):
    on_disk = {p.relative_to(REPO).with_suffix("").as_posix()
               for kind in KINDS for p in (REPO / kind).glob("*.ipynb")}
    listed = _toc_files(book.make_toc(book.discover(REPO)), tmp_path)
    assert listed[0] == "intro"
    assert len(listed) == len(set(listed))
    assert set(listed[1:]) == on_disk


def test_stage_links_the_book_and_the_notebooks(tmp_path):
    entries = book.discover(REPO)
    src = book.stage(entries, tmp_path / "src")
    for name in ("_config.yml", "intro.md", "_ext"):
        assert (src / name).resolve() == (REPO / "book" / name).resolve()
    for kind in KINDS:
        if (REPO / kind).is_dir():
            assert (src / kind).resolve() == (REPO / kind).resolve()
        else:  # nothing to link (git keeps no empty folder)
            assert not (src / kind).exists()
    assert yaml.safe_load((src / "_toc.yml").read_text(encoding="utf-8")) == book.make_toc(entries)


# --------------------------------------------------------------------------- offline HTML


def _figure():
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1]))


def test_sliced_get_msg_polls_in_short_slices_within_the_same_timeout():
    """The guard against a missed wake-up (scorelab_book.poll_shell_in_slices) keeps the
    caller's timeout and Empty semantics while never polling longer than the slice."""
    import asyncio
    from queue import Empty

    import scorelab_book

    calls = []

    async def original(self, timeout=None):  # a channel whose message arrives on the 4th poll
        calls.append(timeout)
        if len(calls) < 4:
            raise Empty
        return {"msg_id": "reply"}

    get_msg = scorelab_book.sliced_get_msg(original, slice_s=0.01)
    assert asyncio.run(get_msg(None, timeout=None)) == {"msg_id": "reply"}
    assert calls == [0.01] * 4
    calls.clear()
    assert asyncio.run(get_msg(None, timeout=10.0)) == {"msg_id": "reply"}
    assert all(0 < c <= 0.01 for c in calls) and len(calls) == 4

    async def never(self, timeout=None):
        await asyncio.sleep(timeout)
        raise Empty

    with pytest.raises(Empty):  # nothing arrives: Empty once the overall timeout has passed
        asyncio.run(scorelab_book.sliced_get_msg(never, slice_s=0.01)(None, timeout=0.05))
    # applied to jupyter_client's async channel once, however often the book is built
    from jupyter_client.channels import AsyncZMQSocketChannel

    scorelab_book.poll_shell_in_slices()
    first = AsyncZMQSocketChannel.get_msg
    scorelab_book.poll_shell_in_slices()
    assert AsyncZMQSocketChannel.get_msg is first and first._sliced


def test_clean_output_html_on_plotly_notebook_renderer_output():
    from plotly.io._base_renderers import NotebookRenderer

    renderer = NotebookRenderer()
    with mock.patch("plotly.io._base_renderers.ipython_display") as display:
        renderer.activate()   # what the kernel prints once: plotly.js inline
    bundle_html = display.display_html.call_args.args[0]
    figure_html = renderer.to_mimebundle(_figure().to_dict())["text/html"]
    assert len(bundle_html) > 1_000_000 and "cdnjs.cloudflare.com/ajax/libs/mathjax" in figure_html

    bundle_clean = book.clean_output_html(bundle_html)
    assert len(bundle_clean) < 2_000 and "plotly.js v" not in bundle_clean
    assert "window.PlotlyConfig" in bundle_clean    # the config script before plotly.js stays
    figure_clean = book.clean_output_html(figure_html)
    assert not re.search(r"<script[^>]*\ssrc=", figure_clean), "a script still loads from a URL"
    assert figure_clean == figure_html.replace(
        re.search(r"<script[^>]*mathjax[^>]*>\s*</script>", figure_html).group(0), "")
    plain = "<div><b>nothing to clean</b></div>"
    assert book.clean_output_html(plain) == plain


def test_clean_output_html_replaces_the_animation_icon_stylesheet():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots()
    (line,) = ax.plot([0, 1], [0, 1])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=2)
    html = anim.to_jshtml()
    plt.close(fig)
    assert re.search(r"<link[^>]+https://[^>]+font-awesome", html)
    cleaned = book.clean_output_html(html)
    assert not re.search(r"<link[^>]+https?://", cleaned)
    assert ".anim-buttons i.fa-play:before" in cleaned
    assert cleaned.count("<button") == html.count("<button")


def _png_b64() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _executed_notebook():
    from plotly.io._base_renderers import NotebookRenderer

    renderer = NotebookRenderer()
    with mock.patch("plotly.io._base_renderers.ipython_display") as display:
        renderer.activate()
    v4 = nbformat.v4
    cells = [
        v4.new_markdown_cell("# 4.9 测试\n\n$s(x) = -x$", metadata={"slideshow": {"slide_type": "slide"}}),
        v4.new_code_cell("import plotly", metadata={"slideshow": {"slide_type": "skip"}}),
        v4.new_markdown_cell("## 4.9.1 figures", metadata={"slideshow": {"slide_type": "slide"}}),
        v4.new_code_cell("fig.show()", execution_count=1, outputs=[
            v4.new_output("display_data", data={"text/html": display.display_html.call_args.args[0]}),
            v4.new_output("display_data", data={"text/html": renderer.to_mimebundle(_figure().to_dict())[
                "text/html"], "application/vnd.plotly.v1+json": _figure().to_plotly_json()}),
            v4.new_output("display_data", data={"image/png": _png_b64(), "text/plain": "<Figure>"}),
        ]),
    ]
    return v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                 "display_name": "Python 3"}})


def test_exported_deck_loads_only_local_files(tmp_path):
    nb = book.clean_outputs(_executed_notebook())
    book.copy_vendor(tmp_path / "_vendor")
    deck = book.export_deck(nb, "4.9 测试", tmp_path / "x.slides.html")
    html = deck.read_text(encoding="utf-8")
    assert len(html) < 1_000_000, "the inline plotly.js bundle should have been dropped"
    urls = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", html) + re.findall(r"<link[^>]*\shref=\"([^\"]+)\"", html)
    urls += re.findall(r"\"(_vendor/[^\"]+\.js)\"", html)   # what RequireJS loads
    assert urls
    for url in urls:
        assert "://" not in url and not url.startswith("//"), f"the deck loads {url} from elsewhere"
        assert (tmp_path / url.split("?")[0]).is_file(), f"the deck loads {url}, which is missing"
    # plotly.js before RequireJS, so that it sets window.Plotly.
    assert html.index("_vendor/plotly.min.js") < html.index("_vendor/requirejs/require.js")
    assert html.count("<section") >= 2 and "plotly-graph-div" in html and "data:image/png;base64" in html
    assert "import plotly" not in html   # the set-up cell is skipped


def test_book_config_serves_scripts_locally():
    config = yaml.safe_load((REPO / "book" / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config["sphinx"]["config"]
    local = [sphinx["mathjax_path"], *sphinx["nb_ipywidgets_js"]]
    for path in local:
        assert "://" not in path and path.startswith("vendor/")
        assert (REPO / "book" / path).is_file(), f"book/{path} is missing"
    assert config["execute"]["execute_notebooks"] in ("force", "cache")


def test_vendored_javascript_keeps_its_licences():
    vendor = REPO / "book" / "vendor"
    pinned = dict(line.rsplit(" ", 1) for line in (vendor / "VERSIONS").read_text().splitlines())
    script = (REPO / "scripts" / "vendor_js.sh").read_text()
    for name, var in [("reveal.js", "REVEAL"), ("mathjax", "MATHJAX"), ("requirejs", "REQUIREJS"),
                      ("@jupyter-widgets/html-manager", "HTML_MANAGER")]:
        assert f"{var}={pinned[name]} " in script, f"{name}: VERSIONS and scripts/vendor_js.sh disagree"
        assert (vendor / name / "LICENSE").is_file(), f"book/vendor/{name}/LICENSE is missing"


def test_landing_page_gives_the_two_commands():
    intro = (REPO / "book" / "intro.md").read_text(encoding="utf-8")
    for command in ("make lab", "make test", "make book", "make slides"):
        assert command in intro


# --------------------------------------------------------------------------- slide metadata


def _chapters():
    return sorted((REPO / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_chapter_carries_slide_metadata(path):
    """CONTRIBUTING.md: each ## heading starts a slide, ### a sub-slide, the set-up cell is skipped.

    A ### heading may also sit inside the cell of its ## heading (a titled part of that slide).
    """
    nb = nbformat.read(path, as_version=4)
    problems = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if code_cells and code_cells[0].metadata.get("slideshow", {}).get("slide_type") != "skip":
        problems.append("the first (set-up) code cell is not slide_type skip")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        slide_type = cell.metadata.get("slideshow", {}).get("slide_type")
        lines = cell.source.strip().splitlines()
        fenced = False
        for j, line in enumerate(lines):
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            if fenced:
                continue
            level = len(line) - len(line.lstrip("#"))
            if level not in (1, 2, 3) or not line[level:].startswith(" "):
                continue
            if j > 0 and level <= 2:
                problems.append(f"cell {i}: heading {line!r} is not the first line of its cell, "
                                "so it starts no slide")
            elif level <= 2 and slide_type != "slide":
                problems.append(f"cell {i}: {line!r} should start a slide, has {slide_type!r}")
            elif level == 3 and slide_type not in ("subslide", "slide"):
                problems.append(f"cell {i}: {line!r} should start a sub-slide, has {slide_type!r}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
