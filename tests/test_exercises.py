"""Tests for the self-grading exercise checks (scorelab.exercises) and the class grader.

References: for each part, a right answer must pass, an unanswered stub must be "to do",
and the typical wrong answers (a flipped sign, a factor of two, scale taken for rate, the
naive underflowing mixture) must fail with a message that names the mistake.  A student's
exception is reported with the student's line, never with scorelab's frames.  The grader is
run on notebooks made from the exercise sheet: untouched, solved, and half-solved with a
crashing cell.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
import torch

from scorelab.exercises import CheckResult, check, not_passed, parts, summary
from scorelab.grade import find_notebooks, grade_notebook
from scorelab.grade import main as grade_main

REPO = Path(__file__).resolve().parents[1]


# right answers, written independently of the solution notebook
def gamma_score(x, k, theta):
    return (k - 1) / x - 1 / theta


def natural_gaussian_score(x, eta1, eta2):
    return eta1 + 2 * x @ eta2


def far_field_score(x):
    return -(x - torch.sign(x) * 2) / 0.25


def stable_mixture_score(x, weights, means, sigma):
    logits = torch.log(weights) - torch.cdist(x, means) ** 2 / (2 * sigma**2)
    return (torch.softmax(logits, -1) @ means - x) / sigma**2


def naive_mixture_score(x, weights, means, sigma):
    dens = weights * torch.exp(-torch.cdist(x, means) ** 2 / (2 * sigma**2))
    return ((dens / dens.sum(-1, keepdim=True)) @ means - x) / sigma**2


RIGHT = {
    "4.1.A1": gamma_score,
    "4.1.A2": natural_gaussian_score,
    "4.1.B1": -0.05649,
    "4.1.B2": far_field_score,
    "4.1.B3": stable_mixture_score,
}


def test_every_part_has_a_right_answer_here():
    assert set(parts("4.1")) == set(RIGHT)


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_right_answers_pass(part):
    r = check(part, RIGHT[part])
    assert r.status == "pass", r.message
    assert r.points == r.max_points > 0


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_unanswered_parts_are_to_do(part):
    def stub(*args):
        raise NotImplementedError

    r = check(part, ... if part == "4.1.B1" else stub)
    assert r.status == "todo" and r.points == 0 and "not answered" in r.message


@pytest.mark.parametrize("part,answer,hint", [
    ("4.1.A1", lambda x, k, t: -((k - 1) / x - 1 / t), "sign is flipped"),
    ("4.1.A1", lambda x, k, t: k / x - 1 / t, "(k - 1)/x"),
    ("4.1.A1", lambda x, k, t: (k - 1) / x - t, "scale"),
    ("4.1.A1", lambda x, k, t: (k - 1) / x, "differs from autograd"),
    ("4.1.A2", lambda x, e1, e2: e1 + x @ e2, "factor 2"),
    ("4.1.A2", lambda x, e1, e2: -(e1 + 2 * x @ e2), "sign is flipped"),
    ("4.1.B1", 0.0, "midpoint"),
    ("4.1.B1", 2.0, "mode"),
    ("4.1.B1", 1.0, "not zero"),
    ("4.1.B2", lambda x: -(x - 0.8) / 0.25, "nearer component"),
    ("4.1.B2", lambda x: (x - torch.sign(x) * 2) / 0.25, "sign is flipped"),
    ("4.1.B3", naive_mixture_score, "NaN"),
    ("4.1.B3", lambda x, w, m, s: stable_mixture_score(x, w, m, s) * 2, "off by"),
])
def test_typical_mistakes_get_a_message_that_names_them(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and r.points == 0
    assert hint in r.message, r.message


def test_shape_type_and_exceptions_are_reported_without_scorelab_frames():
    r = check("4.1.A1", lambda x, k, t: ((k - 1) / x - 1 / t)[:, 0])
    assert r.status == "fail" and "shape (50, 1)" in r.message and "(50,)" in r.message
    r = check("4.1.A1", lambda x, k, t: [1.0])
    assert r.status == "fail" and "torch.Tensor" in r.message

    def buggy(x, weights, means, sigma):
        return x @ means  # (N, 2) @ (3, 2): a shape error in the student's own line

    r = check("4.1.B3", buggy)
    assert r.status == "fail"
    assert "stable_mixture_score(tensor of shape (90, 2), float32" in r.message and "RuntimeError" in r.message
    assert "return x @ means" in r.message and "scorelab" not in r.message
    r = check("4.1.A1", gamma_score(torch.ones(3, 1), 2.0, 1.0))  # called instead of passed
    assert r.status == "fail" and "pass the function itself" in r.message
    r = check("4.1.B1", "about zero")
    assert r.status == "fail" and "should be a number" in r.message
    with pytest.raises(KeyError, match="4.1.A1"):
        check("4.1.Z9", gamma_score)


def test_result_displays_in_text_html_and_for_the_grader():
    r = check("4.1.A1", gamma_score)
    bundle = r._repr_mimebundle_()
    assert bundle["text/plain"].startswith("✔ 4.1.A1")
    assert "4.1.A1" in bundle["text/html"]
    assert CheckResult(**json.loads(json.dumps(bundle["application/vnd.scorelab.check+json"]))) == r


def test_summary_and_not_passed_follow_the_latest_checks():
    for part, answer in RIGHT.items():
        check(part, answer)
    assert not_passed("4.1") == []
    assert summary("4.1").splitlines()[-1] == "exercise 4.1: 6 / 6 points"
    check("4.1.B3", naive_mixture_score)
    assert not_passed("4.1") == ["4.1.B3"]
    assert "4 / 6 points" in summary("4.1")


# -- the grader ---------------------------------------------------------------------------

def _student_notebook(path: Path) -> Path:
    """The exercise sheet with A1 answered right, A2 wrong, a crashing cell before B1, rest untouched."""
    nb = nbformat.read(REPO / "exercises" / "4.1-score-properties.ipynb", as_version=4)
    answers = {
        "def gamma_score": "def gamma_score(x, k, theta):\n    return (k - 1) / x - 1 / theta",
        "def natural_gaussian_score": "def natural_gaussian_score(x, eta1, eta2):\n    return eta1 + x @ eta2",
        "x_star = ...": "x_star = undefined_name  # a NameError in the student's cell",
    }
    for cell in nb.cells:
        for start, source in answers.items():
            if cell.cell_type == "code" and cell.source.startswith(start):
                cell.source = source
    nbformat.write(nb, path)
    return path


def test_grader_reads_back_every_check_and_survives_errors(tmp_path):
    (tmp_path / "alice").mkdir()
    student = _student_notebook(tmp_path / "alice" / "4.1-score-properties.ipynb")
    rows, error = grade_notebook(student, timeout=120)
    status = {r.part: r.status for r in rows}
    # B1: the answer cell raised, so its check cell raised too and reported nothing: missing
    assert status == {"4.1.A1": "pass", "4.1.A2": "fail", "4.1.B1": "missing", "4.1.B2": "todo", "4.1.B3": "todo"}
    assert "NameError" in error
    assert sum(r.points for r in rows) == 1 and sum(r.max_points for r in rows) == 6
    assert "factor 2" in next(r.message for r in rows if r.part == "4.1.A2")


def test_grade_command_writes_one_row_per_notebook_and_part(tmp_path, capsys):
    (tmp_path / "bob").mkdir()
    nbformat.write(nbformat.read(REPO / "solutions" / "4.1-score-properties.ipynb", as_version=4),
                   tmp_path / "bob" / "4.1-score-properties.ipynb")
    nbformat.write(nbformat.read(REPO / "exercises" / "4.1-score-properties.ipynb", as_version=4),
                   tmp_path / "carol.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "carol-checkpoint.ipynb").write_text("{}")
    assert len(find_notebooks([tmp_path])) == 2
    out = tmp_path / "grades.csv"
    assert grade_main([str(tmp_path), "--out", str(out)]) == 0
    with open(out, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(RIGHT)
    bob = [r for r in rows if "bob" in r["notebook"]]
    carol = [r for r in rows if "carol" in r["notebook"]]
    assert all(r["status"] == "pass" for r in bob) and sum(float(r["points"]) for r in bob) == 6
    assert all(r["status"] == "todo" for r in carol)
    printed = capsys.readouterr().out
    assert "6 / 6" in printed and "0 / 6" in printed
    with pytest.raises(SystemExit):
        grade_main([str(tmp_path / "nothing-here.txt")])


def test_not_implemented_inside_scorelab_is_an_error_not_a_stub():
    """A NotImplementedError from scorelab's own code (an abstract method the student called)
    is the student's mistake, not an unanswered part."""
    from scorelab.sdes import SDE

    def uses_abstract_method(x, k, theta):
        return SDE().alpha(x)  # SDE is abstract: alpha raises NotImplementedError

    r = check("4.1.A1", uses_abstract_method)
    assert r.status == "fail" and "NotImplementedError inside scorelab's alpha" in r.message
    assert "return SDE().alpha(x)" in r.message
