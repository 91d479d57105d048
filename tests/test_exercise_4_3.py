"""Tests of the checks of exercise 4.3 (a basic NCSN: schedule, loss, step sizes, sampler, mode weight).

References: for each part a right answer written here (independently of the solution
notebook) must pass, an unanswered stub must be "to do", and each typical mistake the check
recognises must fail with the message that names it.  The conventions of the right answers are
tied to scorelab's tested code: the loss equals ``scorelab.losses.ncsn_loss`` on the levels and
noise that ``ncsn_loss`` itself drew (read back through a recording score function), and the
sampler is run against ``sample_annealed_langevin`` by the check.  A student's exception is
reported with the student's line, never with scorelab's frames.
"""

from __future__ import annotations

import math

import pytest
import torch

from scorelab.distributions import GaussianMixture, noised_score
from scorelab.exercises import check, not_passed, parts, summary
from scorelab.losses import ncsn_loss
from scorelab.metrics import mode_weights
from scorelab.samplers import geometric_sigmas, sample_annealed_langevin
from scorelab.utils import make_generator

F64 = torch.float64


# -- right answers, written independently of the solution notebook -------------------------

def my_geometric_sigmas(sigma_max, sigma_min, L):
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), L, dtype=F64)


def ncsn_loss_given_noise(score_fn, x, sigmas, idx, z):
    sigma = sigmas[idx].unsqueeze(-1)
    residual = sigma * score_fn(x + sigma * z, sigmas[idx]) + z
    return 0.5 * residual.pow(2).sum(dim=1).mean()


def annealed_step_sizes(eps, sigmas):
    return eps * (sigmas / sigmas[-1]) ** 2


def annealed_langevin(score_fn, x0, sigmas, eps, noise):
    x = x0.clone()
    for level, (sigma, alpha) in enumerate(zip(sigmas, annealed_step_sizes(eps, sigmas), strict=True)):
        for z in noise[level]:
            x = x + alpha * score_fn(x, sigma) + (2 * alpha) ** 0.5 * z
    return x


def three_modes():
    return GaussianMixture(torch.tensor([0.6, 0.3, 0.1]), torch.tensor([[5.0, 5.0], [5.0, -5.0], [-5.0, 0.0]]),
                           torch.ones(3))


@pytest.fixture(scope="module")
def small_mode_share():
    """B1 done right: scorelab's annealed sampler with exact scores, 2,000 uniform starts."""
    mix = three_modes()
    x0 = torch.rand(2000, 2, generator=make_generator(0)) * 20 - 10
    x = sample_annealed_langevin(noised_score(mix), x0, geometric_sigmas(20.0, 1.0, 10), eps=0.1,
                                 n_steps_each=100, generator=make_generator(1))
    return float(mode_weights(x, mix)[2]), len(x0)


FUNCTIONS = {
    "4.3.A1": my_geometric_sigmas,
    "4.3.A2": ncsn_loss_given_noise,
    "4.3.A3": annealed_step_sizes,
    "4.3.A4": annealed_langevin,
}


def test_every_part_has_a_right_answer_here():
    assert set(parts("4.3")) == set(FUNCTIONS) | {"4.3.B1"}


@pytest.mark.parametrize("part", sorted(FUNCTIONS))
def test_right_answers_pass(part):
    r = check(part, FUNCTIONS[part])
    assert r.status == "pass", r.message
    assert r.points == r.max_points > 0


def test_right_mode_weight_passes(small_mode_share):
    w, n = small_mode_share
    r = check("4.3.B1", w, n)
    assert r.status == "pass", r.message
    assert r.points == r.max_points == 2


def test_the_loss_convention_is_scorelabs_ncsn_loss():
    """On the levels and noise that ncsn_loss draws, the right answer gives ncsn_loss's value."""
    g = make_generator(7)
    x = torch.randn(128, 3, generator=g, dtype=F64)
    sigmas = geometric_sigmas(5.0, 0.1, 6, dtype=F64)
    seen = {}

    def recording_score(x_noisy, sigma):
        seen["x_noisy"], seen["sigma"] = x_noisy, sigma
        return -x_noisy / (1 + sigma[:, None] ** 2)

    value = ncsn_loss(recording_score, x, sigmas, generator=make_generator(8))
    sigma = seen["sigma"]
    idx = (sigma[:, None] == sigmas[None, :]).double().argmax(-1)
    assert torch.equal(sigmas[idx], sigma)
    z = (seen["x_noisy"] - x) / sigma[:, None]
    mine = ncsn_loss_given_noise(lambda y, s: -y / (1 + s[:, None] ** 2), x, sigmas, idx, z)
    assert math.isclose(float(mine), float(value), rel_tol=1e-10)


