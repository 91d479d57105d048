"""Tests of the exercise 4.2 checks (three score-matching objectives).

Right answers are written here independently of the solution notebook; each typical mistake
the checks claim to recognise must fail with its message, including the one whose value is
right but whose gradient is not (a trace computed without create_graph=True).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorelab.exercises import check, parts


def esm(score_fn, x):
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    div = sum(torch.autograd.grad(s[:, j].sum(), x, create_graph=True)[0][:, j] for j in range(x.shape[1]))
    return (div + 0.5 * s.pow(2).sum(-1)).mean()


def dsm(score_fn, x, sigma, eps):
    return 0.5 * (score_fn(x + sigma * eps) + eps / sigma).pow(2).sum(-1).mean()


def ssm(score_fn, x, v):
    x = x.detach().requires_grad_(True)
    sv = (score_fn(x) * v).sum(-1)
    (vjp,) = torch.autograd.grad(sv.sum(), x, create_graph=True)
    return ((vjp * v).sum(-1) + 0.5 * sv**2).mean()


A = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=torch.float64)
SIGMA = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
ESM_VALUE = float(0.5 * (A @ SIGMA @ A.T).trace() + A.trace())

RIGHT = {"4.2.A1": esm, "4.2.A2": dsm, "4.2.A3": ssm, "4.2.B1": -1 / 2.25, "4.2.B2": ESM_VALUE}


def test_parts_and_right_answers():
    assert set(parts("4.2")) == set(RIGHT)
    for part, answer in RIGHT.items():
        r = check(part, answer)
        assert r.status == "pass", (part, r.message)


@pytest.mark.parametrize("part", sorted(RIGHT))
def test_stubs_are_to_do(part):
    def stub(*args):
        raise NotImplementedError

    assert check(part, ... if part.startswith("4.2.B") else stub).status == "todo"


def esm_without_graph(score_fn, x):
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    div = sum(torch.autograd.grad(s[:, j].sum(), x, retain_graph=True)[0][:, j] for j in range(x.shape[1]))
    return (div + 0.5 * s.pow(2).sum(-1)).mean()


def ssm_vr(score_fn, x, v):
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    (vjp,) = torch.autograd.grad((s * v).sum(), x, create_graph=True)
    return ((vjp * v).sum(-1) + 0.5 * s.pow(2).sum(-1)).mean()


@pytest.mark.parametrize("part,answer,hint", [
    ("4.2.A1", esm_without_graph, "create_graph=True"),
    ("4.2.A1", lambda f, x: esm(f, x).detach(), "不依赖网络参数"),
    ("4.2.A1", lambda f, x: esm(f, x) + 0.5 * f(x).pow(2).sum(-1).mean(), "系数 1/2"),
    ("4.2.A1", lambda f, x: esm(f, x) * x.shape[0], "mean"),
    ("4.2.A2", lambda f, x, s, e: 0.5 * (f(x + s * e) - e / s).pow(2).sum(-1).mean(), "符号反了"),
    ("4.2.A2", lambda f, x, s, e: 0.5 * (f(x + s * e) + e).pow(2).sum(-1).mean(), "要除以 sigma"),
    ("4.2.A2", lambda f, x, s, e: 0.5 * (f(x) + e / s).pow(2).sum(-1).mean(), "加噪后的点"),
    ("4.2.A3", ssm_vr, "方差缩减"),
    ("4.2.A3", lambda f, x, v: ssm(f, x, v) + 0.5 * (f(x) * v).sum(-1).pow(2).mean(), "系数 1/2"),
    ("4.2.B1", -0.5, "加噪数据"),
    ("4.2.B1", -4.0, "s = 0"),
    ("4.2.B1", 1 / 2.25, "符号反了"),
    ("4.2.B2", float((A @ SIGMA @ A.T).trace() + A.trace()), "系数 1/2"),
    ("4.2.B2", float(0.5 * (A @ SIGMA @ A.T).trace() - A.trace()), "+ 号"),
    ("4.2.B2", float(0.5 * (A * A).sum() + A.trace()), "协方差"),
])
def test_typical_mistakes_are_named(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and hint in r.message, r.message


def test_a_crash_in_the_student_loss_is_reported_with_the_student_line():
    def broken(score_fn, x, sigma, eps):
        return score_fn(x + sigma * eps) @ eps  # (N, d) @ (N, d): a shape error

    r = check("4.2.A2", broken)
    assert r.status == "fail" and "RuntimeError" in r.message and "@ eps" in r.message
    assert "scorelab" not in r.message
    r = check("4.2.A2", lambda f, x, s, e: torch.ones(3))
    assert r.status == "fail" and "标量" in r.message


# -- adversarial answers: plausible but wrong, right but written differently -----------------------

def esm_two_dims_only(score_fn, x):
    """The trace written out for d = 2: right on a 2-D batch only."""
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    d0 = torch.autograd.grad(s[:, 0].sum(), x, create_graph=True)[0][:, 0]
    d1 = torch.autograd.grad(s[:, 1].sum(), x, create_graph=True)[0][:, 1]
    return (d0 + d1 + 0.5 * s.pow(2).sum(-1)).mean()


def esm_calls_backward(score_fn, x):
    loss = esm(score_fn, x)
    loss.backward()  # frees the graph the check needs
    return loss


def esm_with_jacobian(score_fn, x):
    """Right, written differently: the full Jacobian per point with torch.func."""
    jac = torch.func.vmap(torch.func.jacrev(lambda p: score_fn(p[None])[0]))(x)
    s = score_fn(x)
    return (jac.diagonal(dim1=-2, dim2=-1).sum(-1) + 0.5 * s.pow(2).sum(-1)).mean()


def dsm_in_float32(score_fn, x, sigma, eps):
    """Right, written differently: the residual formed in float64 and averaged per coordinate sum."""
    r = score_fn(x + sigma * eps) + eps / sigma
    return 0.5 * torch.einsum("nd,nd->n", r, r).mean()


def dsm_mean_over_coordinates(score_fn, x, sigma, eps):
    return 0.5 * (score_fn(x + sigma * eps) + eps / sigma).pow(2).mean()


def ssm_steps_optimizer(score_fn, x, v):
    loss = ssm(score_fn, x, v)
    with torch.no_grad():
        for p in score_fn.parameters():
            p.add_(0.0 * p + 1e-3)  # "one step of training" inside the loss
    return loss


@pytest.mark.parametrize("part,answer,hint", [
    ("4.2.A1", esm_two_dims_only, "(64, 1)"),  # right in d = 2 only; the check also tries d = 1 and 3
    ("4.2.A1", esm_calls_backward, ".backward()"),
    ("4.2.A2", dsm_mean_over_coordinates, "对坐标也取了平均"),
    ("4.2.A3", ssm_steps_optimizer, "修改了网络的参数"),
    ("4.2.A1", lambda f, x: torch.tensor(1.0 + 2.0j), "实数"),
    ("4.2.B1", 10**400, "太大"),
    ("4.2.B1", complex(-0.444, 1.0), "复数"),
    ("4.2.B2", float("nan"), "有限"),
    ("4.2.B2", torch.ones(2), "形状"),
])
def test_adversarial_wrong_answers_fail_with_a_clear_message(part, answer, hint):
    r = check(part, answer)
    assert r.status == "fail" and hint in r.message, r.message
    assert "Traceback" not in r.message


@pytest.mark.parametrize("part,answer", [
    ("4.2.A1", esm_with_jacobian),
    ("4.2.A2", dsm_in_float32),
    ("4.2.B1", torch.tensor(-1 / 2.25)),
    ("4.2.B2", np.float64(ESM_VALUE)),
])
def test_right_answers_written_differently_pass(part, answer):
    r = check(part, answer)
    assert r.status == "pass", r.message


@pytest.mark.parametrize("part", ["4.2.A1", "4.2.A2", "4.2.A3"])
def test_hidden_variants_pass_right_answers_and_are_reproducible(part):
    from scorelab.exercises import run_check

    for seed in (0, 1, 2):
        assert run_check(part, (RIGHT[part],), rng=torch.Generator().manual_seed(seed))[0] == "pass"
