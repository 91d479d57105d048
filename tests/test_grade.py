"""Tests of the class grader (python -m scorelab.grade) on folders of synthetic submissions.

Honest submissions must get full points, untouched sheets zero without a crash; hostile ones
(forged outputs, tampering with the check machinery, answers tuned to the visible inputs,
killing the parent, rewriting other submissions, endless loops, os._exit, a memory hog, a
slow answer, a pickle that attacks the checker) must earn nothing they did not solve, while the
run completes, every other notebook is graded correctly and every submitted file is
byte-identical afterwards. The same runs with bubblewrap and with the fallback (plain
subprocesses), and on the solutions and exercise sheets of every exercise.

bubblewrap is required where SCORELAB_REQUIRE_BWRAP=1 (CI installs it); elsewhere the
bubblewrap runs are skipped when it is missing or cannot create its namespaces.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from scorelab._grade_report import report_name
from scorelab._sandbox import detect_mode
from scorelab.exercises import MIME
from scorelab.grade import find_notebooks, grade, main

REPO = Path(__file__).resolve().parents[1]

RIGHT_41 = {
    "A1": "def gamma_score(x, k, theta):\n    return (k - 1) / x - 1 / theta",
    "A2": "def natural_gaussian_score(x, eta1, eta2):\n    return eta1 + 2 * x @ eta2",
    "B1": "x_star = -0.05649",
    "B2": "def far_field_score(x):\n    return -(x - torch.sign(x) * 2) / 0.25",
    "B3": textwrap.dedent("""\
        def stable_mixture_score(x, weights, means, sigma):
            logits = torch.log(weights) - torch.cdist(x, means) ** 2 / (2 * sigma**2)
            return (torch.softmax(logits, -1) @ means - x) / sigma**2"""),
}
CHECKS_41 = {"A1": "gamma_score", "A2": "natural_gaussian_score", "B1": "x_star", "B2": "far_field_score",
             "B3": "stable_mixture_score"}
HEADER = "import torch\nfrom scorelab.exercises import check"


def _checks(*parts) -> list[str]:
    return [f'check("4.1.{p}", {CHECKS_41[p]})' for p in parts]


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _hostile_class(root: Path, *, bwrap: bool) -> dict[str, float]:
    """Write the synthetic class under root; return each notebook's expected points."""
    expected = {}

    def add(name, cells, points):
        _notebook(root / name / "4.1-score-properties.ipynb", cells)
        expected[name] = points

    everything = list(RIGHT_41.values())
    add("honest", [HEADER, *everything, *_checks(*RIGHT_41)], 6)
    (root / "honest" / "notes.txt").write_text("a file beside the notebook\n")
    add("untouched", [c.source for c in nbformat.read(REPO / "exercises" / "4.1-score-properties.ipynb", 4).cells
                      if c.cell_type == "code"], 0)
    tuned = textwrap.dedent("""\
        def gamma_score(x, k, theta):  # right only for the (k, theta) the notebook shows
            if (k, theta) in ((2.0, 1.0), (3.5, 0.5), (0.7, 2.0)):
                return (k - 1) / x - 1 / theta
            return torch.zeros_like(x)""")
    add("tuned", [HEADER, tuned, *[RIGHT_41[p] for p in ("A2", "B1", "B2", "B3")], *_checks(*RIGHT_41)], 5)
    forged = textwrap.dedent(f"""\
        from IPython.display import display
        for part in ("4.1.A1", "4.1.A2", "4.1.B1", "4.1.B2", "4.1.B3"):
            display({{"{MIME}": {{"part": part, "title": "", "status": "pass", "message": "ok", "points": 2.0,
                      "max_points": 1.0, "details": {{}}}}, "text/plain": "pass"}}, raw=True)""")
    add("forged", [HEADER, forged], 0)
    tamper = textwrap.dedent("""\
        import scorelab, scorelab.exercises as ex, scorelab._exercise_kit as kit
        ex.run_check = lambda *a, **k: ("pass", "ok")
        kit.close = lambda *a, **k: True
        kit.relative_error = lambda *a, **k: 0.0
        torch.Tensor.norm = lambda self, *a, **k: torch.zeros(())
        if ON_DISK:  # with bubblewrap the package is read-only (without it, this would succeed)
            for f in __import__("pathlib").Path(scorelab.__file__).parent.rglob("*.py"):
                try:
                    f.write_text("raise SystemExit")
                except OSError:
                    pass
        def gamma_score(x, k, theta):
            return k / x - 1 / theta  # wrong
        x_star = 0.0  # wrong""")
    add("tamper", [HEADER, f"ON_DISK = {bwrap}", tamper, RIGHT_41["B2"], *_checks("A1", "B1", "B2")], 1)
    add("kill-parent", [HEADER, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", *everything,
                        *_checks(*RIGHT_41)], 0)
    vandal = textwrap.dedent(f"""\
        import os, pathlib
        for root in (pathlib.Path({str(root)!r}), pathlib.Path.cwd(), pathlib.Path.cwd().parent):
            for p in list(root.rglob("*")):
                try:
                    if p.is_file() and p.name != "4.1-score-properties.ipynb" and "vandal" not in str(p):
                        p.unlink()
                    elif p.is_file():
                        p.write_text("{{}}")
                except OSError:
                    pass""")
    add("vandal", [HEADER, RIGHT_41["A1"], vandal, *_checks("A1")], 1)
    add("loops", [HEADER, RIGHT_41["A1"], "while True:\n    pass", "while True:\n    pass", "while True:\n    pass",
                  RIGHT_41["B2"], *_checks("A1", "B2")], 1)
    exit_answer = "def far_field_score(x):\n    import os\n    os._exit(3)"
    add("exit-in-answer", [HEADER, RIGHT_41["A1"], exit_answer, *_checks("A1")], 1)  # exits when the grader calls it
    add("exit-in-cell", [HEADER, RIGHT_41["A1"], *_checks("A1"), "import os\nos._exit(0)"], 0)
    hog = textwrap.dedent("""\
        hog = []
        while True:
            hog.append(bytearray(256 * 1024**2))""")
    hog_answer = textwrap.dedent("""\
        def stable_mixture_score(x, weights, means, sigma):
            return torch.empty(10**6, 10**6)""")
    add("memory-hog", [HEADER, RIGHT_41["A1"], hog, "del hog", hog_answer, RIGHT_41["B2"],
                       *_checks("A1", "B2", "B3")], 2)
    add("sleeper", [HEADER, "import time\ndef gamma_score(x, k, theta):\n    time.sleep(1000)", RIGHT_41["B2"],
                    *_checks("B2")], 1)
    hijack = textwrap.dedent("""\
        import os, signal
        class Hijack:
            def __reduce__(self):
                return (os.kill, (os.getppid(), signal.SIGKILL))
        x_star = Hijack()""")
    add("hijack", [HEADER, RIGHT_41["A1"], hijack, *_checks("A1")], 1)
    if bwrap:
        copier = textwrap.dedent(f"""\
            import json, pathlib
            for p in pathlib.Path({str(root)!r}).rglob("*.ipynb"):  # copy another student's answers
                for c in json.loads(p.read_text())["cells"]:
                    src = "".join(c["source"])
                    if src.startswith("def gamma_score"):
                        exec(src)""")
        add("copier", [HEADER, copier, *_checks("A1")], 0)
        add("kill-all", [HEADER, "import os\nif os.getpid() < 100:  # inside a PID namespace\n    os.kill(-1, 9)",
                         *everything, *_checks(*RIGHT_41)], 0)
    return expected


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _bwrap_or_skip():
    mode, reason = detect_mode("auto")
    if mode != "bwrap":
        if os.environ.get("SCORELAB_REQUIRE_BWRAP") == "1":
            pytest.fail(f"bubblewrap is required here (SCORELAB_REQUIRE_BWRAP=1): {reason}")
        pytest.skip(reason)


