"""Tests for the checks of exercise 4.4 (Langevin sampling in depth).

For every part a right answer written here (independently of the solution notebook) must
pass, an unanswered stub must be "to do", and each typical mistake the check recognises
must fail with the message that names it.  A student's exception is reported with the
student's line and without scorelab's frames.
"""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.diagnostics import effective_sample_size
from scorelab.exercises import check, not_passed, parts, summary

# -- right answers, written independently of the solution notebook -----------------------

def ula_variance(eps, s2):
    if eps >= 2 * s2:
        return math.inf
    return s2 / (1 - eps / (2 * s2))


def ula_tau(eps, s2):
    return (2 * s2 - eps) / eps


def ula_efficiency(variances, delta):
    eps = 2 * float(variances.min()) * delta / (1 + delta)
    tau_worst = 2 * float(variances.max()) / eps - 1
    return torch.tensor([eps, 1000 / tau_worst])           # a 2-element tensor is accepted too


def mala_log_accept_ratio(x, y, log_prob, score, eps):
    std = math.sqrt(2 * eps)
    forward = torch.distributions.Normal(x + eps * score(x), std).log_prob(y).sum(-1)
    backward = torch.distributions.Normal(y + eps * score(y), std).log_prob(x).sum(-1)
    return log_prob(y) - log_prob(x) + backward - forward


def leapfrog(x, v, score, h, L):
    for _ in range(L):                                     # the plain form, 2 L score calls, is right too
        v = v + h / 2 * score(x)
        x = x + h * v
        v = v + h / 2 * score(x)
    return x, v


def worst_ess_per_1000(trajectory, nfe):
    n_chains = trajectory.shape[1]
    ess = effective_sample_size(torch.cat([trajectory, trajectory.square()], -1), monotone=False)
    return ess.min() * 1000 / (n_chains * nfe)             # a 0-d tensor is accepted


RIGHT = {
    "4.4.A1": ula_variance,
    "4.4.A2": ula_tau,
    "4.4.A3": ula_efficiency,
    "4.4.B1": mala_log_accept_ratio,
    "4.4.B2": leapfrog,
    "4.4.C1": worst_ess_per_1000,
}


def test_every_part_has_a_right_answer_here():
    assert set(parts("4.4")) == set(RIGHT)
    assert sum(points for _, points in parts("4.4").values()) == 9


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_right_answers_pass(part):
    r = check(part, RIGHT[part])
    assert r.status == "pass", r.message
    assert r.points == r.max_points > 0


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_unanswered_parts_are_to_do(part):
    def stub(*args):
        raise NotImplementedError

    r = check(part, stub)
    assert r.status == "todo" and r.points == 0 and "还没有作答" in r.message
    assert check(part, ...).status == "todo"


# -- typical mistakes -----------------------------------------------------------------------

def _efficiency_with(step, ess):
    def answer(variances, delta):
        lam_min, lam_max = float(variances.min()), float(variances.max())
        eps = step(lam_min, lam_max, delta)
        return eps, ess(eps, lam_min, lam_max)
    return answer


def _right_step(lam_min, lam_max, delta):
    return 2 * lam_min * delta / (1 + delta)


def _log_q(to, frm, score_at, eps, var):
    return -((to - frm - eps * score_at) ** 2).sum(-1) / (2 * var)


def _mala_variant(var_factor=2.0, swap=False, reverse_score_at_x=False, drift_sign=1.0):
    def answer(x, y, log_prob, score, eps):
        var = var_factor * eps
        fwd = _log_q(y, x, drift_sign * score(x), eps, var)
        bwd = _log_q(x, y, drift_sign * (score(x) if reverse_score_at_x else score(y)), eps, var)
        corr = fwd - bwd if swap else bwd - fwd
        return log_prob(y) - log_prob(x) + corr
    return answer


def _euler(x, v, score, h, L):
    for _ in range(L):
        x, v = x + h * v, v + h * score(x)
    return x, v


def _kick_then_drift(x, v, score, h, L):
    for _ in range(L):
        v = v + h * score(x)
        x = x + h * v
    return x, v


