"""Tests of the checks of exercise 4.5 (the unified SDE framework).

For every part: a right answer written here (independently of the solution notebook) passes,
a stub that raises NotImplementedError is "to do", and each typical mistake the check
recognises fails with the message that names it.  A student's exception is reported with
the student's own line and without scorelab's frames.
"""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.exercises import check, not_passed, parts, summary
from scorelab.sdes import SDE

PI = math.pi


# -- right answers ----------------------------------------------------------------------

def _B(t, bmin, bmax):
    return bmin * t + (bmax - bmin) * t**2 / 2


def vp_marginal(t, beta_min, beta_max):
    alpha = torch.exp(-_B(t, beta_min, beta_max) / 2)
    return alpha, torch.sqrt(1 - alpha**2)


def subvp_sigma(t, beta_min, beta_max):
    return 1 - torch.exp(-_B(t, beta_min, beta_max))


def _coef(c, like):
    return c.reshape(-1, *([1] * (like.ndim - 1)))


def reverse_drift(x, t, score, sde):
    f, g = sde.sde(x, t)
    return f - _coef(g**2, x) * score


def ode_drift(x, t, score, sde):
    f, g = sde.sde(x, t)
    return f - 0.5 * _coef(g**2, x) * score


def eps_from_score(score, sigma):
    return -_coef(sigma, score) * score


def score_from_eps(eps, sigma):
    return -eps / _coef(sigma, eps)


def cosine_log_alpha_bar(t, s=0.008):
    return 2 * torch.log(torch.cos(PI / 2 * (t + s) / (1 + s)) / math.cos(PI / 2 * s / (1 + s)))


def cosine_beta(t, s=0.008):
    return PI / (1 + s) * torch.tan(PI / 2 * (t + s) / (1 + s))


class CosineVPSDE(SDE):
    T = 0.9946

    def __init__(self, s=0.008, N=1000):
        super().__init__(N)
        self.s = s

    def drift_coef(self, t):
        return -cosine_beta(t, self.s) / 2

    def diffusion_coef(self, t):
        return cosine_beta(t, self.s).sqrt()

    def alpha(self, t):
        return (cosine_log_alpha_bar(t, self.s) / 2).exp()

    def sigma(self, t):
        return (-torch.expm1(cosine_log_alpha_bar(t, self.s))).sqrt()


def snr_time(sde, snr):
    def log_snr(t):
        tt = torch.tensor([t], dtype=torch.float64)
        return float(2 * (sde.alpha(tt) / sde.sigma(tt)).log())

    lo, hi = 0.0, float(sde.T)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if log_snr(mid) > math.log(snr) else (lo, mid)
    return (lo + hi) / 2


RIGHT = {
    "4.5.A1": (vp_marginal,),
    "4.5.A2": (subvp_sigma,),
    "4.5.A3": (reverse_drift, ode_drift),
    "4.5.A4": (eps_from_score, score_from_eps),
    "4.5.B1": (cosine_log_alpha_bar, cosine_beta),
    "4.5.B2": (CosineVPSDE,),
    "4.5.B3": (snr_time,),
}


def test_every_part_has_a_right_answer_here():
    assert set(parts("4.5")) == set(RIGHT)
    assert sum(points for _, points in parts("4.5").values()) == 9


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_right_answers_pass(part):
    r = check(part, *RIGHT[part])
    assert r.status == "pass", r.message
    assert r.points == r.max_points > 0


def _stub(*args, **kwargs):
    raise NotImplementedError


class StubSDE(SDE):  # the skeleton of the sheet, before the student fills it in
    T = 0.9946

    def __init__(self, s=0.008, N=1000):
        super().__init__(N)
        self.s = s

    def drift_coef(self, t):
        raise NotImplementedError

    def diffusion_coef(self, t):
        raise NotImplementedError

    def alpha(self, t):
        raise NotImplementedError

    def sigma(self, t):
        raise NotImplementedError


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_unanswered_parts_are_to_do(part):
    answers = (StubSDE,) if part == "4.5.B2" else (_stub,) * len(RIGHT[part])
    r = check(part, *answers)
    assert r.status == "todo" and r.points == 0 and "还没有作答" in r.message
    if len(RIGHT[part]) == 2:  # one function written, the other still a stub: still to do
        r = check(part, RIGHT[part][0], _stub)
        assert r.status == "todo", r.message


