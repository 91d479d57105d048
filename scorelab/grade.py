"""Grade a class's exercise notebooks in one command.

    python -m scorelab.grade SUBMISSIONS... [--out grades.csv] [--timeout 120]

``SUBMISSIONS`` are notebooks or folders (every ``*.ipynb`` below them, checkpoints skipped).
Each notebook is executed from a clean kernel, in memory (the file is not changed) and in its
own folder (so that relative paths in it still work), with errors allowed: a cell that raises, or one
that runs past ``--timeout`` seconds, costs the checks after it, not the whole notebook.
The results of the check cells (``scorelab.exercises.check``) are read back from the
executed outputs; when a part was checked several times, the last result counts. Parts of
an exercise that the notebook never checked count as missing.

The CSV has one row per notebook and part (notebook, exercise, part, title, status, points,
max_points, message); a table with each notebook's total is printed. Student notebooks run
arbitrary code: grade them in a sandbox you are willing to lose.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ._nbexec import execute_notebook
from .exercises import MIME, parts

__all__ = ["GradeRow", "find_notebooks", "grade_notebook", "main"]


@dataclass
class GradeRow:
    notebook: str
    exercise: str
    part: str
    title: str
    status: str  # pass, fail, todo, missing
    points: float
    max_points: float
    message: str


def find_notebooks(paths) -> list[Path]:
    """Every ``.ipynb`` named or found below the given paths, sorted, checkpoints skipped."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts]
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: expected a .ipynb notebook or a folder of notebooks")
    return sorted(set(found))


def _execute(path: Path, timeout: int):
    """Run a copy of the notebook beside the original; return (executed nb, error text or "")."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)  # executed in memory: the submitted file is not changed
    env = dict(os.environ, MPLBACKEND="Agg")  # no figure windows, faster plots
    try:
        execute_notebook(nb, cwd=path.parent, timeout=timeout, env=env, allow_errors=True)
        error = ""
    except CellTimeoutError:
        error = f"a cell ran past the {timeout} s limit"
    except DeadKernelError:
        error = "the kernel died"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    if errors and not error:
        error = f"{len(errors)} cell(s) raised, first: {errors[0].ename}: {errors[0].evalue}"[:200]
    return nb, error


def _check_results(nb) -> dict[str, dict]:
    results = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {}) if out.get("output_type") in ("execute_result", "display_data") else {}
            if MIME in data:
                r = data[MIME]
                results[r["part"]] = r  # the last check of a part counts
    return results


def grade_notebook(path, timeout: int = 120) -> tuple[list[GradeRow], str]:
    """Execute one notebook and grade it: its rows (one per part) and an error note ("" if none)."""
    path = Path(path).resolve()
    name = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    nb, error = _execute(path, timeout)
    results = _check_results(nb)
    exercises = sorted({p.rsplit(".", 1)[0] for p in results})
    rows = []
    for exercise in exercises:
        for part, (title, max_points) in parts(exercise).items():
            r = results.get(part)
            if r is None:
                rows.append(GradeRow(name, exercise, part, title, "missing", 0.0, max_points,
                                     "this part's check did not run"))
            else:
                rows.append(GradeRow(name, exercise, part, title, r["status"], float(r["points"]), max_points,
                                     r["message"]))
    if not results:
        error = error or "no check cell ran (is this an exercise notebook?)"
    return rows, error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorelab.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--out", default="grades.csv", help="CSV file to write (default grades.csv)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell (default 120)")
    args = parser.parse_args(argv)
    try:
        notebooks = find_notebooks(args.submissions)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not notebooks:
        parser.error("no notebooks found")
    names = [os.path.relpath(p) if not os.path.relpath(p).startswith("..") else str(p.resolve()) for p in notebooks]
    all_rows, width = [], max(len(n) for n in names)
    print(f"{'notebook':{width}s}  {'points':>9s}  parts (pass / fail / to do / missing)  note")
    for path, name in zip(notebooks, names, strict=True):
        rows, error = grade_notebook(path, timeout=args.timeout)
        all_rows += rows
        got, total = sum(r.points for r in rows), sum(r.max_points for r in rows)
        counts = [sum(r.status == s for r in rows) for s in ("pass", "fail", "todo", "missing")]
        print(f"{name:{width}s}  {got:4g} / {total:<3g}  {' / '.join(map(str, counts)):36s}  {error}")
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "exercise", "part", "title", "status", "points", "max_points", "message"])
        for r in all_rows:
            w.writerow([r.notebook, r.exercise, r.part, r.title, r.status, r.points, r.max_points, r.message])
    print(f"wrote {args.out} ({len(all_rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
