"""Tests for scorelab.sdes (section 4.5) against independent references.

References used:
- Monte-Carlo moments of fine Euler-Maruyama paths of the forward SDE from a fixed x0, for
  ``marginal_prob`` (tolerance: a few standard errors plus the O(dt) bias of the scheme);
- the moment ODEs of a linear SDE, ``d alpha/dt = f alpha`` and ``d sigma^2/dt = 2 f sigma^2 + g^2``,
  by central finite differences, tying ``alpha``/``sigma`` to ``drift``/``diffusion``;
- ``torch.distributions`` for ``prior_logp``;
- autograd of ``dist.perturbed(sigma(t), alpha(t)).log_prob`` for ``exact_score_fn``;
- a least-squares regression of the noise on x_t, and the orthogonality of a conditional
  expectation, for the eps <-> score identity of section 4.5.1;
- DDPM's product ``prod (1 - beta_j)`` against ``exp(-int beta)``.

Every draw uses a fixed seed, so the file is deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import gen  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.sdes import (
    SDE,
    VESDE,
    VPSDE,
    ReverseSDE,
    SubVPSDE,
    append_dims,
    eps_to_score,
    exact_score_fn,
    score_to_eps,
)

torch.set_num_threads(1)

SDES = {
    "ve": lambda: VESDE(sigma_min=0.01, sigma_max=10.0),
    "vp": lambda: VPSDE(beta_min=0.1, beta_max=20.0),
    "subvp": lambda: SubVPSDE(beta_min=0.1, beta_max=20.0),
}


def full_cov_mixture():
    return sl.GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 1.0], [2.0, 0.5]]),
                              torch.tensor([[[1.0, 0.5], [0.5, 0.8]], [[0.3, 0.0], [0.0, 2.0]]]))


DISTS = {
    "eight": lambda: sl.eight_gaussians(),
    "unequal_iso": lambda: sl.GaussianMixture.isotropic(
        torch.tensor([0.4, 0.6]), torch.tensor([[0.0, 0.0], [3.0, 3.0]]), torch.tensor([0.5, 1.5])),
    "full_cov": full_cov_mixture,
    "gaussian": lambda: sl.Gaussian(torch.tensor([1.0, 2.0]), torch.tensor([[2.0, 0.3], [0.3, 0.5]])),
}


# -- marginals against simulation ----------------------------------------------------------

@pytest.mark.parametrize("name", list(SDES))
def test_marginal_prob_matches_simulated_forward_paths(name):
    sde = SDES[name]()
    n, n_steps = 20000, 1000
    x0 = torch.tensor([1.5, -2.0], dtype=torch.float64)
    x = x0.expand(n, 2).clone()
    g = gen(0)
    dt = sde.T / n_steps
    checkpoints = {100: 0.1, 500: 0.5, 1000: 1.0}
    for i in range(n_steps):
        t = torch.full((n,), i * dt, dtype=torch.float64)
        drift, diffusion = sde.sde(x, t)
        x = x + drift * dt + diffusion[:, None] * math.sqrt(dt) * torch.randn(x.shape, generator=g, dtype=x.dtype)
        if i + 1 in checkpoints:
            tc = checkpoints[i + 1]
            mean, std = sde.marginal_prob(x0[None], tc)
            mean, std = mean[0], float(std[0])
            emp_mean, emp_std = x.mean(0), x.std(0)
            # standard errors: std/sqrt(n) for the mean, std/sqrt(2n) for the std; the
            # left-point Euler scheme adds a relative O(dt * rate) bias (< 1% here)
            se_mean = std / math.sqrt(n)
            assert torch.all((emp_mean - mean).abs() < 5 * se_mean + 0.01 * mean.abs() + 1e-3), (tc, emp_mean, mean)
            assert torch.all((emp_std - std).abs() < 5 * std / math.sqrt(2 * n) + 0.01 * std), (tc, emp_std, std)


@pytest.mark.parametrize("name", list(SDES))
def test_alpha_sigma_solve_the_moment_odes(name):
    """For dx = f x dt + g dW: d alpha/dt = f alpha and d(sigma^2)/dt = 2 f sigma^2 + g^2."""
    sde = SDES[name]()
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-5
    d_alpha = (sde.alpha(t + h) - sde.alpha(t - h)) / (2 * h)
    d_var = (sde.sigma(t + h) ** 2 - sde.sigma(t - h) ** 2) / (2 * h)
    f, g = sde.drift_coef(t), sde.diffusion_coef(t)
    torch.testing.assert_close(d_alpha, f * sde.alpha(t), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(d_var, 2 * f * sde.sigma(t) ** 2 + g**2, rtol=1e-6, atol=1e-7)
    # at t = 0 nothing has happened yet
    zero = torch.zeros(1, dtype=torch.float64)
    assert float(sde.alpha(zero)) == 1.0 and float(sde.sigma(zero)) == 0.0


def test_known_closed_forms():
    ve, vp, sub = VESDE(0.01, 50.0), VPSDE(0.1, 20.0), SubVPSDE(0.1, 20.0)
    t = torch.tensor([0.3, 1.0], dtype=torch.float64)
    s = 0.01 * 5000.0**t
    torch.testing.assert_close(ve.sigma(t), torch.sqrt(s**2 - 0.01**2))
    B = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.alpha(t), torch.exp(-B / 2))
    torch.testing.assert_close(vp.sigma(t), torch.sqrt(1 - torch.exp(-B)))
    torch.testing.assert_close(sub.sigma(t), 1 - torch.exp(-B))
    # sub-VP's noise is always below VP's
    assert torch.all(sub.sigma(t) < vp.sigma(t))


@pytest.mark.parametrize("name", list(SDES))
def test_marginal_is_the_perturbed_distribution(name):
    sde = SDES[name]()
    dist = sl.eight_gaussians()
    n = 20000
    x0 = dist.sample(n, generator=gen(1)).double()
    xt, eps = sde.perturb(x0, 0.4, generator=gen(2))
    exact = sde.marginal(dist, 0.4)
    assert xt.shape == eps.shape == (n, 2)
    # moments of the simulated x_t against the exact mixture p_t (SE ~ std / sqrt(n))
    se = float(exact.covariance_matrix.diag().max()) ** 0.5 / n**0.5
    torch.testing.assert_close(xt.mean(0), exact.mean.double(), atol=5 * se, rtol=0)
    torch.testing.assert_close(torch.cov(xt.T), exact.covariance_matrix.double(), rtol=0.05, atol=0.05)


# -- prior --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("shape", [(7, 1), (7, 2), (5, 3, 4, 4)])
def test_prior_logp_matches_torch_distributions(name, shape):
    sde = SDES[name]()
    z = sde.prior_sampling(shape, generator=gen(3), dtype=torch.float64)
    assert z.shape == shape
    ref = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z).reshape(shape[0], -1).sum(-1)
    torch.testing.assert_close(sde.prior_logp(z), ref)
    if shape == (7, 2):
        mvn = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                                     sde.prior_std**2 * torch.eye(2, dtype=torch.float64))
        torch.testing.assert_close(sde.prior_logp(z), mvn.log_prob(z))


def test_prior_sampling_scale_and_seed():
    sde = VESDE(0.01, 7.0)
    z = sde.prior_sampling((40000, 2), generator=gen(4))
    assert abs(float(z.std()) - 7.0) < 5 * 7.0 / math.sqrt(2 * 80000)
    torch.testing.assert_close(sde.prior_sampling((3, 2), generator=5), sde.prior_sampling((3, 2), generator=5))
    assert not torch.equal(sde.prior_sampling((3, 2), generator=5), sde.prior_sampling((3, 2), generator=6))


# -- exact scores ---------------------------------------------------------------------------

def autograd_score(sde, dist, x, t):
    """grad_x log p_t(x) by autograd, one example at a time (each may have its own t)."""
    out = []
    for xi, ti in zip(x, t.tolist(), strict=True):
        xg = xi[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(sde.marginal(dist, ti).log_prob(xg).sum(), xg)
        out.append(g)
    return torch.cat(out)


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("dname", list(DISTS))
def test_exact_score_matches_autograd(name, dname):
    sde, dist = SDES[name](), DISTS[dname]()
    score = exact_score_fn(sde, dist)
    x = 3 * torch.randn(40, 2, generator=gen(5), dtype=torch.float64)
    for tv in (1e-3, 0.2, 0.7, 1.0):  # one time for the whole batch
        t = torch.full((40,), tv, dtype=torch.float64)
        torch.testing.assert_close(score(x, tv), autograd_score(sde, dist, x, t), rtol=1e-7, atol=1e-9)
    t = torch.rand(40, generator=gen(6), dtype=torch.float64)  # one time per example
    torch.testing.assert_close(score(x, t), autograd_score(sde, dist, x, t), rtol=1e-7, atol=1e-9)


def test_exact_score_float32_and_far_points():
    sde, dist = VPSDE(), sl.eight_gaussians()
    score = exact_score_fn(sde, dist)
    x = torch.tensor([[1e3, -1e3], [0.5, 0.2]], dtype=torch.float32)
    s = score(x, 0.01)
    assert s.dtype == torch.float32 and torch.isfinite(s).all()
    torch.testing.assert_close(s.double(), score(x.double(), 0.01), rtol=1e-4, atol=1e-2)


def test_exact_score_of_empirical_distribution_is_the_smoothed_data_score():
    data = torch.randn(30, 2, generator=gen(7), dtype=torch.float64)
    emp = sl.EmpiricalDistribution(data)
    sde = VPSDE()
    x = torch.randn(10, 2, generator=gen(8), dtype=torch.float64)
    t = torch.full((10,), 0.3, dtype=torch.float64)
    torch.testing.assert_close(exact_score_fn(sde, emp)(x, t), autograd_score(sde, emp, x, t))


@pytest.mark.parametrize("shape", [(6, 1), (6, 2), (6, 2, 3, 3)])
def test_broadcasting_over_points_and_images(shape):
    d = math.prod(shape[1:])
    sde = VPSDE()
    x = torch.randn(shape, generator=gen(9), dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, shape[0], dtype=torch.float64)
    drift, diffusion = sde.sde(x, t)
    mean, std = sde.marginal_prob(x, t)
    f, G = sde.discretize(x, t)
    assert drift.shape == mean.shape == f.shape == shape
    assert diffusion.shape == std.shape == G.shape == (shape[0],)
    torch.testing.assert_close(drift[2], -0.5 * float(sde.beta(t[2])) * x[2])
    torch.testing.assert_close(mean[4], float(sde.alpha(t[4])) * x[4])
    # the exact score of a Gaussian on flattened images, reshaped back
    dist = sl.Gaussian(torch.zeros(d), 0.5 * torch.ones(d))
    score = exact_score_fn(sde, dist)
    s = score(x, t)
    assert s.shape == shape
    var = sde.alpha(t) ** 2 * 0.5 + sde.sigma(t) ** 2
    torch.testing.assert_close(s, -x / append_dims(var, x.ndim))
    rev_drift, rev_diff = sde.reverse(score).sde(x, t)
    assert rev_drift.shape == shape and rev_diff.shape == (shape[0],)


def test_append_dims():
    v = torch.arange(3.0)
    assert append_dims(v, 4).shape == (3, 1, 1, 1)
    assert append_dims(v, 1).shape == (3,)
    with pytest.raises(ValueError, match="more than"):
        append_dims(torch.zeros(2, 2), 1)


# -- section 4.5.1: eps and score ------------------------------------------------------

def test_eps_score_round_trip():
    eps = torch.randn(5, 3, generator=gen(10), dtype=torch.float64)
    std = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(score_to_eps(eps_to_score(eps, std), std), eps)
    torch.testing.assert_close(eps_to_score(eps, 0.5), -eps / 0.5)
    img = torch.randn(5, 1, 2, 2, generator=gen(11), dtype=torch.float64)
    torch.testing.assert_close(eps_to_score(img, std), -img / std[:, None, None, None])


@pytest.mark.parametrize("name", list(SDES))
def test_conditional_noise_is_a_rescaled_exact_score(name):
    """Regressing eps on x_t recovers score_to_eps(exact score): E[eps | x_t] = -sigma_t s(x_t)."""
    sde = SDES[name]()
    mu, c = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.7
    dist = sl.Gaussian(mu, c * torch.ones(2))
    n, tv = 40000, 0.3
    x0 = dist.sample(n, generator=gen(12)).double()
    xt, eps = sde.perturb(x0, tv, generator=gen(13))
    # E[eps | x_t] is affine in x_t for Gaussian data: least squares on [x_t, 1]
    feats = torch.cat([xt, torch.ones(n, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(feats, eps).solution
    x_test = torch.tensor([[0.0, 0.0], [1.0, -2.0], [2.0, 1.0]], dtype=torch.float64)
    predicted = torch.cat([x_test, torch.ones(3, 1, dtype=torch.float64)], 1) @ coef
    std = float(sde.sigma(torch.tensor([tv], dtype=torch.float64)))
    exact = score_to_eps(exact_score_fn(sde, dist)(x_test, tv), std)
    # regression noise: residual std <= 1, |features| ~ 3, n = 40000 -> SE ~ 0.02
    torch.testing.assert_close(predicted, exact, atol=0.05, rtol=0)


def test_denoising_target_is_unbiased_for_mixture_score():
    """E[(-eps/sigma - s(x_t)) . h(x_t)] = 0 for any h: -eps/sigma has conditional mean s(x_t)."""
    sde, dist = VPSDE(), sl.eight_gaussians()
    n, tv = 100000, 0.2
    x0 = dist.sample(n, generator=gen(14)).double()
    xt, eps = sde.perturb(x0, tv, generator=gen(15))
    std = float(sde.sigma(torch.tensor([tv], dtype=torch.float64)))
    s = exact_score_fn(sde, dist)(xt, tv)
    resid = eps_to_score(eps, std) - s
    for h in (s, xt, torch.tanh(xt)):
        terms = (resid * h).sum(-1)
        se = float(terms.std()) / math.sqrt(n)
        assert abs(float(terms.mean())) < 4 * se
    # ... whereas the target itself is far noisier than the score (the DSM variance)
    assert float((resid**2).sum(-1).mean()) > 0.5 * float((s**2).sum(-1).mean())


def test_ddpm_schedule_is_the_vp_sde_on_a_grid():
    errors = {}
    for N in (100, 1000):
        sde = VPSDE(0.1, 20.0, N=N)
        betas, alphas_cumprod, t = sde.ddpm_schedule()
        assert betas.shape == alphas_cumprod.shape == t.shape == (N,)
        torch.testing.assert_close(alphas_cumprod, torch.cumprod(1 - betas, 0))
        errors[N] = float((alphas_cumprod - sde.alpha(t) ** 2).abs().max())
    b, _, _ = VPSDE(N=1000).ddpm_schedule()
    assert math.isclose(float(b[0]), 1e-4) and math.isclose(float(b[-1]), 0.02)  # Ho et al.'s schedule
    assert errors[1000] < 2e-3
    assert 7 < errors[100] / errors[1000] < 13  # first order in 1/N


# -- discretisation and reversal ------------------------------------------------------------

@pytest.mark.parametrize("name", list(SDES))
def test_discretize_reproduces_the_marginal_variance(name):
    """Iterating x <- x + f_i + G_i z from x0 = 1 gives mean alpha(T) and std sigma(T)."""
    sde = SDES[name]()
    N = sde.N
    x = torch.ones(1, 1, dtype=torch.float64)
    var = torch.zeros(1, dtype=torch.float64)
    for i in range(N):
        t = torch.full((1,), (i + 1) * sde.T / N, dtype=torch.float64)
        f, G = sde.discretize(x, t)
        a = f / x  # the step is linear: x + f = (1 + a) x
        x, var = x + f, (1 + a[:, 0]) ** 2 * var + G**2
    T = torch.ones(1, dtype=torch.float64)
    # the steps are the exact Gaussian transitions, so the composition telescopes
    torch.testing.assert_close(var.sqrt(), sde.sigma(T), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(x[0], sde.alpha(T), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(SDES))
def test_step_coefficients_take_one_step_length_per_time(name):
    """A non-uniform grid passes an (N,) tensor of step lengths; each entry equals the scalar call."""
    sde = SDES[name]()
    t = torch.tensor([1.0, 0.6, 0.25, 0.01], dtype=torch.float64)
    dt = torch.tensor([0.4, 0.35, 0.24, 0.009], dtype=torch.float64)
    a, G = sde.discrete_coefs(t, dt)
    c = sde.corrector_alpha(t, dt)
    for k in range(4):
        a_k, G_k = sde.discrete_coefs(t[k:k + 1], float(dt[k]))
        torch.testing.assert_close(a[k:k + 1], a_k, rtol=1e-12, atol=0)
        torch.testing.assert_close(G[k:k + 1], G_k, rtol=1e-12, atol=0)
        torch.testing.assert_close(c[k:k + 1], sde.corrector_alpha(t[k:k + 1], float(dt[k])), rtol=1e-12, atol=0)


def test_reverse_sde_and_probability_flow_drifts():
    sde = SubVPSDE()
    dist = sl.eight_gaussians()
    score = exact_score_fn(sde, dist)
    x = torch.randn(8, 2, generator=gen(16), dtype=torch.float64)
    t = torch.full((8,), 0.4, dtype=torch.float64)
    f, g = sde.sde(x, t)
    s = score(x, t)
    rsde, ode = sde.reverse(score), sde.reverse(score, probability_flow=True)
    assert isinstance(rsde, ReverseSDE) and rsde.T == sde.T and rsde.N == sde.N
    d1, g1 = rsde.sde(x, t)
    d2, g2 = ode.sde(x, t)
    torch.testing.assert_close(d1, f - g[:, None] ** 2 * s)
    torch.testing.assert_close(d2, f - 0.5 * g[:, None] ** 2 * s)
    torch.testing.assert_close(g1, g)
    assert torch.all(g2 == 0)
    F, G = sde.discretize(x, t)
    rf, rG = rsde.discretize(x, t)
    torch.testing.assert_close(rf, F - G[:, None] ** 2 * s)
    torch.testing.assert_close(rG, G)
    rf2, rG2 = ode.discretize(x, t)
    torch.testing.assert_close(rf2, F - 0.5 * G[:, None] ** 2 * s)
    assert torch.all(rG2 == 0)


@pytest.mark.parametrize("name", list(SDES))
def test_noise_ratio_inverse(name):
    sde = SDES[name]()
    t = torch.linspace(0.001, 1.0, 50, dtype=torch.float64)
    r = sde.noise_ratio(t)
    assert torch.all(r[1:] > r[:-1])  # increasing, so the inverse exists
    torch.testing.assert_close(sde.inverse_noise_ratio(r), t, rtol=1e-9, atol=1e-12)


# -- bad input -----------------------------------------------------------------------------

def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="sigma_min"):
        VESDE(sigma_min=-1.0)
    with pytest.raises(ValueError, match="beta_max"):
        VPSDE(beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="beta_min"):
        SubVPSDE(beta_min=0.0)
    with pytest.raises(ValueError, match="N"):
        VPSDE(N=0)


def test_bad_call_arguments():
    sde = VPSDE()
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"t: expected times in \[0, T\]"):
        sde.sde(x, 1.5)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        sde.marginal_prob(x, torch.zeros(3))
    with pytest.raises(TypeError, match="t: expected a number"):
        sde.sde(x, "late")
    with pytest.raises(TypeError, match="floating"):
        sde.sde(torch.zeros(4, 2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        sde.sde(torch.zeros(4), 0.5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        sde.marginal_prob([[0.0, 0.0]], 0.5)
    with pytest.raises(ValueError, match="dt"):
        sde.discretize(x, 0.5, dt=-0.1)
    with pytest.raises(ValueError, match="shape"):
        sde.prior_sampling((5,))
    with pytest.raises(TypeError, match="Gaussian"):
        exact_score_fn(sde, sl.EnergyModel(lambda x: (x**2).sum(-1), 2))
    with pytest.raises(TypeError, match="SDE"):
        exact_score_fn("vp", sl.eight_gaussians())
    with pytest.raises(ValueError, match="2 numbers per example"):
        exact_score_fn(sde, sl.eight_gaussians())(torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match="positive"):
        eps_to_score(torch.ones(2, 2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="score_fn"):
        sde.reverse(lambda x, t: x[:, :1]).sde(x, 0.5)
    with pytest.raises(TypeError, match="probability_flow"):
        sde.reverse(lambda x, t: x, probability_flow="yes")
    assert isinstance(sde, SDE)


def test_discrete_steps_are_smld_and_ddpm():
    """VE's step is SMLD's sqrt(sigma_i^2 - sigma_{i-1}^2); VP's is DDPM's with beta_i ~ beta(t) dt."""
    ve, vp = VESDE(0.01, 50.0, N=100), VPSDE(N=1000)
    x = torch.ones(3, 2, dtype=torch.float64)
    t = torch.tensor([0.01, 0.5, 1.0], dtype=torch.float64)
    f, G = ve.discretize(x, t)
    assert torch.all(f == 0)
    torch.testing.assert_close(G, torch.sqrt(ve.sigma(t) ** 2 - ve.sigma(t - 0.01) ** 2))
    f, G = vp.discretize(x, t)
    # beta_i = 1 - exp(-int_{t-dt}^t beta) exactly (beta is linear: the integral is beta(mid) dt),
    # which is DDPM's beta(t) / N up to O(1/N) relative corrections
    torch.testing.assert_close(G**2, -torch.expm1(-vp.beta(t - 0.0005) / 1000))
    torch.testing.assert_close(G**2, vp.beta(t) / 1000, rtol=0.04, atol=0)
    torch.testing.assert_close(f, (torch.sqrt(1 - G**2) - 1)[:, None] * x)


def test_eps_score_conversion_keeps_float64_precision():
    eps = torch.randn(4, 2, generator=gen(17), dtype=torch.float64)
    std = 0.5843216789012345
    assert torch.equal(eps_to_score(eps, std), -eps / std)