# -- typical mistakes -------------------------------------------------------------------

def _vp(alpha_of, sigma_of=lambda a: torch.sqrt(1 - a**2)):
    def fn(t, bmin, bmax):
        a = alpha_of(t, bmin, bmax)
        return a, sigma_of(a)
    return fn


def _drift_pair(rev=None, ode=None):
    return rev or reverse_drift, ode or ode_drift


def _f_g2(x, t, sde):
    f, g = sde.sde(x, t)
    return f, _coef(g**2, x)


def _in_place(x, t, score, sde):
    f, g2 = _f_g2(x, t, sde)
    out = f - g2 * score
    x.add_(1.0)  # an in-place write on the caller's tensor
    return out


def _cosine_class(**methods):
    return type("CosineVPSDE", (CosineVPSDE,), methods)


def _beta(t, s):
    return cosine_beta(t, s)


def _ab(t, s):
    return cosine_log_alpha_bar(t, s).exp()


def _bisect_wrong_way(sde, snr):
    lo, hi = 0.0, float(sde.T)
    for _ in range(60):
        mid = (lo + hi) / 2
        tt = torch.tensor([mid], dtype=torch.float64)
        above = float(sde.alpha(tt) ** 2 / sde.sigma(tt) ** 2) > snr
        lo, hi = (lo, mid) if above else (mid, hi)  # keeps the wrong half
    return (lo + hi) / 2


def _solve_ratio(power):
    """snr_time that solves (alpha/sigma)^power = snr instead of (alpha/sigma)^2 = snr."""
    def fn(sde, snr):
        return snr_time(sde, snr ** (2 / power))
    return fn


