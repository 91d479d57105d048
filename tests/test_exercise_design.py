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
    (lambda n, g: make_series(n, g, start_std=1.0), "not stationary"),
    (lambda n, g: make_series(n, g, phi=-PHI), "anti-correlated"),
    (lambda n, g: make_series(n, g, phi=0.0), "uncorrelated"),
    (lambda n, g: make_series(n, torch.Generator().manual_seed(0)), "generator it is given"),
    (lambda n, g: make_series(n, g)[:, :8], "shape (5, 16)"),
])
def test_series_generator_mistakes(answer, hint):
    r = check("design.M1", answer)
    assert r.status == "fail" and hint in r.message, r.message


def test_exact_score_mistakes():
    assert "inverse" in check("design.M2", lambda x: -x @ covariance()).message
    assert "sign is flipped" in check("design.M2", lambda x: -series_score(x)).message


def test_model_and_samples_mistakes():
    r = check("design.M3", oracle(1.3))
    assert r.status == "fail" and "t = 0.1" in r.message and "need < 0.05" in r.message
    g = torch.Generator().manual_seed(6)
    exact = make_series(4000, g)
    r = check("design.M4", 0.7 * exact)
    assert r.status == "fail" and "variance is too small" in r.message
    shuffled = torch.randn(4000, L, generator=g) / math.sqrt(1 - PHI**2)  # right variance, no memory
    r = check("design.M4", shuffled)
    assert r.status == "fail" and "temporal correlation" in r.message
    assert "at least 2000" in check("design.M4", exact[:100]).message
    assert "shape (N, 16)" in check("design.M4", exact[:, :4]).message


def test_unanswered_milestones_are_to_do():
    def stub(*args):
        raise NotImplementedError

    assert check("design.M1", stub).status == "todo"
    assert check("design.M3", ...).status == "todo" and check("design.M4", ...).status == "todo"
