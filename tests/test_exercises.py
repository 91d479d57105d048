"""Tests for the self-grading exercise checks (scorelab.exercises, exercise 4.1) and the
registry behind them (scorelab._exercise_kit).

References: for each part, a right answer must pass, an unanswered stub must be "to do",
and the typical wrong answers (a flipped sign, a factor of two, scale taken for rate, the
naive underflowing mixture) must fail with a message that names the mistake; adversarial
answers (right only in one dimension, NaN at the edge of the range, numbers of the wrong
kind, slow answers) fail with a clear message, and right answers written differently pass.
A student's exception is reported with the student's line, never with scorelab's frames.
The class grader has its own tests (tests/test_grade.py).
"""

from __future__ import annotations

import importlib
import json
import time

import pytest
import torch

from scorelab.exercises import CheckResult, check, not_passed, parts, run_check, summary


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
    assert r.status == "todo" and r.points == 0 and "还没有作答" in r.message


@pytest.mark.parametrize("part,answer,hint", [
    ("4.1.A1", lambda x, k, t: -((k - 1) / x - 1 / t), "符号反了"),
    ("4.1.A1", lambda x, k, t: k / x - 1 / t, "(k - 1)/x"),
    ("4.1.A1", lambda x, k, t: (k - 1) / x - t, "尺度"),
    ("4.1.A1", lambda x, k, t: (k - 1) / x, "自动微分相差"),
    ("4.1.A2", lambda x, e1, e2: e1 + x @ e2, "因子 2"),
    ("4.1.A2", lambda x, e1, e2: -(e1 + 2 * x @ e2), "符号反了"),
    ("4.1.B1", 0.0, "中点"),
    ("4.1.B1", 2.0, "稳定不动点"),
    ("4.1.B1", 1.0, "不为零"),
    ("4.1.B2", lambda x: -(x - 0.8) / 0.25, "较近的分量"),
    ("4.1.B2", lambda x: (x - torch.sign(x) * 2) / 0.25, "符号反了"),
    ("4.1.B3", naive_mixture_score, "NaN"),
    ("4.1.B3", lambda x, w, m, s: stable_mixture_score(x, w, m, s) * 2, "相对误差"),
])
def test_typical_mistakes_get_a_message_that_names_them(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and r.points == 0
    assert hint in r.message, r.message


def test_shape_type_and_exceptions_are_reported_without_scorelab_frames():
    r = check("4.1.A1", lambda x, k, t: ((k - 1) / x - 1 / t)[:, 0])
    assert r.status == "fail" and "形状 (54, 1)" in r.message and "(54,)" in r.message
    r = check("4.1.A1", lambda x, k, t: [1.0])
    assert r.status == "fail" and "torch.Tensor" in r.message and "list" in r.message

    def buggy(x, weights, means, sigma):
        return x @ means  # (N, 2) @ (3, 2): a shape error in the student's own line

    r = check("4.1.B3", buggy)
    assert r.status == "fail"
    assert "stable_mixture_score(形状为 (90, 2) 的 float32 张量" in r.message and "RuntimeError" in r.message
    assert "return x @ means" in r.message and "scorelab" not in r.message
    r = check("4.1.A1", gamma_score(torch.ones(3, 1), 2.0, 1.0))  # called instead of passed
    assert r.status == "fail" and "把函数本身传给检查" in r.message
    r = check("4.1.B1", "about zero")
    assert r.status == "fail" and "应当是一个数" in r.message and "str" in r.message
    with pytest.raises(KeyError, match="4.1.A1"):
        check("4.1.Z9", gamma_score)


def test_result_displays_in_text_html_and_for_the_grader():
    r = check("4.1.A1", gamma_score)
    bundle = r._repr_mimebundle_()
    assert bundle["text/plain"].startswith("✔ 4.1.A1（通过）")
    assert "4.1.A1" in bundle["text/html"]
    assert CheckResult(**json.loads(json.dumps(bundle["application/vnd.scorelab.check+json"]))) == r


def test_summary_and_not_passed_follow_the_latest_checks():
    for part, answer in RIGHT.items():
        check(part, answer)
    assert not_passed("4.1") == []
    assert summary("4.1").splitlines()[-1] == "练习 4.1：6 / 6 分"
    check("4.1.B3", naive_mixture_score)
    assert not_passed("4.1") == ["4.1.B3"]
    assert "4 / 6 分" in summary("4.1")


def test_not_implemented_inside_scorelab_is_an_error_not_a_stub():
    """A NotImplementedError from scorelab's own code (an abstract method the student called)
    is the student's mistake, not an unanswered part."""
    from scorelab.sdes import SDE

    def uses_abstract_method(x, k, theta):
        return SDE().alpha(x)  # SDE is abstract: alpha raises NotImplementedError

    r = check("4.1.A1", uses_abstract_method)
    assert r.status == "fail" and "NotImplementedError（在 scorelab 的 alpha 内部）" in r.message
    assert "return SDE().alpha(x)" in r.message


# -- adversarial answers ----------------------------------------------------------------------------

def gamma_score_for_the_visible_shapes(x, k, theta):
    """Right for the three (k, theta) the notebook shows, 0 elsewhere: a lookup, not a formula."""
    if (k, theta) in ((2.0, 1.0), (3.5, 0.5), (0.7, 2.0)):
        return (k - 1) / x - 1 / theta
    return torch.zeros_like(x)


def gamma_score_by_autograd(x, k, theta):
    """Right, written differently: autograd of the log-density, inside the answer."""
    x = x.detach().clone().requires_grad_(True)
    logp = (k - 1) * torch.log(x) - x / theta
    (g,) = torch.autograd.grad(logp.sum(), x)
    return g


def natural_score_for_d2(x, eta1, eta2):
    """Written out by coordinates for d = 2."""
    s0 = eta1[0] + 2 * (x[:, 0] * eta2[0, 0] + x[:, 1] * eta2[1, 0])
    s1 = eta1[1] + 2 * (x[:, 0] * eta2[0, 1] + x[:, 1] * eta2[1, 1])
    return torch.stack([s0, s1], -1)


def gamma_score_with_a_gamma_pdf(x, k, theta):
    """Exact formula through the density itself: underflows to 0/0 = NaN at large x."""
    p = x ** (k - 1) * torch.exp(-x / theta)
    dp = (k - 1) * x ** (k - 2) * torch.exp(-x / theta) - p / theta
    return dp / p


def stable_score_in_float64(x, weights, means, sigma):
    """Right, written differently: upcast to float64 inside, float64 out."""
    return stable_mixture_score(x.double(), weights.double(), means.double(), sigma)


def stable_score_for_d2(x, weights, means, sigma):
    logits = torch.log(weights) - ((x[:, None, 0] - means[None, :, 0]) ** 2
                                   + (x[:, None, 1] - means[None, :, 1]) ** 2) / (2 * sigma**2)
    return (torch.softmax(logits, -1) @ means - x) / sigma**2


def far_field_right_side_only(x):
    return -(x - 2) / 0.25


class HugeNumber:
    def __float__(self):
        raise OverflowError("too large")


@pytest.mark.parametrize("part,answer,hint", [
    ("4.1.A2", natural_score_for_d2, "IndexError"),  # the check now tries d = 1, 3 and 5
    ("4.1.A1", gamma_score_with_a_gamma_pdf, "NaN"),
    ("4.1.B2", far_field_right_side_only, "一侧"),
    ("4.1.B3", stable_score_for_d2, "IndexError"),
    ("4.1.B1", float("nan"), "有限"),
    ("4.1.B1", 10**400, "太大"),
    ("4.1.B1", 1 + 2j, "复数"),
    ("4.1.B1", torch.tensor([0.1, 0.2]), "形状"),
    ("4.1.B1", True, "布尔"),
    ("4.1.B1", HugeNumber(), "太大"),
    ("4.1.B1", torch.tensor(-0.0565).item, "忘了调用"),
    ("4.1.A1", lambda x, k, t: ((k - 1) / x - 1 / t).to(torch.complex64), "复数"),
    ("4.1.A1", lambda x, k, t: ((k - 1) / x - 1 / t).long(), "浮点"),
    ("4.1.A1", lambda x, k, t: exit(), "SystemExit"),
])
def test_adversarial_wrong_answers_fail_with_a_clear_message(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and hint in r.message, r.message
    assert "Traceback" not in r.message


@pytest.mark.parametrize("part,answer", [
    ("4.1.A1", gamma_score_by_autograd),
    ("4.1.B3", stable_score_in_float64),
    ("4.1.B1", torch.tensor([-0.0565])),
    ("4.1.B1", __import__("numpy").float32(-0.0565)),
])
def test_right_answers_written_differently_pass(part, answer):
    r = check(part, answer)
    assert r.status == "pass", r.message


def test_autograd_inside_an_answer_works_even_when_the_caller_disabled_gradients():
    with torch.no_grad():
        assert check("4.1.A1", gamma_score_by_autograd).status == "pass"
    assert torch.is_grad_enabled()


def test_hidden_variant_fails_an_answer_tuned_to_the_visible_inputs():
    assert check("4.1.A1", gamma_score_for_the_visible_shapes).status == "pass"
    status, message = run_check("4.1.A1", (gamma_score_for_the_visible_shapes,), rng=torch.Generator().manual_seed(5))
    assert status == "fail" and "自动微分相差" in message
    for part, answer in RIGHT.items():
        if part != "4.1.B1":
            for seed in range(3):
                assert run_check(part, (answer,), rng=torch.Generator().manual_seed(seed))[0] == "pass", part
    with pytest.raises(ValueError, match="no hidden variant"):
        run_check("4.1.B1", (-0.0565,), rng=torch.Generator().manual_seed(0))


def test_a_slow_answer_is_stopped_at_the_time_limit():
    def sleepy(x, k, theta):
        time.sleep(30)

    def stubborn(x, k, theta):  # swallows the first interruptions, then gives up
        for _ in range(3):
            try:
                time.sleep(30)
            except BaseException:
                pass
        time.sleep(30)

    for answer in (sleepy, stubborn):
        start = time.monotonic()
        status, message = run_check("4.1.A1", (answer,), limit=1.0)
        assert status == "fail" and "时间限制" in message
        assert time.monotonic() - start < 10


def test_the_check_restores_global_torch_state():
    def vandal(x, k, theta):
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        return (k - 1) / x - 1 / theta

    assert check("4.1.A1", vandal).status == "pass"
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()


def test_wrong_number_of_answers_is_a_clear_failure():
    r = check("4.1.A1", gamma_score, gamma_score)
    assert r.status == "fail" and "check('4.1.A1', gamma_score)" in r.message


# -- the registry ------------------------------------------------------------------------------------

def test_every_part_names_its_answers_as_the_sheet_does():
    """The grader finds the answers by the names in the registry: they must be the names that the
    exercise sheet's check cells pass."""
    import re
    from pathlib import Path

    from scorelab._exercise_kit import REGISTRY

    parts()
    calls = {}
    for sheet in (Path(__file__).resolve().parents[1] / "exercises").glob("*.md"):
        for part, args in re.findall(r'^check\("([^"]+)",\s*([^)]*)\)', sheet.read_text(), flags=re.M):
            calls[part] = tuple(a.strip() for a in args.split(","))
    assert set(calls) == set(REGISTRY)
    for part, spec in REGISTRY.items():
        assert spec.answers == calls[part], part


def test_reloading_a_check_module_or_rerunning_a_cell_does_not_register_twice():
    from scorelab import _exercise_checks
    from scorelab._exercise_checks import ex4_1
    from scorelab._exercise_kit import REGISTRY, register

    parts()
    before = dict(REGISTRY)
    importlib.reload(ex4_1)
    importlib.reload(_exercise_checks)
    assert set(REGISTRY) == set(before)
    assert check("4.1.A1", gamma_score).status == "pass"

    def define():  # a notebook cell that defines a check, run twice
        @register("demo.Z1", "a demo part", answers=("z",), hidden=False)
        def _z(value):
            return "ok"

    try:
        define()
        define()
        assert check("demo.Z1", 1.0).status == "pass"
        with pytest.raises(ValueError, match="registered twice"):
            @register("demo.Z1", "another", answers=("z",), hidden=False)
            def _other(value):
                return "ok"
    finally:
        REGISTRY.pop("demo.Z1", None)


def test_register_rejects_bad_declarations():
    from scorelab._exercise_kit import register

    with pytest.raises(ValueError, match="part"):
        register("A1", "t", answers=("a",))
    with pytest.raises(ValueError, match="answers"):
        register("x.A1", "t", answers=("not a name",))
    with pytest.raises(ValueError, match="points"):
        register("x.A1", "t", points=0, answers=("a",))


def test_no_import_cycle_between_the_exercises_and_their_checks():
    """scorelab.exercises imports the checks; the checks import only the kit, never scorelab.exercises."""
    import ast
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[1] / "scorelab"
    for path in [*(pkg / "_exercise_checks").glob("*.py"), pkg / "_exercise_kit.py"]:
        tree = ast.parse(path.read_text())
        imported = {(n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m.endswith("exercises") and "_exercise_checks" not in m for m in imported), (path, imported)