MISTAKES = [
    # A1
    ("4.5.A1", (_vp(lambda t, a, b: torch.exp(-_B(t, a, b))),), "指数少了 1/2"),
    ("4.5.A1", (_vp(lambda t, a, b: torch.exp(-0.5 * t * (a + (b - a) * t))),), "t^2 项要带 1/2"),
    ("4.5.A1", (_vp(lambda t, a, b: torch.exp(-0.5 * t * (a + b) / 2)),), "线性的"),
    ("4.5.A1", (_vp(lambda t, a, b: torch.exp(-0.5 * (a + (b - a) * t))),), "beta(t) 本身"),
    ("4.5.A1", (_vp(lambda t, a, b: torch.exp(-_B(t, a, b) / 2), lambda a: 1 - a**2),), "方差 1 - alpha^2"),
    ("4.5.A1", (_vp(lambda t, a, b: torch.exp(-_B(t, a, b) / 2), lambda a: torch.sqrt(1 - a)),), "不是 1 - alpha"),
    ("4.5.A1", (lambda t, a, b: vp_marginal(t, a, b)[::-1],), "对调"),
    ("4.5.A1", (lambda t, a, b: vp_marginal(t, a, b)[0],), "一对张量 (alpha, sigma)"),
    # A2
    ("4.5.A2", (lambda t, a, b: vp_marginal(t, a, b)[1],), "VP SDE 的标准差"),
    ("4.5.A2", (lambda t, a, b: subvp_sigma(t, a, b) ** 2,), "方差"),
    ("4.5.A2", (lambda t, a, b: 1 - torch.exp(-2 * _B(t, a, b)),), "exp(-2B)"),
    ("4.5.A2", (lambda t, a, b: 1 - torch.exp(-_B(t, a, b) / 2),), "不是 1 - alpha"),
    # A3
    ("4.5.A3", _drift_pair(rev=lambda x, t, s, sde: _f_g2(x, t, sde)[0] + _f_g2(x, t, sde)[1] * s),
     "分数项的符号反了"),
    ("4.5.A3", _drift_pair(rev=lambda x, t, s, sde: -reverse_drift(x, t, s, sde)), "取了负号"),
    ("4.5.A3", _drift_pair(rev=ode_drift), "概率流 ODE 的漂移"),
    ("4.5.A3", _drift_pair(rev=lambda x, t, s, sde: _f_g2(x, t, sde)[0] - s), "少了因子 g(t)^2"),
    ("4.5.A3", _drift_pair(rev=lambda x, t, s, sde: _f_g2(x, t, sde)[0] - _f_g2(x, t, sde)[1].sqrt() * s),
     "分数乘的是 g(t)"),
    ("4.5.A3", _drift_pair(rev=lambda x, t, s, sde: -_f_g2(x, t, sde)[1] * s), "前向漂移"),
    ("4.5.A3", _drift_pair(rev=lambda x, t, s, sde: -_f_g2(x, t, sde)[0] - _f_g2(x, t, sde)[1] * s), "f 的符号反了"),
    ("4.5.A3", _drift_pair(rev=_in_place), "原地修改"),
    ("4.5.A3", _drift_pair(ode=reverse_drift), "少了 1/2"),
    ("4.5.A3", _drift_pair(ode=lambda x, t, s, sde: -ode_drift(x, t, s, sde)), "取了负号"),
    ("4.5.A3", _drift_pair(ode=lambda x, t, s, sde: -0.5 * _f_g2(x, t, sde)[1] * s), "前向漂移"),
    # A4
    ("4.5.A4", (lambda s, sig: -eps_from_score(s, sig), score_from_eps), "符号反了"),
    ("4.5.A4", (lambda s, sig: -s / _coef(sig, s), score_from_eps), "你除以了 sigma"),
    ("4.5.A4", (lambda s, sig: -_coef(sig, s) ** 2 * s, score_from_eps), "Tweedie"),
    ("4.5.A4", (eps_from_score, lambda e, sig: -e * _coef(sig, e)), "你乘了 sigma"),
    ("4.5.A4", (eps_from_score, lambda e, sig: -e / _coef(sig, e) ** 2), "多除了一个 sigma"),
    # B1
    ("4.5.B1", (lambda t, s: cosine_log_alpha_bar(t, s).exp(), cosine_beta), "alpha_bar 本身"),
    ("4.5.B1", (lambda t, s: 2 * torch.log(torch.cos(PI / 2 * (t + s) / (1 + s))), cosine_beta),
     "alpha_bar(0) 应当等于 1"),
    ("4.5.B1", (lambda t, s: cosine_log_alpha_bar(t, s) / 2, cosine_beta), "cos 的平方"),
    ("4.5.B1", (cosine_log_alpha_bar, lambda t, s: -cosine_beta(t, s)), "符号反了"),
    ("4.5.B1", (cosine_log_alpha_bar, lambda t, s: cosine_beta(t, s) * _ab(t, s)), "-d/dt alpha_bar"),
    ("4.5.B1", (cosine_log_alpha_bar, lambda t, s: cosine_beta(t, s) / 2), "beta 的一半"),
    ("4.5.B1", (cosine_log_alpha_bar, lambda t, s: 2 * torch.tan(PI / 2 * (t + s) / (1 + s))), "链式法则"),
    # B2
    ("4.5.B2", (type("CosineVPSDE", (), {"__init__": lambda self, s=0.008: None}),), "scorelab.sdes.SDE 的实例"),
    ("4.5.B2", (_cosine_class(T=1.0),), "请保持 T"),
    ("4.5.B2", (_cosine_class(alpha=lambda self, t: _ab(t, self.s)),), "alpha 返回的是 alpha_bar"),
    ("4.5.B2", (_cosine_class(sigma=lambda self, t: 1 - _ab(t, self.s)),), "方差 1 - alpha_bar"),
    ("4.5.B2", (_cosine_class(drift_coef=lambda self, t: -_beta(t, self.s)),), "少了 1/2"),
    ("4.5.B2", (_cosine_class(drift_coef=lambda self, t: _beta(t, self.s) / 2),), "符号反了"),
    ("4.5.B2", (_cosine_class(diffusion_coef=lambda self, t: _beta(t, self.s)),), "平方根"),
    ("4.5.B2", (_cosine_class(diffusion_coef=lambda self, t: (_beta(t, self.s) * (1 - _ab(t, self.s) ** 2)).sqrt()),),
     "sub-VP 的扩散"),
    # B3
    ("4.5.B3", (_bisect_wrong_way,), "端点"),
    ("4.5.B3", (_solve_ratio(-1),), "噪声比"),
    ("4.5.B3", (_solve_ratio(1),), "方差之比"),
    ("4.5.B3", (_solve_ratio(-2),), "那是 1/SNR"),
]