def _stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("part", sorted(parts("4.3")))
def test_unanswered_parts_are_to_do(part):
    r = check(part, ..., 2000) if part == "4.3.B1" else check(part, _stub)
    assert r.status == "todo" and r.points == 0 and "还没有作答" in r.message


# -- typical mistakes ----------------------------------------------------------------------

def _loss_with(residual, reduce=lambda r: 0.5 * r.sum(-1).mean(), at=lambda x, s, z: x + s * z):
    def loss(score_fn, x, sigmas, idx, z):
        s = sigmas[idx][:, None]
        return reduce(residual(s, score_fn(at(x, s, z), sigmas[idx]), z))
    return loss


def _sampler_with(alpha=annealed_step_sizes, noise_scale=lambda a: (2 * a) ** 0.5, drift=1.0,
                  levels=lambda sigmas: sigmas, score_sigma=lambda sigma, sigmas: sigma, denoise=False):
    def sampler(score_fn, x0, sigmas, eps, noise):
        x = x0.clone()
        lv = levels(sigmas)
        for i, (sigma, a) in enumerate(zip(lv, alpha(eps, lv), strict=True)):
            for z in noise[i]:
                x = x + drift * a * score_fn(x, score_sigma(sigma, sigmas)) + noise_scale(a) * z
        if denoise:
            x = x + sigmas[-1] ** 2 * score_fn(x, sigmas[-1])
        return x
    return sampler


def _in_place(score_fn, x0, sigmas, eps, noise):
    x = x0
    alphas = annealed_step_sizes(eps, sigmas)
    for i, sigma in enumerate(sigmas):
        for z in noise[i]:
            x += alphas[i] * score_fn(x, sigma) + (2 * alphas[i]) ** 0.5 * z
    return x


def _one_step_short(score_fn, x0, sigmas, eps, noise):
    return annealed_langevin(score_fn, x0, sigmas, eps, noise[:, :-1])


SQ = lambda s, sc, z: (s * sc + z) ** 2  # noqa: E731  (the right per-coordinate residual)


