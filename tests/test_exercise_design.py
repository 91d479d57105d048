"""Tests of the closing design project's checks (AR(1) time series, milestones M1-M4).

M3 and M4 are graded against the exact score and the exact covariance; here an oracle model
(the exact time-conditional score) and exact samples must pass, and models or samples that
are off in the ways the messages describe must fail with those messages.
"""

from __future__ import annotations

import math

import pytest
import torch

import scorelab as sl
from scorelab.exercises import check, parts
from scorelab.sdes import VPSDE, exact_score_fn

L, PHI = 16, 0.8


def make_series(n, generator, phi=PHI, start_std=None):
    start_std = 1 / math.sqrt(1 - phi**2) if start_std is None else start_std
    x = torch.empty(n, L)
    x[:, 0] = start_std * torch.randn(n, generator=generator)
    z = torch.randn(n, L, generator=generator)
    for k in range(1, L):
        x[:, k] = phi * x[:, k - 1] + z[:, k]
    return x


def covariance():
    k = torch.arange(L, dtype=torch.float64)
    return PHI ** (k[:, None] - k[None, :]).abs() / (1 - PHI**2)


def series_score(x):
    return -torch.linalg.solve(covariance(), x.double().T).T


def oracle(scale=1.0):
    exact = exact_score_fn(VPSDE(), sl.Gaussian(torch.zeros(L, dtype=torch.float64), covariance()))
    return lambda x, t: scale * exact(x.double(), t.double()).float()


def test_parts_and_right_answers():
    assert set(parts("design")) == {"design.M1", "design.M2", "design.M3", "design.M4"}
    for part, answer in [("design.M1", make_series), ("design.M2", series_score), ("design.M3", oracle()),
                         ("design.M4", make_series(4000, torch.Generator().manual_seed(5)))]:
        r = check(part, answer)
        assert r.status == "pass", (part, r.message)


@pytest.mark.parametrize("answer,hint", [
    (lambda n, g: make_series(n, g, start_std=1.0), "不平稳"),
    (lambda n, g: make_series(n, g, phi=-PHI), "负相关"),
    (lambda n, g: make_series(n, g, phi=0.0), "不相关"),
    (lambda n, g: make_series(n, torch.Generator().manual_seed(0)), "传入的 generator"),
    (lambda n, g: make_series(n, g)[:, :8], "形状 (5, 16)"),
])
def test_series_generator_mistakes(answer, hint):
    r = check("design.M1", answer)
    assert r.status == "fail" and hint in r.message, r.message


def test_exact_score_mistakes():
    assert "逆矩阵" in check("design.M2", lambda x: -x @ covariance()).message
    assert "符号反了" in check("design.M2", lambda x: -series_score(x)).message


def test_model_and_samples_mistakes():
    r = check("design.M3", oracle(1.3))
    assert r.status == "fail" and "t = 0.1" in r.message and "小于 0.05" in r.message
    g = torch.Generator().manual_seed(6)
    exact = make_series(4000, g)
    r = check("design.M4", 0.7 * exact)
    assert r.status == "fail" and "方差太小" in r.message
    shuffled = torch.randn(4000, L, generator=g) / math.sqrt(1 - PHI**2)  # right variance, no memory
    r = check("design.M4", shuffled)
    assert r.status == "fail" and "时间上的相关" in r.message
    assert "至少生成 2000" in check("design.M4", exact[:100]).message
    assert "(N, 16)" in check("design.M4", exact[:, :4]).message


def test_unanswered_milestones_are_to_do():
    def stub(*args):
        raise NotImplementedError

    assert check("design.M1", stub).status == "todo"
    assert check("design.M3", ...).status == "todo" and check("design.M4", ...).status == "todo"


# -- adversarial answers ------------------------------------------------------------------------------

class EnergyModel(torch.nn.Module):
    """Right, written differently: the score as the autograd gradient of a quadratic energy."""

    def __init__(self):
        super().__init__()
        self.exact = oracle()

    def forward(self, x, t):
        x = x.detach().double().requires_grad_(True)
        target = self.exact(x.detach().float(), t).double()
        energy = -(target * x).sum() + 0.0 * x.sum()  # E with grad_x E = -score
        (g,) = torch.autograd.grad(-energy, x)
        return g.float()


def test_a_score_model_that_uses_autograd_passes():
    r = check("design.M3", EnergyModel())
    assert r.status == "pass", r.message


def test_series_in_float64_fail_the_required_dtype():
    r = check("design.M1", lambda n, g: make_series(n, g).double())
    assert r.status == "fail" and "float32" in r.message


def test_samples_off_in_the_mean_fail():
    exact = make_series(4000, torch.Generator().manual_seed(5))
    r = check("design.M4", exact + 0.3)  # covariance and lag-1 correlation are blind to a shift
    assert r.status == "fail" and "均值" in r.message


def test_nan_everywhere_does_not_slip_through_a_comparison():
    r = check("design.M1", lambda n, g: torch.full((n, L), float("nan")) + 0 * torch.randn(n, L, generator=g))
    assert r.status == "fail" and "NaN" in r.message


def test_hidden_variants_pass_right_answers():
    from scorelab.exercises import run_check

    for part, answer in (("design.M1", make_series), ("design.M2", series_score), ("design.M3", oracle())):
        status, message = run_check(part, (answer,), rng=torch.Generator().manual_seed(3))
        assert status == "pass", (part, message)