@pytest.mark.parametrize("part,answers,hint", MISTAKES, ids=[f"{p}-{h}" for p, _, h in MISTAKES])
def test_typical_mistakes_get_a_message_that_names_them(part, answers, hint):
    r = check(part, *answers)
    assert r.status == "fail" and r.points == 0, r.message
    assert hint in r.message, r.message


def test_student_exceptions_are_reported_with_their_line_and_without_scorelab():
    def reverse_drift_unbroadcast(x, t, score, sde):
        f, g = sde.sde(x, t)
        return f - g**2 * score  # (7,) * (7, 3): the classic broadcasting slip

    r = check("4.5.A3", reverse_drift_unbroadcast, ode_drift)
    assert r.status == "fail"
    assert "reverse_drift(形状为 (7, 3) 的 float64 张量" in r.message and "RuntimeError" in r.message
    assert "return f - g**2 * score" in r.message and "scorelab" not in r.message

    def snr_time_shortcut(sde, snr):
        return float(sde.inverse_noise_ratio(torch.tensor([snr**-0.5], dtype=torch.float64)))

    r = check("4.5.B3", snr_time_shortcut)
    assert r.status == "fail" and "没有 inverse_noise_ratio" in r.message
    assert "return float(sde.inverse_noise_ratio" in r.message

    r = check("4.5.B2", CosineVPSDE(0.008))  # an instance instead of the class
    assert r.status == "fail" and "把函数本身传给检查" in r.message


def test_summary_counts_the_points_of_exercise_4_5():
    for part, answers in RIGHT.items():
        check(part, *answers)
    assert not_passed("4.5") == []
    assert summary("4.5").splitlines()[-1] == "练习 4.5：9 / 9 分"
    check("4.5.A3", reverse_drift, reverse_drift)
    assert not_passed("4.5") == ["4.5.A3"] and "7 / 9 分" in summary("4.5")


# -- adversarial answers ------------------------------------------------------------------------------

def eps_from_score_ranks_2_and_4(score, sigma):
    """Broadcasts by hand for points (N, d) and images (N, C, H, W) only."""
    return -(sigma[:, None, None, None] if score.ndim == 4 else sigma[:, None]) * score


def vp_marginal_nan_at_zero(t, beta_min, beta_max):
    """Right for t > 0, NaN at t = 0 (0/0 in a rewritten exponent)."""
    B = t * (beta_min + (beta_max - beta_min) * t / 2)
    alpha = torch.exp(-(B / t) * t / 2)
    return alpha, torch.sqrt(1 - alpha**2)


def _nan_at_zero_class():
    class NanAtZero(CosineVPSDE):
        def drift_coef(self, t):
            return super().drift_coef(t) * t / t  # NaN at t = 0, where simulate_forward starts

    return NanAtZero


def cosine_beta_by_autograd(t, s=0.008):
    """Right, written differently: beta by autograd of log alpha_bar."""
    t = t.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(cosine_log_alpha_bar(t, s).sum(), t)
    return -g


def cosine_log_alpha_bar_float32(t, s=0.008):
    """Computed in float32 inside: too imprecise for the 1e-8 the sheet's float64 calls for near T."""
    return cosine_log_alpha_bar(t.float(), s).double()


@pytest.mark.parametrize("part,answers,hint", [
    ("4.5.A4", (eps_from_score_ranks_2_and_4, score_from_eps), "形状"),
    ("4.5.A1", (vp_marginal_nan_at_zero,), "t = 0"),
    ("4.5.B2", (_nan_at_zero_class(),), "t = 0"),
    ("4.5.B3", (lambda sde, snr: 1 + 1j,), "复数"),
    ("4.5.B3", (lambda sde, snr: sde.T,), "端点"),
])
def test_adversarial_wrong_answers_fail_with_a_clear_message(part, answers, hint):
    r = check(part, *answers)
    assert r.status == "fail" and hint in r.message, r.message


def test_right_answers_written_differently_pass():
    assert check("4.5.B1", cosine_log_alpha_bar, cosine_beta_by_autograd).status == "pass"


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_hidden_variants_pass_right_answers(part):
    from scorelab.exercises import run_check

    for seed in (0, 1):
        status, message = run_check(part, RIGHT[part], rng=torch.Generator().manual_seed(seed))
        assert status == "pass", message
