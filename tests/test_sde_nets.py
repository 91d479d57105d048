"""Tests for scorelab.sde_nets (section 4.5): the time-conditional net and the SDE's DSM loss.

References used:
- the closed-form minimum of the loss for Gaussian data N(0, c I): with the exact score,
  ``1/2 E|sigma s + eps|^2 = d/2 E_t[alpha^2 c / (alpha^2 c + sigma^2)]`` (the part of the noise
  that x_t cannot reveal), integrated over t by quadrature;
- the exact score ``exact_score_fn`` for the trained net.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import gen  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.losses import sde_score_matching_loss
from scorelab.sde_nets import TimeConditionalScoreNet
from scorelab.sdes import VESDE, VPSDE, SubVPSDE, exact_score_fn

torch.set_num_threads(1)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(0.01, 20.0)], ids=["vp", "subvp", "ve"])
def test_loss_of_exact_score_is_the_closed_form_minimum(sde):
    c, d, t_eps = 0.5, 2, 1e-5
    dist = sl.Gaussian(torch.zeros(d), c * torch.ones(d))
    score = exact_score_fn(sde, dist)
    n = 200_000
    x0 = dist.sample(n, generator=gen(0)).double()
    # per-example losses, to get the Monte-Carlo standard error
    g = gen(1)  # the loss draws t, then the noise, from one generator
    t = t_eps + (sde.T - t_eps) * torch.rand(n, generator=g, dtype=torch.float64)
    xt, eps = sde.perturb(x0, t, generator=g)
    per = 0.5 * ((sde.sigma(t)[:, None] * score(xt, t) + eps) ** 2).sum(-1)
    loss = sde_score_matching_loss(score, x0, sde, t_eps=t_eps, generator=gen(1))
    torch.testing.assert_close(loss, per.mean())  # same draws, same number
    grid = torch.linspace(t_eps, sde.T, 20001, dtype=torch.float64)
    a2c = sde.alpha(grid) ** 2 * c
    integrand = 0.5 * d * a2c / (a2c + sde.sigma(grid) ** 2)
    closed = float(torch.trapezoid(integrand, grid)) / (sde.T - t_eps)
    se = float(per.std()) / math.sqrt(n)
    assert abs(float(loss) - closed) < 4 * se


def test_scaled_exact_score_has_a_larger_loss():
    sde, dist = VPSDE(), sl.eight_gaussians()
    score = exact_score_fn(sde, dist)
    x0 = dist.sample(20000, generator=gen(3)).double()
    base = float(sde_score_matching_loss(score, x0, sde, generator=gen(4)))
    for k in (0.8, 1.2):
        worse = float(sde_score_matching_loss(lambda x, t, k=k: k * score(x, t), x0, sde, generator=gen(4)))
        assert worse > base


def test_net_shapes_parametrisation_and_seed():
    sde = VESDE(0.01, 20.0)
    net = TimeConditionalScoreNet(sde, dim=3, hidden=16, depth=2, seed=1)
    x = torch.randn(7, 3, generator=gen(5))
    t = torch.rand(7, generator=gen(6)) * 0.9 + 0.05
    s = net(x, t)
    assert s.shape == (7, 3)
    torch.testing.assert_close(s, -net.eps(x, t) / sde.sigma(t)[:, None])
    torch.testing.assert_close(net(x, 0.3), net(x, torch.full((7,), 0.3)))
    same = TimeConditionalScoreNet(sde, dim=3, hidden=16, depth=2, seed=1)
    torch.testing.assert_close(same(x, t), s)
    other = TimeConditionalScoreNet(sde, dim=3, hidden=16, depth=2, seed=2)
    assert not torch.allclose(other(x, t), s)


def test_training_learns_the_exact_score():
    from scorelab.training import train

    sde = VPSDE()
    dist = sl.Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    net = TimeConditionalScoreNet(sde, dim=2, hidden=32, depth=2, seed=0)
    exact = exact_score_fn(sde, dist)
    x = dist.sample(2000, generator=gen(7))
    t = torch.full((2000,), 0.5)
    with torch.no_grad():
        before = float(((net(x, t) - exact(x, t)) ** 2).sum(-1).mean())
    train(net, lambda m, b, g: sde_score_matching_loss(m, b, sde, generator=g), dist, n_steps=400,
          batch_size=256, lr=3e-3, generator=gen(8), progress=False)
    with torch.no_grad():
        after = float(((net(x, t) - exact(x, t)) ** 2).sum(-1).mean())
        scale = float((exact(x, t) ** 2).sum(-1).mean())
    assert after < 0.05 * scale and after < before / 10


def test_bad_inputs():
    sde = VPSDE()
    with pytest.raises(TypeError, match="sde"):
        TimeConditionalScoreNet("vp", dim=2)
    with pytest.raises(ValueError, match="dim"):
        TimeConditionalScoreNet(sde, dim=0)
    with pytest.raises(TypeError, match="seed"):
        TimeConditionalScoreNet(sde, dim=2, seed=1.5)
    net = TimeConditionalScoreNet(sde, dim=2, hidden=8, depth=1, seed=0)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        net(torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match="t: expected times"):
        net(torch.zeros(3, 2), 2.0)
    with pytest.raises(ValueError, match="t_eps"):
        sde_score_matching_loss(net, torch.zeros(4, 2), sde, t_eps=1.0)
    with pytest.raises(ValueError, match="score_fn: expected an output"):
        sde_score_matching_loss(lambda x, t: x[:, :1], torch.zeros(4, 2), sde)