@pytest.mark.parametrize("part,answer,hint", [
    ("4.3.A1", lambda a, b, L: my_geometric_sigmas(a, b, L).flip(0), "顺序反了"),
    ("4.3.A1", lambda a, b, L: torch.linspace(a, b, L, dtype=F64), "线性"),
    ("4.3.A1", lambda a, b, L: my_geometric_sigmas(a, b, L + 1), "多了一级"),
    ("4.3.A1", lambda a, b, L: my_geometric_sigmas(a, b, L - 1) if L > 2 else torch.ones(1), "少了一级"),
    ("4.3.A1", lambda a, b, L: a * (b / a) ** (torch.arange(1, L + 1, dtype=F64) / L), "端点不对"),
    ("4.3.A1", lambda a, b, L: a * (b / a) ** (torch.arange(L, dtype=F64) / L), "(i - 1)/(L - 1)"),
    ("4.3.A1", lambda a, b, L: my_geometric_sigmas(a, b, L).tolist(), "torch.Tensor"),
    ("4.3.A2", _loss_with(lambda s, sc, z: (sc + z / s) ** 2), "少了权重 lambda(sigma) = sigma^2"),
    ("4.3.A2", _loss_with(lambda s, sc, z: s * (sc + z / s) ** 2), "权重是 sigma^2，不是 sigma"),
    ("4.3.A2", _loss_with(lambda s, sc, z: (s * sc - z) ** 2), "目标的符号反了"),
    ("4.3.A2", _loss_with(SQ, reduce=lambda r: 0.5 * r.mean()), "对坐标也取了平均"),
    ("4.3.A2", _loss_with(SQ, reduce=lambda r: r.sum(-1).mean()), "少了系数 1/2"),
    ("4.3.A2", _loss_with(SQ, reduce=lambda r: 0.5 * r.sum()), "对批量求了和"),
    ("4.3.A2", _loss_with(SQ, reduce=lambda r: 0.5 * r.sum(-1)), "每个样本一个值"),
    ("4.3.A2", _loss_with(SQ, at=lambda x, s, z: x), "加噪后的点"),
    ("4.3.A2", _loss_with(SQ, at=lambda x, s, z: x + s**2 * z), "不是方差"),
    ("4.3.A2", lambda *a: ncsn_loss_given_noise(*a).detach(), "不依赖模型的参数"),
    ("4.3.A2", lambda *a: ncsn_loss_given_noise(*a).item(), "而不是 Python 数"),
    ("4.3.A3", lambda eps, s: eps * s[-1] ** 2 / s**2, "比值倒过来了"),
    ("4.3.A3", lambda eps, s: eps * s / s[-1], "而不是 sigma_i"),
    ("4.3.A3", lambda eps, s: eps * s**2, "还要除以 sigma_L^2"),
    ("4.3.A3", lambda eps, s: eps * s**2 / s[0] ** 2, "而不是最大的"),
    ("4.3.A3", lambda eps, s: torch.full_like(s, eps), "同一个步长"),
    ("4.3.A3", lambda eps, s: annealed_step_sizes(eps, s).flip(0), "顺序反了"),
    ("4.3.A3", lambda eps, s: annealed_step_sizes(eps, s)[:, None], "形状 (5,)"),
    ("4.3.A4", _sampler_with(noise_scale=lambda a: a**0.5), "噪声项是 sqrt(2 alpha_i) z，不是 sqrt(alpha_i) z"),
    ("4.3.A4", _sampler_with(drift=-1.0), "漂移的符号反了"),
    ("4.3.A4", _sampler_with(alpha=lambda eps, s: torch.full_like(s, eps)), "同一个步长 eps"),
    ("4.3.A4", _sampler_with(alpha=lambda eps, s: eps * s[-1] ** 2 / s**2), "步长的比值倒过来了"),
    ("4.3.A4", _sampler_with(alpha=lambda eps, s: eps * s / s[-1]), "步长用了 sigma_i 而不是 sigma_i^2"),
    ("4.3.A4", _sampler_with(levels=lambda s: s.flip(0)), "级别的顺序反了"),
    ("4.3.A4", _sampler_with(levels=lambda s: s.flip(0), alpha=lambda eps, s: eps * s**2 / s.min() ** 2),
     "级别的顺序反了"),
    ("4.3.A4", _sampler_with(score_sigma=lambda sigma, s: s[-1]), "总是在最后一级求值"),
    ("4.3.A4", _sampler_with(score_sigma=lambda sigma, s: s[0]), "总是在第一级求值"),
    ("4.3.A4", _sampler_with(denoise=True), "Tweedie"),
    ("4.3.A4", _in_place, "原地修改了 x0"),
    ("4.3.A4", _one_step_short, "与使用同样噪声的退火 Langevin 相差"),
    ("4.3.B1", (0.43, 2000), "普通 Langevin"),
    ("4.3.B1", (0.3, 2000), "中等峰"),
    ("4.3.B1", (0.6, 2000), "重峰"),
    ("4.3.B1", (10.0, 2000), "百分数"),
    ("4.3.B1", (200, 2000), "粒子个数"),
    ("4.3.B1", (-0.1, 2000), "0 到 1 之间"),
    ("4.3.B1", (0.2, 2000), "二项标准误差"),
    ("4.3.B1", (0.1, 100), "至少用 500"),
    ("4.3.B1", (0.1, 2000.5), "正整数"),
    ("4.3.B1", ("about 0.1", 2000), "应当是一个数"),
])
def test_typical_mistakes_get_a_message_that_names_them(part, answer, hint):
    r = check(part, *answer) if isinstance(answer, tuple) else check(part, answer)
    assert r.status == "fail" and r.points == 0
    assert hint in r.message, r.message


def test_b1_tolerance_follows_the_number_of_particles():
    # 0.125 is 2.6 standard errors from 0.1 with 2,000 particles (passes), 5.3 with 8,000 (fails).
    assert check("4.3.B1", 0.125, 2000).status == "pass"
    r = check("4.3.B1", 0.125, 8000)
    assert r.status == "fail" and "二项标准误差" in r.message