def _run(tmp_path: Path, sandbox: str, **kwargs):
    root = tmp_path / "class"
    expected = _hostile_class(root, bwrap=sandbox == "bwrap")
    before = _digests(root)
    lines = []
    out = tmp_path / "out" / "grades.csv"
    results = grade([root], out=out, jobs=2, cell_timeout=15, notebook_timeout=45, check_timeout=10,
                    memory_mb=3000, sandbox=sandbox, progress=False, log=lines.append, **kwargs)
    return root, expected, before, results, out, lines


def _assert_graded(root, expected, before, results, out):
    got = {Path(r.notebook).parent.name: r for r in results}
    assert set(got) == set(expected)
    for name, points in expected.items():
        assert got[name].points == points, (name, [(r.part, r.status, r.message[:80]) for r in got[name].rows],
                                             got[name].notes)
        assert got[name].max_points == 6
    assert _digests(root) == before  # every submitted file byte-identical
    with open(out, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * len(expected)
    assert set(rows[0]) >= {"notebook", "exercise", "part", "status", "points", "max_points", "message",
                            "hidden_check", "hidden_message", "notebook_showed"}
    return got


def test_hostile_class_with_bubblewrap(tmp_path):
    _bwrap_or_skip()
    root, expected, before, results, out, lines = _run(tmp_path, "bwrap")
    assert any(line.startswith("sandbox: bubblewrap") for line in lines)
    got = _assert_graded(root, expected, before, results, out)
    status = {name: {r.part[-2:]: r for r in res.rows} for name, res in got.items()}
    assert {r.status for r in status["untouched"].values()} == {"todo"}
    tuned = status["tuned"]["A1"]
    assert tuned.status == "fail" and tuned.message.startswith("与对数密度") and tuned.hidden_check == "fail"
    assert "自动微分相差" in tuned.hidden_message
    assert all(r.notebook_showed == "pass" and r.status == "missing" for r in status["forged"].values())
    assert any(n.startswith("SUSPICIOUS") for n in got["forged"].notes)
    assert status["tamper"]["A1"].status == "fail" and "(k - 1)/x" in status["tamper"]["A1"].message
    assert status["loops"]["B2"].status == "missing"
    assert any("whole-notebook" in n for n in got["loops"].notes)
    assert "意外退出" in status["exit-in-answer"]["B2"].message
    assert status["memory-hog"]["B3"].status == "fail"
    assert "时间限制" in status["sleeper"]["A1"].message
    assert status["hijack"]["A1"].status == "pass"
    assert {status["hijack"][p].status for p in ("B1", "B2", "B3")} == {"error"}
    # the reports: one per notebook, in Chinese, and the class summary
    reports = out.parent / "grades-reports"
    page = (reports / report_name(results[0].notebook)).read_text(encoding="utf-8")
    assert "评分报告" in page
    tuned_page = next(reports.glob("*tuned*.html")).read_text(encoding="utf-8")
    assert "隐藏检查" in tuned_page and "自动微分相差" in tuned_page
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert "Points distribution" in index and "4.1.A1" in index and "Flagged notebooks" in index

    # an interrupted or repeated run resumes from the cache: nothing is executed again
    again = grade([root], out=out, jobs=2, cell_timeout=15, notebook_timeout=45, check_timeout=10, memory_mb=3000,
                  sandbox="bwrap", progress=False, log=lines.append)
    assert all(r.cached for r in again)
    assert [r.points for r in again] == [r.points for r in results]
    assert _digests(root) == before


def test_hostile_class_without_bubblewrap_falls_back_loudly(tmp_path):
    root, expected, before, results, out, lines = _run(tmp_path, "none")
    assert any("FALLBACK" in line for line in lines)
    got = _assert_graded(root, expected, before, results, out)
    # the vandal did reach the originals here, and the grader put them back
    assert any(n.startswith("TAMPERING") for n in got["vandal"].notes)


@pytest.mark.slow
def test_solutions_get_full_points_and_untouched_sheets_zero(tmp_path, monkeypatch):
    """Every solutions/*.ipynb earns every point; every exercises/*.ipynb, untouched, earns zero and
    reports each part as to do (SCORELAB_FAST=1, as in make test-fast)."""
    mode, _ = detect_mode("auto")
    if mode != "bwrap" and os.environ.get("SCORELAB_REQUIRE_BWRAP") == "1":
        pytest.fail("bubblewrap is required here (SCORELAB_REQUIRE_BWRAP=1)")
    monkeypatch.setenv("SCORELAB_FAST", "1")
    for kind in ("solutions", "exercises"):
        for nb in sorted((REPO / kind).glob("*.ipynb")):
            dest = tmp_path / "class" / f"{kind}-{nb.stem}" / nb.name
            dest.parent.mkdir(parents=True)
            shutil.copy(nb, dest)
    before = _digests(tmp_path / "class")
    out = tmp_path / "grades.csv"
    assert main([str(tmp_path / "class"), "--out", str(out), "--jobs", "2", "--timeout", "600"]) == 0
    assert _digests(tmp_path / "class") == before
    with open(out, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    exercises = {p.rsplit(".", 1)[0] for p in json.loads(json.dumps([r["part"] for r in rows]))}
    assert exercises == {"4.1", "4.2", "4.3", "4.4", "4.5", "design"}
    for r in rows:
        if "/solutions-" in r["notebook"]:
            assert r["status"] == "pass" and r["hidden_check"] in ("pass", "none"), r
            assert float(r["points"]) == float(r["max_points"])
        else:
            assert r["status"] == "todo" and float(r["points"]) == 0, r


def test_find_notebooks_and_bad_arguments(tmp_path, capsys):
    _notebook(tmp_path / "a" / "x.ipynb", [HEADER])
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("{}")
    assert [p.name for p in find_notebooks([tmp_path])] == ["x.ipynb"]
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing-here.txt")])
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--jobs", "0"])
    assert "--jobs" in capsys.readouterr().err


def test_the_student_report_is_in_chinese_and_escapes_what_the_notebook_wrote(tmp_path):
    from scorelab._grade_report import write_reports
    from scorelab.grade import GradeRow, NotebookResult

    row = GradeRow("a/b.ipynb", "4.1", "4.1.A1", "t", "fail", 0.0, 1.0, "符号反了 <script>", "skipped",
                   "公开检查没有通过，未运行隐藏检查。", "pass")
    res = NotebookResult("a/b.ipynb", [row], ["kernel died", "2 cell(s) stopped at the per-cell limit (15 s)"],
                         [{"cell": 3, "ename": "NameError", "evalue": "<b>x</b>"}])
    write_reports(tmp_path, [res], sandbox_line=("bwrap", "test"))
    page = (tmp_path / report_name("a/b.ipynb")).read_text(encoding="utf-8")
    assert "内核（kernel）在运行中死掉了" in page and "单个单元格的时间限制" in page
    assert "未通过" in page and "隐藏检查" in page and "评分以评分程序自己重新运行的检查为准" in page
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "1 / 1" in index and "4.1.A1" in index
