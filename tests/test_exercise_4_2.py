"""Tests of the exercise 4.2 checks (three score-matching objectives).

Right answers are written here independently of the solution notebook; each typical mistake
the checks claim to recognise must fail with its message, including the one whose value is
right but whose gradient is not (a trace computed without create_graph=True).
"""

from __future__ import annotations

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
    ("4.2.A1", lambda f, x: esm(f, x).detach(), "does not depend on the network's parameters"),
    ("4.2.A1", lambda f, x: esm(f, x) + 0.5 * f(x).pow(2).sum(-1).mean(), "factor 1/2"),
    ("4.2.A1", lambda f, x: esm(f, x) * x.shape[0], "mean"),
    ("4.2.A2", lambda f, x, s, e: 0.5 * (f(x + s * e) - e / s).pow(2).sum(-1).mean(), "wrong sign"),
    ("4.2.A2", lambda f, x, s, e: 0.5 * (f(x + s * e) + e).pow(2).sum(-1).mean(), "divide by sigma"),
    ("4.2.A2", lambda f, x, s, e: 0.5 * (f(x) + e / s).pow(2).sum(-1).mean(), "noisy point"),
    ("4.2.A3", ssm_vr, "variance-reduced"),
    ("4.2.A3", lambda f, x, v: ssm(f, x, v) + 0.5 * (f(x) * v).sum(-1).pow(2).mean(), "factor 1/2"),
    ("4.2.B1", -0.5, "noised data"),
    ("4.2.B1", -4.0, "s = 0"),
    ("4.2.B1", 1 / 2.25, "sign is flipped"),
    ("4.2.B2", float((A @ SIGMA @ A.T).trace() + A.trace()), "factor 1/2"),
    ("4.2.B2", float(0.5 * (A @ SIGMA @ A.T).trace() - A.trace()), "+ sign"),
    ("4.2.B2", float(0.5 * (A * A).sum() + A.trace()), "covariance"),
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
    assert r.status == "fail" and "scalar" in r.message
