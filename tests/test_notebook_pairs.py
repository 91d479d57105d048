"""Every notebook is a jupytext pair: MyST .md (source) and .ipynb, in sync and without outputs."""

from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["chapters", "exercises", "solutions"]


def notebook_sources():
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.md") if p.name != "README.md")


def committed_notebooks():
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.ipynb"))


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_chapters():
    assert any(p.name.startswith("4.1") for p in notebook_sources()), "chapters/4.1-*.md is missing"


@pytest.mark.parametrize("md", notebook_sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_markdown_source_and_notebook_are_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.relative_to(ROOT)} is missing: run `make sync`"
    from_md = jupytext.read(md)
    nb = nbformat.read(ipynb, as_version=4)
    assert _cells(from_md) == _cells(nb), (
        f"{md.relative_to(ROOT)} and {ipynb.name} differ: edit the .md, then run `make sync`"
    )
    assert from_md.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("ipynb", committed_notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebook_has_no_outputs_and_a_source(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{ipynb.relative_to(ROOT)} carries outputs in cells {dirty}: clear them before committing"
    assert ipynb.with_suffix(".md").exists(), f"{ipynb.name} has no MyST source beside it"
