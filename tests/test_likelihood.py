"""Tests for scorelab.likelihood (section 4.5.3) against independent references.

References used:
- the true log-density ``dist.log_prob`` of a 2-D Gaussian mixture (and of the blurred law
  p_t_eps), which the probability-flow ODE with the exact score must reproduce;
- the trace of a known matrix for the divergence estimators;
- closed forms for bits per dimension (a uniform density) and for dequantisation.

Hutchinson estimates are compared with the exact-divergence value through the standard error
of repeated runs with independent probes.  Every draw uses a fixed seed.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import gen  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.likelihood import bits_per_dim, dequantize, log_likelihood
from scorelab.losses import score_divergence
from scorelab.sdes import VESDE, VPSDE, SubVPSDE, exact_score_fn

torch.set_num_threads(1)

SDES = {
    "ve": lambda: VESDE(sigma_min=0.01, sigma_max=50.0),
    "vp": lambda: VPSDE(),
    "subvp": lambda: SubVPSDE(),
}


@pytest.fixture(scope="module")
def data():
    dist = sl.eight_gaussians()
    return dist, dist.sample(12, generator=gen(0)).double()


@pytest.mark.parametrize("name", ["vp", "subvp"])
def test_ode_log_likelihood_matches_true_density(name, data):
    dist, x = data
    sde = SDES[name]()
    stats = {}
    logp = log_likelihood(exact_score_fn(sde, dist), x, sde, rtol=1e-6, atol=1e-6, stats=stats)
    # the residual is the solver error plus the prior mismatch N(0, I) vs p_T (both ~1e-3 here)
    assert float((logp - dist.log_prob(x)).abs().max()) < 0.01
    assert stats["nfe"] > 0 and stats["z"].shape == x.shape
    torch.testing.assert_close(stats["prior_logp"] + stats["delta_logp"], logp)


@pytest.mark.parametrize("name", list(SDES))
def test_ode_log_likelihood_with_exact_prior_is_solver_accurate(name, data):
    """With p_T itself as the prior, only the solver's error remains: far below 0.01 nats."""
    dist, x = data
    sde = SDES[name]()
    t_eps = 1e-3  # compare with the blurred law p_t_eps, exact for any t_eps
    logp = log_likelihood(exact_score_fn(sde, dist), x, sde, t_eps=t_eps, rtol=1e-7, atol=1e-7,
                          prior_logp=sde.marginal(dist, sde.T).log_prob)
    truth = sde.marginal(dist, t_eps).log_prob(x)
    assert float((logp - truth).abs().max()) < 1e-3


def test_prior_mismatch_shows_for_short_ve_sde(data):
    """A VE SDE with a small sigma_max leaves p_T far from its prior: the likelihood is off."""
    dist, x = data
    sde = VESDE(0.01, 5.0)
    logp = log_likelihood(exact_score_fn(sde, dist), x, sde, rtol=1e-6, atol=1e-6)
    assert float((logp - dist.log_prob(x)).abs().max()) > 0.1


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_within_its_standard_error(probe, data):
    dist, x = data
    x = x[:6]
    sde = VPSDE()
    score = exact_score_fn(sde, dist)
    exact = log_likelihood(score, x, sde, rtol=1e-6, atol=1e-6)
    runs = torch.stack([log_likelihood(score, x, sde, exact=False, probe=probe, rtol=1e-6, atol=1e-6,
                                       generator=seed) for seed in range(8)])
    mean, se = runs.mean(0), runs.std(0) / math.sqrt(len(runs))
    assert torch.all(se > 0)  # the estimator is random ...
    assert torch.all((mean - exact).abs() < 4 * se + 1e-4)  # ... and centred on the exact value


def test_torchdiffeq_solver_agrees(data):
    dist, x = data
    sde = VPSDE()
    score = exact_score_fn(sde, dist)
    a = log_likelihood(score, x[:4], sde, rtol=1e-6, atol=1e-6)
    b = log_likelihood(score, x[:4], sde, solver="torchdiffeq", rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)


