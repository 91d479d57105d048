"""Tests for scorelab.manifold (section 4.6.2) against independent references.

References used:
- ``scipy.stats.vonmises`` for the log-density, moments and distribution function;
- autograd of ``log_prob_angle`` for the intrinsic score;
- ``scipy.integrate.quad`` of ``p(theta) N(x; R u(theta), sigma^2 I)`` and central differences
  of its logarithm for the Euclidean score of the noised law;
- Laplace's method near the circle for the limits of the normal and tangential components;
- the Kolmogorov-Smirnov distance to scipy's CDF for projected Langevin, with a negative control.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import gen  # noqa: E402  (tests/reference.py)
from scipy import integrate, stats

from scorelab.manifold import VonMisesCircle, sample_projected_langevin, tangent_normal

torch.set_num_threads(1)


def ks_to_vonmises(theta: torch.Tensor, vm: VonMisesCircle) -> float:
    th = np.sort(vm.angle_of(vm.embed(theta)).numpy())
    cdf = stats.vonmises.cdf(th, vm.kappa, loc=vm.mu) - stats.vonmises.cdf(vm.mu - math.pi, vm.kappa, loc=vm.mu)
    n = len(th)
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


def test_log_density_matches_scipy_and_normalises():
    vm = VonMisesCircle(mu=0.7, kappa=3.0, radius=2.0)
    th = torch.linspace(-3, 4, 101, dtype=torch.float64)
    assert torch.allclose(vm.log_prob_angle(th), torch.from_numpy(stats.vonmises.logpdf(th.numpy(), 3.0, loc=0.7)),
                          atol=1e-12)
    density = lambda a: math.exp(float(vm.log_prob_angle(torch.tensor([a], dtype=torch.float64))[0]))  # noqa: E731
    total, _ = integrate.quad(density, -math.pi, math.pi, epsabs=1e-13, epsrel=1e-13, limit=200)
    assert abs(total - 1) < 1e-10
    big = VonMisesCircle(kappa=800.0)  # the scaled Bessel function keeps the constant finite
    assert math.isfinite(float(big.log_prob_angle(torch.zeros(1))[0]))


def test_intrinsic_score_is_autograd():
    vm = VonMisesCircle(mu=-1.0, kappa=2.5)
    th = torch.linspace(-4, 4, 77, dtype=torch.float64).requires_grad_(True)
    (ref,) = torch.autograd.grad(vm.log_prob_angle(th).sum(), th)
    assert torch.allclose(vm.intrinsic_score(th.detach()), ref, atol=1e-12)


def test_samples_match_scipy():
    vm = VonMisesCircle(mu=1.0, kappa=2.0, radius=1.5)
    n = 20_000
    theta = vm.sample_angle(n, generator=gen(0))
    assert ks_to_vonmises(theta, vm) < 1.63 / math.sqrt(n)
    m = float(torch.cos(theta - 1.0).mean())
    assert abs(m - vm.mean_resultant_length()) < 4 * float(torch.cos(theta - 1.0).std()) / math.sqrt(n)
    x = vm.sample(100, generator=gen(1))
    assert torch.allclose(x.norm(dim=-1), torch.full((100,), 1.5, dtype=torch.float64))
    # reproducible
    assert torch.equal(vm.sample_angle(50, generator=gen(2)), vm.sample_angle(50, generator=gen(2)))


def test_noised_score_matches_quadrature_and_finite_differences():
    vm = VonMisesCircle(mu=0.3, kappa=2.0, radius=1.0)
    sigma = 0.15
    mix = vm.noised(sigma, n_quad=1024)

    def log_p(x):
        def f(a):
            sq = (x[0] - math.cos(a)) ** 2 + (x[1] - math.sin(a)) ** 2
            return math.exp(vm.kappa * math.cos(a - vm.mu) - sq / (2 * sigma**2))
        val, _ = integrate.quad(f, -math.pi, math.pi, limit=200, epsabs=0, epsrel=1e-12)
        return math.log(val)

    pts = torch.tensor([[1.1, 0.2], [-0.8, 0.5], [0.0, -0.95], [0.5, 0.5]], dtype=torch.float64)
    got = mix.score(pts)
    h = 1e-5
    for i, p in enumerate(pts.tolist()):
        fd = [(log_p([p[0] + h, p[1]]) - log_p([p[0] - h, p[1]])) / (2 * h),
              (log_p([p[0], p[1] + h]) - log_p([p[0], p[1] - h])) / (2 * h)]
        assert torch.allclose(got[i], torch.tensor(fd, dtype=torch.float64), atol=1e-5)


def test_normal_component_blows_up_and_tangential_converges():
    vm = VonMisesCircle(mu=0.5, kappa=2.0, radius=1.0)
    th = torch.linspace(-math.pi, math.pi, 50, dtype=torch.float64)
    errs = []
    for sigma in (0.2, 0.1, 0.05):
        mix = vm.noised(sigma, n_quad=2048)
        tan, nor = tangent_normal(vm.embed(th), mix.score(vm.embed(th)))
        errs.append(float((tan - vm.intrinsic_score(th) / vm.radius).abs().max()))
        assert torch.allclose(nor, torch.full_like(nor, -0.5), atol=4 * sigma**2)  # Laplace: -1 / (2R) on the circle
        off = vm.embed(th) * (1 + 0.3 * sigma)  # distance 0.3 sigma outside
        _, nor_off = tangent_normal(off, mix.score(off))
        assert torch.allclose(nor_off * sigma**2, torch.full_like(nor_off, -0.3 * sigma), atol=sigma**2)
    assert errs[0] / errs[1] > 3 and errs[1] / errs[2] > 3  # O(sigma^2)
    # negative control: a coarse quadrature is refused
    with pytest.raises(ValueError, match="n_quad"):
        vm.noised(0.01, n_quad=64)


def test_tangent_normal_reconstructs_the_vector():
    x = torch.randn(30, 2, generator=gen(3), dtype=torch.float64)
    v = torch.randn(30, 2, generator=gen(4), dtype=torch.float64)
    tan, nor = tangent_normal(x, v)
    n_hat = x / x.norm(dim=-1, keepdim=True)
    t_hat = torch.stack([-n_hat[:, 1], n_hat[:, 0]], -1)
    assert torch.allclose(tan[:, None] * t_hat + nor[:, None] * n_hat, v, atol=1e-12)


def test_projected_langevin_samples_the_angle_law():
    vm = VonMisesCircle(mu=-0.5, kappa=2.0, radius=2.0)
    n = 3000
    x0 = vm.embed(torch.zeros(n, dtype=torch.float64))  # every chain starts at angle 0

    def score_fn(kappa):
        def s(x):  # intrinsic score per unit arc length, along the tangent
            th = torch.atan2(x[:, 1], x[:, 0])
            t_hat = torch.stack([-torch.sin(th), torch.cos(th)], -1)
            return (-kappa * torch.sin(th - vm.mu) / vm.radius)[:, None] * t_hat
        return s

    st = {}
    x = sample_projected_langevin(score_fn(2.0), x0, 0.01, 600, radius=2.0, generator=gen(5), stats=st)
    assert st["nfe"] == 600
    assert torch.allclose(x.norm(dim=-1), torch.full((n,), 2.0, dtype=torch.float64))
    assert ks_to_vonmises(vm.angle_of(x), vm) < 1.63 / math.sqrt(n)
    # negative control: the wrong concentration gives a detectably different law
    x_bad = sample_projected_langevin(score_fn(3.0), x0, 0.01, 600, radius=2.0, generator=gen(5))
    assert ks_to_vonmises(vm.angle_of(x_bad), vm) > 1.63 / math.sqrt(n)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="kappa"):
        VonMisesCircle(kappa=0.0)
    with pytest.raises(ValueError, match="radius"):
        VonMisesCircle(radius=-1.0)
    with pytest.raises(ValueError, match="mu"):
        VonMisesCircle(mu=float("inf"))
    vm = VonMisesCircle()
    with pytest.raises(ValueError, match="theta"):
        vm.log_prob_angle(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sigma"):
        vm.noised(0.0)
    with pytest.raises(ValueError, match="origin"):
        tangent_normal(torch.zeros(2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        sample_projected_langevin(lambda x: x, torch.ones(4, 3), 0.1, 5)
    with pytest.raises(TypeError, match="tangent_score_fn"):
        sample_projected_langevin(None, torch.ones(4, 2), 0.1, 5)
    with pytest.raises(ValueError, match="tangent_score_fn"):
        sample_projected_langevin(lambda x: x[:, :1], torch.ones(4, 2), 0.1, 5)