def _drift_then_kick(x, v, score, h, L):
    for _ in range(L):
        x = x + h * v
        v = v + h * score(x)
    return x, v


def _position_verlet(x, v, score, h, L):
    for _ in range(L):
        x = x + h / 2 * v
        v = v + h * score(x)
        x = x + h / 2 * v
    return x, v


def _in_place(x, v, score, h, L):
    for _ in range(L):
        v += h / 2 * score(x)
        x += h * v
        v += h / 2 * score(x)
    return x, v


def _not_reversible(x, v, score, h, L):
    x, v = leapfrog(x, v, score, h, L)
    return x + 0.01 * h, v                                 # a drift that does not undo itself


def _ess_variant(squares=True, monotone=False, per="nfe", chains=True, scale=1000, reduce="min"):
    def answer(trajectory, nfe):
        T, N, _ = trajectory.shape
        stats = torch.cat([trajectory, trajectory**2], -1) if squares else trajectory
        ess = effective_sample_size(stats, monotone=monotone)
        ess = ess.min() if reduce == "min" else ess.mean()
        cost = (N if chains else 1) * (nfe if per == "nfe" else T)
        return scale * float(ess) / cost
    return answer


@pytest.mark.parametrize("part,answer,hint", [
    ("4.4.A1", lambda eps, s2: s2, "目标本身的方差 s2"),
    ("4.4.A1", lambda eps, s2: math.inf if eps >= 2 * s2 else s2 / (2 - eps / s2), "方差是 2 eps 而不是 eps"),
    ("4.4.A1", lambda eps, s2: s2 + eps / 2, "一阶展开"),
    ("4.4.A1", lambda eps, s2: s2 / (1 + eps / (2 * s2)), "ULA 会过冲"),
    ("4.4.A1", lambda eps, s2: 2 * eps / (1 - (1 - eps * s2) ** 2) if abs(1 - eps * s2) < 1 else math.inf,
     "a = 1 - eps / s2"),
    ("4.4.A1", lambda eps, s2: s2 / (1 - eps / (2 * s2)) if eps != 2 * s2 else math.inf, "要返回 math.inf"),
    ("4.4.A1", lambda eps, s2: math.inf if eps > 2 * s2 else (s2 / (1 - eps / (2 * s2)) if eps < 2 * s2 else 1e9),
     "恰好在极限上"),
    ("4.4.A1", lambda eps, s2: "wide", "应当是一个数"),
    ("4.4.A1", lambda eps, s2: float("nan"), "有限"),
    ("4.4.A2", lambda eps, s2: s2 / eps, "只把每个延迟算了一次"),
    ("4.4.A2", lambda eps, s2: 2 * (s2 - eps) / eps, "少了延迟 0 的那一项"),
    ("4.4.A2", lambda eps, s2: eps / (2 * s2 - eps), "每一步的有效样本数"),
    ("4.4.A2", lambda eps, s2: (2 - eps) / eps, "只在 s2 = 1 时成立"),
    ("4.4.A2", lambda eps, s2: (1 + abs(1 - eps / s2)) / (1 - abs(1 - eps / s2)), "antithetic"),
    ("4.4.A2", lambda eps, s2: 2 * s2 / eps, "tau 是"),
    ("4.4.A3", _efficiency_with(lambda lo, hi, d: 2 * lo * d, lambda e, lo, hi: 1.0), "一阶偏差"),
    ("4.4.A3", _efficiency_with(lambda lo, hi, d: 2 * hi * d / (1 + d), lambda e, lo, hi: 1.0), "最宽的轴"),
    ("4.4.A3", _efficiency_with(lambda lo, hi, d: 0.01, lambda e, lo, hi: 1.0), "最大步长是"),
    ("4.4.A3", _efficiency_with(_right_step, lambda e, lo, hi: 1000 / ula_tau(e, lo)), "最窄的轴的 ESS"),
    ("4.4.A3", _efficiency_with(_right_step, lambda e, lo, hi: 1 / ula_tau(e, hi)), "每 1000 次调用"),
    ("4.4.A3", _efficiency_with(_right_step, lambda e, lo, hi: ula_tau(e, hi)), "tau（的倍数）"),
    ("4.4.A3", _efficiency_with(_right_step, lambda e, lo, hi: 1000 * e / hi), "tau = 1 / (1 - a)"),
    ("4.4.A3", _efficiency_with(_right_step, lambda e, lo, hi: 7.0), "步长对了"),
    ("4.4.A3", lambda variances, delta: 0.03, "应当返回一对数"),
    ("4.4.B1", lambda x, y, lp, s, eps: lp(y) - lp(x), "少了提议的修正项"),
    ("4.4.B1", _mala_variant(swap=True), "上下颠倒"),
    ("4.4.B1", lambda *a: -mala_log_accept_ratio(*a), "符号反了"),
    ("4.4.B1", _mala_variant(var_factor=1.0), "方差是 2 eps"),
    ("4.4.B1", _mala_variant(reverse_score_at_x=True), "分数要在 y 处求值"),
    ("4.4.B1", _mala_variant(drift_sign=-1.0), "提议的漂移符号反了"),
    ("4.4.B1", lambda *a: mala_log_accept_ratio(*a).exp(), "比值的对数"),
    ("4.4.B1", lambda *a: mala_log_accept_ratio(*a).clamp_max(0), "不要先取 min(0, .)"),
    ("4.4.B1", lambda *a: mala_log_accept_ratio(*a)[:, None], "应当返回形状 (48,)"),
    ("4.4.B1", lambda *a: mala_log_accept_ratio(*a) + 0.1, "与 float64 参考相差"),
    ("4.4.B2", _in_place, "原地修改"),
    ("4.4.B2", lambda x, v, s, h, L: leapfrog(x, v, lambda z: -s(z), h, L), "力的符号反了"),
    ("4.4.B2", _euler, "显式 Euler"),
    ("4.4.B2", _kick_then_drift, "先整步踢，再整步走"),
    ("4.4.B2", _drift_then_kick, "先整步走，再整步踢"),
    ("4.4.B2", _position_verlet, "位置 Verlet"),
    ("4.4.B2", lambda x, v, s, h, L: leapfrog(x, v, s, h, L - 1), "而不是 L = 15"),
    ("4.4.B2", lambda x, v, s, h, L: leapfrog(x, v, s, h, L)[::-1], "对调"),
    ("4.4.B2", lambda x, v, s, h, L: (leapfrog(x, v, s, h, L)[0], v), "x 对了但 v 不对"),
    ("4.4.B2", lambda x, v, s, h, L: leapfrog(x, v, s, h, L)[0], "应当返回一对张量 (x, v)"),
    ("4.4.B2", _not_reversible, "不是时间可逆的"),
    ("4.4.C1", _ess_variant(squares=False), "漏掉了平方项"),
    ("4.4.C1", _ess_variant(monotone=True), "monotone=False"),
    ("4.4.C1", _ess_variant(per="states"), "而不是分数调用次数"),
    ("4.4.C1", _ess_variant(chains=False), "要除以 N * nfe"),
    ("4.4.C1", _ess_variant(scale=1), "还要乘以 1000"),
    ("4.4.C1", _ess_variant(reduce="mean"), "取最小值"),
    ("4.4.C1", lambda trajectory, nfe: 12.0, "按最差统计量计的每 1000 次调用的 ESS"),
    ("4.4.C1", lambda trajectory, nfe: torch.ones(2), "应当是一个数"),
])
def test_typical_mistakes_get_a_message_that_names_them(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and r.points == 0
    assert hint in r.message, r.message


def test_leapfrog_confirmation_counts_score_calls():
    def cached(x, v, score, h, L):
        s = score(x)
        for _ in range(L):
            v = v + h / 2 * s
            x = x + h * v
            s = score(x)
            v = v + h / 2 * s
        return x, v

    plain, lean = check("4.4.B2", leapfrog), check("4.4.B2", cached)
    assert plain.status == lean.status == "pass"
    assert "调用了 30 次分数" in plain.message and "调用了 16 次分数" in lean.message
    assert "阶数 2.0" in lean.message


def test_student_exceptions_are_reported_with_their_line_without_scorelab_frames():
    def buggy(x, v, score, h, L):
        return x @ v, v  # (N, 2) @ (N, 2): a shape error in the student's own line

    r = check("4.4.B2", buggy)
    assert r.status == "fail" and "RuntimeError" in r.message
    assert "leapfrog(形状为 (32, 2) 的 float64 张量, 形状为 (32, 2) 的 float64 张量" in r.message
    assert "return x @ v, v" in r.message and "scorelab" not in r.message

    r = check("4.4.A1", lambda eps, s2: s2 / (1 - eps / (2 * s2)) if eps < 2 * s2 else 1 / 0)
    assert r.status == "fail" and "ZeroDivisionError" in r.message and "scorelab" not in r.message
    r = check("4.4.B1", mala_log_accept_ratio(torch.zeros(2, 1), torch.zeros(2, 1), lambda z: z.sum(-1),
                                              lambda z: -z, 0.1))  # called instead of passed
    assert r.status == "fail" and "把函数本身传给检查" in r.message


def test_checks_are_deterministic():
    wrong = _mala_variant(var_factor=1.0)
    assert check("4.4.B1", wrong).message == check("4.4.B1", wrong).message
    assert check("4.4.C1", worst_ess_per_1000).message == check("4.4.C1", worst_ess_per_1000).message


def test_summary_and_not_passed_follow_the_latest_checks():
    for part, answer in RIGHT.items():
        check(part, answer)
    assert not_passed("4.4") == []
    assert summary("4.4").splitlines()[-1] == "练习 4.4：9 / 9 分"
    check("4.4.B2", _euler)
    assert not_passed("4.4") == ["4.4.B2"]
    assert "7 / 9 分" in summary("4.4")


# -- adversarial answers ------------------------------------------------------------------------------

def leapfrog_for_2d(x, v, score, h, L):
    """Right, but built on a hard-coded (N, 2) buffer."""
    out = torch.empty(x.shape[0], 2, dtype=x.dtype)
    out[:] = x
    xs, vs = leapfrog(out, v, score, h, L)
    return xs, vs


def mala_with_autograd_score(x, y, log_prob, score, eps):
    """Right, written differently: the score recomputed by autograd of log_prob inside."""
    def grad(z):
        z = z.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob(z).sum(), z)
        return g
    return mala_log_accept_ratio(x, y, log_prob, grad, eps)