def test_divergence_estimators_on_a_linear_map():
    A = torch.tensor([[1.0, 2.0, 0.0], [-1.0, 3.0, 0.5], [0.2, 0.0, -2.0]], dtype=torch.float64)
    x = torch.randn(4, 3, generator=gen(1), dtype=torch.float64)
    v, div = score_divergence(lambda y: y @ A.T, x)
    torch.testing.assert_close(v, x @ A.T)
    torch.testing.assert_close(div, torch.full((4,), float(torch.trace(A)), dtype=torch.float64))
    probes = torch.randn(4000, 4, 3, generator=gen(2), dtype=torch.float64)
    _, est = score_divergence(lambda y: y @ A.T, x, probes=probes)
    # Var(z^T A z) = 2 |sym(A)|_F^2 for Gaussian z; SE of the mean over 4000 probes
    sym = (A + A.T) / 2
    se = math.sqrt(2 * float((sym**2).sum()) / 4000)
    assert torch.all((est - torch.trace(A)).abs() < 4 * se)


def test_images_and_bits_per_dim():
    """Gaussian 'images' (N, 1, 2, 2): exact likelihood, and bpd = -log p / (D ln 2) + 8."""
    d = 4
    dist = sl.Gaussian(0.5 * torch.ones(d), 0.04 * torch.ones(d))
    sde = VPSDE()
    x = dist.sample(5, generator=gen(3)).double().reshape(5, 1, 2, 2)
    logp = log_likelihood(exact_score_fn(sde, dist), x, sde, rtol=1e-6, atol=1e-6)
    truth = dist.log_prob(x.reshape(5, d))
    assert float((logp - truth).abs().max()) < 0.01
    torch.testing.assert_close(bits_per_dim(logp, d), -logp / (d * math.log(2)) + 8)
    torch.testing.assert_close(bits_per_dim(logp, d, data_scale=2.0), -logp / (d * math.log(2)) + 7)


def test_bits_per_dim_of_uniform_density_is_log2_bins():
    # a uniform density on the unit cube has log p = 0: every one of the 256 bins gets 256^-D
    assert math.isclose(float(bits_per_dim(torch.zeros(1), 10)), 8.0)
    # uniform on [-1, 1]^D: log p = -D log 2, the same discrete law
    assert math.isclose(float(bits_per_dim(torch.tensor([-10 * math.log(2)]), 10, data_scale=2.0)), 8.0)
    assert math.isclose(float(bits_per_dim(torch.zeros(1), 3, n_bins=2)), 1.0)


def test_dequantize():
    k = torch.randint(0, 256, (1000, 3), generator=gen(4))
    u = dequantize(k, generator=gen(5))
    assert torch.equal(torch.floor(u * 256).long(), k)
    frac = u * 256 - k
    assert 0.45 < float(frac.mean()) < 0.55  # U[0, 1): mean 1/2, SE 0.005
    with pytest.raises(ValueError, match="integers in"):
        dequantize(torch.tensor([256]))
    with pytest.raises(ValueError, match="integers in"):
        dequantize(torch.tensor([0.5]))


def test_bad_inputs(data):
    dist, x = data
    sde = VPSDE()
    score = exact_score_fn(sde, dist)
    with pytest.raises(TypeError, match="sde"):
        log_likelihood(score, x, "vp")
    with pytest.raises(ValueError, match="solver"):
        log_likelihood(score, x, sde, solver="euler")
    with pytest.raises(ValueError, match="method"):
        log_likelihood(score, x, sde, method="dopri5")
    with pytest.raises(ValueError, match="probe"):
        log_likelihood(score, x, sde, exact=False, probe="sphere")
    with pytest.raises(ValueError, match="t_eps"):
        log_likelihood(score, x, sde, t_eps=2.0)
    with pytest.raises(ValueError, match="n_probes"):
        log_likelihood(score, x, sde, exact=False, n_probes=0)
    with pytest.raises(ValueError, match="prior_logp"):
        log_likelihood(score, x, sde, prior_logp=lambda z: z)
    with pytest.raises(ValueError, match="dim"):
        bits_per_dim(torch.zeros(2), 0)
    with pytest.raises(ValueError, match="fn: expected an output"):
        score_divergence(lambda y: y[:, :1], x)