def test_student_exceptions_are_reported_with_their_line_and_without_scorelab_frames():
    def buggy_sampler(score_fn, x0, sigmas, eps, noise):
        x = x0.clone()
        for i, sigma in enumerate(sigmas):
            for t in range(noise.shape[1]):
                x = x + eps * score_fn(x, sigma) + noise[t, i]  # indices swapped: (T, L) instead of (L, T)
        return x

    r = check("4.3.A4", buggy_sampler)
    assert r.status == "fail" and "IndexError" in r.message
    assert "annealed_langevin(" in r.message and "形状为 (5, 6, 300, 2) 的 float64 张量" in r.message
    assert "noise[t, i]" in r.message and "scorelab" not in r.message
    r = check("4.3.A3", annealed_step_sizes(0.1, torch.ones(3)))  # called instead of passed
    assert r.status == "fail" and "把函数本身传给检查" in r.message


def test_summary_counts_the_points_of_exercise_4_3(small_mode_share):
    for part, fn in FUNCTIONS.items():
        check(part, fn)
    check("4.3.B1", *small_mode_share)
    assert not_passed("4.3") == []
    assert summary("4.3").splitlines()[-1] == "练习 4.3：8 / 8 分"
    check("4.3.B1", 0.43, 2000)
    assert not_passed("4.3") == ["4.3.B1"]
    assert "6 / 8 分" in summary("4.3")


# -- adversarial answers ------------------------------------------------------------------------------

def ncsn_loss_for_3d(score_fn, x, sigmas, idx, z):
    """Written out for the three coordinates of the notebook's batch."""
    sigma = sigmas[idx]
    xt = x + sigma[:, None] * z
    s = score_fn(xt, sigma)
    r = [(sigma * s[:, j] + z[:, j]) ** 2 for j in range(3)]
    return 0.5 * (r[0] + r[1] + r[2]).mean()


def ncsn_loss_with_backward(score_fn, x, sigmas, idx, z):
    loss = ncsn_loss_given_noise(score_fn, x, sigmas, idx, z)
    loss.backward()
    return loss


def sampler_for_2d(score_fn, x0, sigmas, eps, noise):
    """Right in d = 2 only: the noise reshaped with a hard-coded 2."""
    x = x0.clone()
    for i, (sigma, a) in enumerate(zip(sigmas, annealed_step_sizes(eps, sigmas), strict=True)):
        for z in noise[i].reshape(-1, x0.shape[0], 2):
            x = x + a * score_fn(x, sigma) + (2 * a) ** 0.5 * z
    return x


def step_sizes_in_a_loop(eps, sigmas):
    """Right, written differently: a Python loop and a float64 list."""
    return torch.tensor([eps * float(s) ** 2 / float(sigmas[-1]) ** 2 for s in sigmas], dtype=torch.float64)


def geometric_in_float32(sigma_max, sigma_min, L):
    """Right, written differently: float32 from exp of a linspace of logs."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), L))


@pytest.mark.parametrize("part,answer,hint", [
    ("4.3.A2", ncsn_loss_for_3d, "IndexError"),
    ("4.3.A2", ncsn_loss_with_backward, ".backward()"),
    ("4.3.A4", sampler_for_2d, "(20, 3)"),
    ("4.3.B1", (float("nan"), 2000), "有限"),
    ("4.3.B1", (0.1, True), "布尔"),
])
def test_adversarial_wrong_answers_fail_with_a_clear_message(part, answer, hint):
    r = check(part, *answer) if isinstance(answer, tuple) else check(part, answer)
    assert r.status == "fail" and hint in r.message, r.message


@pytest.mark.parametrize("part,answer", [("4.3.A1", geometric_in_float32), ("4.3.A3", step_sizes_in_a_loop)])
def test_right_answers_written_differently_pass(part, answer):
    assert check(part, answer).status == "pass"


@pytest.mark.parametrize("part", sorted(FUNCTIONS))
def test_hidden_variants_pass_right_answers(part):
    from scorelab.exercises import run_check

    for seed in (0, 1):
        status, message = run_check(part, (FUNCTIONS[part],), rng=torch.Generator().manual_seed(seed))
        assert status == "pass", message
