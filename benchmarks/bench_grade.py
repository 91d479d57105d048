"""Throughput of the class grader on a realistic mix of exercise-4.1 submissions.

    .venv/bin/python benchmarks/bench_grade.py [--n 16] [--jobs 1 2] [--sandbox auto]

The mix: 40% worked solutions, 20% untouched sheets, 30% half-solved sheets (two parts right,
one wrong, one cell that raises), 10% with an endless loop in one cell (stopped at the
per-cell limit, here 20 s). Prints, for each --jobs, the wall time, notebooks per minute and the
time 200 such notebooks would take. Times depend on the machine's load: run it on an idle one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from scorelab.grade import grade

REPO = Path(__file__).resolve().parents[1]


def make_class(root: Path, n: int) -> None:
    sheet = nbformat.read(REPO / "exercises" / "4.1-score-properties.ipynb", as_version=4)
    solution = nbformat.read(REPO / "solutions" / "4.1-score-properties.ipynb", as_version=4)
    half = {"def gamma_score": "def gamma_score(x, k, theta):\n    return (k - 1) / x - 1 / theta",
            "def natural_gaussian_score": "def natural_gaussian_score(x, eta1, eta2):\n    return eta1 + x @ eta2",
            "x_star = ...": "x_star = undefined_name",
            "def far_field_score": "def far_field_score(x):\n    return -(x - torch.sign(x) * 2) / 0.25"}
    for i in range(n):
        kind = ("solution", "solution", "untouched", "half", "solution", "half", "loop", "half", "untouched",
                "solution")[i % 10]
        nb = nbformat.from_dict(solution if kind == "solution" else sheet)  # a fresh copy
        if kind in ("half", "loop"):
            for cell in nb.cells:
                for start, source in half.items():
                    if cell.cell_type == "code" and cell.source.startswith(start):
                        cell.source = source
        if kind == "loop":
            nb.cells.insert(3, nbformat.v4.new_code_cell("while True:\n    pass"))
        nb.cells.append(nbformat.v4.new_markdown_cell(f"student {i}"))  # every submission differs
        path = root / f"student-{i:03d}" / "4.1-score-properties.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    print(f"{'notebooks':>9s} {'jobs':>4s} {'wall s':>8s} {'nb/min':>7s} {'200 nb (min)':>12s}")
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "class"
            make_class(root, args.n)
            start = time.perf_counter()
            grade([root], out=Path(tmp) / "grades.csv", jobs=jobs, cell_timeout=20, notebook_timeout=120,
                  sandbox=args.sandbox, cache=False, progress=False, log=lambda m: None)
            wall = time.perf_counter() - start
        rate = 60 * args.n / wall
        print(f"{args.n:9d} {jobs:4d} {wall:8.1f} {rate:7.1f} {200 / rate:12.1f}")


if __name__ == "__main__":
    main()