def ula_variance_with_tensors(eps, s2):
    """Right, written differently: a 0-d float64 tensor, and inf past the limit."""
    a = torch.tensor(1 - eps / s2, dtype=torch.float64)
    return torch.tensor(math.inf) if a.abs() >= 1 else 2 * eps / (1 - a * a)


@pytest.mark.parametrize("part,answer,hint", [
    ("4.4.B2", leapfrog_for_2d, "(10, 1)"),
    ("4.4.A1", lambda eps, s2: 1 + 0j, "复数"),
    ("4.4.A2", lambda eps, s2: 10**400, "太大"),
    ("4.4.A3", lambda variances, delta: (0.1, "many"), "应当是一个数"),
    ("4.4.C1", lambda trajectory, nfe: effective_sample_size, "忘了调用"),
])
def test_adversarial_wrong_answers_fail_with_a_clear_message(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and hint in r.message, r.message


@pytest.mark.parametrize("part,answer", [("4.4.B1", mala_with_autograd_score), ("4.4.A1", ula_variance_with_tensors)])
def test_right_answers_written_differently_pass(part, answer):
    r = check(part, answer)
    assert r.status == "pass", r.message


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_hidden_variants_pass_right_answers(part):
    from scorelab.exercises import run_check

    for seed in (0, 1):
        status, message = run_check(part, (RIGHT[part],), rng=torch.Generator().manual_seed(seed))
        assert status == "pass", message
