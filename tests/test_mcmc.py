"""Tests for scorelab.mcmc against exact samples and closed forms (section 4.4).

References used:
- the exact stationary covariance of (preconditioned) ULA on a Gaussian,
  ``scorelab.diagnostics.ula_stationary_variance`` (itself checked against scipy's Lyapunov
  solver in test_diagnostics.py), and its exact AR(1) autocorrelation ``(1 - eps / s^2)^k``;
- exact moments of the target and fresh exact samples (sliced-Wasserstein floor) for
  invariance: a Metropolis-corrected sampler started from exact samples must stay exact;
- the known configurational variance of the BAOAB / OBABO splittings on a Gaussian;
- the tempered laws ``p^{1/T}`` of a Gaussian (variance T s^2) and the exact mixture weights.

Tolerances are a few standard errors of the estimator in question (stated at each assert);
every draw uses a fixed seed, so the file is deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import gen  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.diagnostics import (
    autocorrelation,
    integrated_autocorrelation_time,
    ula_autocorrelation,
    ula_stationary_variance,
)
from scorelab.mcmc import (
    sample_hmc,
    sample_kinetic_langevin,
    sample_parallel_tempering,
    sample_preconditioned_langevin,
)
from scorelab.metrics import mode_weights, sliced_wasserstein, sliced_wasserstein_floor
from scorelab.samplers import sample_langevin, sample_mala

torch.set_num_threads(1)
F64 = torch.float64


def rotated_cov(variances, angle):
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s], [s, c]], dtype=F64)
    return R @ torch.diag(torch.tensor(variances, dtype=F64)) @ R.T, R


def assert_moments(x, dist, n_se=5.0):
    """Mean and covariance of x (N, d) equal the target's, within n_se standard errors each.

    The covariance is estimated around the exact mean, so each entry is a plain average of N
    independent products whose standard error is estimated from the same products.
    """
    x = x.to(F64)
    n = x.shape[0]
    mean, cov = dist.mean.to(F64), dist.covariance_matrix.to(F64)
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((x.mean(0) - mean).abs() < n_se * se_mean).all()), (x.mean(0), mean, se_mean)
    xc = x - mean
    prods = xc[:, :, None] * xc[:, None, :]
    est, se = prods.mean(0), prods.std(0) / math.sqrt(n)
    assert bool(((est - cov).abs() < n_se * se).all()), (est, cov, se)


def moments_ok(x, dist, n_se=5.0) -> bool:
    try:
        assert_moments(x, dist, n_se)
    except AssertionError:
        return False
    return True


@pytest.fixture(scope="module")
def target():
    """A 2-D, non-Gaussian target: two overlapping, tilted Gaussians with unequal weights."""
    covs = torch.tensor([[[0.5, 0.3], [0.3, 0.6]], [[1.0, -0.4], [-0.4, 0.5]]], dtype=F64)
    return sl.GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.5, 0.0], [1.0, 1.0]], dtype=F64),
                              covs)


N_INV = 4000


@pytest.fixture(scope="module")
def floor(target):
    """Mean and std of SW between two independent exact sample sets of size N_INV."""
    return sliced_wasserstein_floor(target, N_INV, n_repeats=10, generator=gen(100))


def assert_near_floor(x, target, floor, seed, n_std=4.0):
    sw = sliced_wasserstein(x, target.sample(len(x), generator=gen(seed)), generator=gen(seed + 1))
    assert sw < floor[0] + n_std * floor[1], f"SW {sw:.4f} vs floor {floor[0]:.4f} +- {floor[1]:.4f}"


# -- ULA and preconditioned ULA: the discretisation bias in closed form ---------------------

@pytest.mark.parametrize("eps", [0.4, 1.6, 3.0])
def test_ula_stationary_variance_matches_closed_form(eps):
    s2, n = 2.0, 20_000
    target = sl.Gaussian(torch.zeros(1, dtype=F64), torch.tensor([[s2]], dtype=F64))
    x0 = torch.zeros(n, 1, dtype=F64)
    n_steps = 120  # |1 - eps/s2| <= 0.8, so the start is forgotten to 0.8^120 ~ 1e-12
    v_exact = ula_stationary_variance(eps, s2)
    se = v_exact * math.sqrt(2.0 / (n - 1))  # standard error of a Gaussian sample variance
    for x in (sample_langevin(target.score, x0, eps, n_steps, generator=gen(1)),
              sample_preconditioned_langevin(target.score, x0, eps, n_steps, preconditioner=1.0, generator=gen(2))):
        v = float(x.var())
        assert abs(v - v_exact) < 5 * se, (v, v_exact, se)
        assert abs(v - s2) > 5 * se  # the bias is real, not noise, at every tested step


def test_preconditioned_langevin_stationary_covariance_matches_closed_form():
    cov, _ = rotated_cov([1.0, 25.0], 0.5)
    target = sl.Gaussian(torch.zeros(2, dtype=F64), cov)
    G = torch.tensor([[3.0, 1.0], [1.0, 8.0]], dtype=F64)  # a deliberately imperfect preconditioner
    L = torch.linalg.cholesky(G)
    Li = torch.linalg.inv(L)
    lam = torch.linalg.eigvalsh(Li @ cov @ Li.T)
    eps = 0.8 * float(lam.min())                            # 40% of the stability limit 2 lambda_min
    slowest = max(abs(1 - eps / float(lam.max())), abs(1 - eps / float(lam.min())))
    n_steps = int(math.log(1e-8) / math.log(slowest)) + 1
    n = 20_000
    x = sample_preconditioned_langevin(target.score, torch.zeros(n, 2, dtype=F64), eps, n_steps,
                                       preconditioner=G, generator=gen(3))
    exact = ula_stationary_variance(eps, cov, preconditioner=G)
    prods = x[:, :, None] * x[:, None, :]
    se = prods.std(0) / math.sqrt(n)
    assert bool(((prods.mean(0) - exact).abs() < 5 * se).all()), (prods.mean(0), exact)
    assert bool(((prods.mean(0) - cov).abs() > 5 * se).any())  # and it is not the target itself


def test_preconditioning_with_the_covariance_mixes_faster_than_plain_langevin():
    """On N(0, Sigma) with variances 1 and 25, plain ULA's step is capped by the narrow direction."""
    cov, R = rotated_cov([1.0, 25.0], 0.6)
    target = sl.Gaussian(torch.zeros(2, dtype=F64), cov)
    n_chains, T = 64, 2000
    g = gen(4)
    x0 = target.sample(n_chains, generator=g)

    def run(sampler, eps, **kw):
        frames = []
        sampler(target.score, x0, eps, T, generator=g, callback=lambda info: frames.append(info["x"]), **kw)
        return torch.stack(frames) @ R                         # (T, N, 2) in eigen-coordinates

    eps_plain = 0.9 * 2 * 1.0                                    # 90% of the stability limit 2 * lambda_min
    plain = run(sample_langevin, eps_plain)
    pre = run(sample_preconditioned_langevin, 1.0, preconditioner=cov)

    # the measured autocorrelation of the slow coordinate is the AR(1) theory (1 - eps / 25)^k
    lags = torch.arange(6)
    acf_slow = autocorrelation(plain[:, :, 1], max_lag=5).mean(-1)
    theory = ula_autocorrelation(eps_plain, 25.0, lags)
    a = float(theory[1])
    tau = (1 + a) / (1 - a)
    se = math.sqrt((1 + a * a) / (1 - a * a) / (T * n_chains)) + 2 * tau / T  # Bartlett + O(tau/T) bias
    assert bool(((acf_slow - theory).abs() < 5 * se).all()), (acf_slow, theory)
    # with G = Sigma every coordinate is an AR(1) with coefficient 1 - eps = 0: no memory
    acf_pre = autocorrelation(pre, max_lag=1)[1].mean(0)       # (2,)
    assert bool((acf_pre.abs() < 5 / math.sqrt(T * n_chains)).all()), acf_pre
    # effective samples of the worst direction: theory says tau_plain / tau_pre = 26.8
    tau_plain = integrated_autocorrelation_time(plain).mean(0).max()
    tau_pre = integrated_autocorrelation_time(pre).mean(0).max()
    assert float(tau_plain / tau_pre) > 10.0, (tau_plain, tau_pre)


# -- invariance of the Metropolis-corrected samplers -----------------------------------------

def test_mala_keeps_exact_samples_exact_and_ula_does_not(target, floor):
    eps = 0.25
    x0 = target.sample(N_INV, generator=gen(10))
    st = {}
    x = sample_mala(target.score, target.log_prob, x0, eps, 30, generator=gen(11), stats=st)
    assert 0.5 < st["acceptance_rate"] < 0.99  # the correction is actually rejecting moves
    assert_moments(x, target)
    assert_near_floor(x, target, floor, seed=12)
    # the same proposal without the Metropolis test drifts away: the check above can fail
    x_ula = sample_langevin(target.score, x0, eps, 30, generator=gen(11))
    assert not moments_ok(x_ula, target)


def test_preconditioned_mala_keeps_exact_samples_exact(target, floor):
    G = torch.tensor([[0.8, 0.2], [0.2, 0.6]], dtype=F64)
    x0 = target.sample(N_INV, generator=gen(20))
    st = {}
    x = sample_preconditioned_langevin(target.score, x0, 0.4, 30, preconditioner=G, log_prob_fn=target.log_prob,
                                       generator=gen(21), stats=st)
    assert 0.5 < st["acceptance_rate"] < 0.99
    assert st["nfe"] == 31 and st["n_log_prob"] == 31
    assert_moments(x, target)
    assert_near_floor(x, target, floor, seed=22)
    x_unadj = sample_preconditioned_langevin(target.score, x0, 0.4, 30, preconditioner=G, generator=gen(21))
    assert not moments_ok(x_unadj, target)


def test_special_cases_reproduce_mala_draw_for_draw(target):
    """Three exact identities with scorelab.samplers.sample_mala (its own tests check it):

    - preconditioned MALA with G = c I is MALA with step c * eps;
    - HMC with one leapfrog step h is MALA with step h^2 / 2 (Neal, 2011, section 5.2);
    - parallel tempering with the single temperature 1 is MALA.

    Each sampler draws the proposal noise and then the uniforms in the same order as
    sample_mala, so with one seed the chains must agree to round-off, and any error in an
    acceptance ratio shows up as a different accept decision.
    """
    x0 = target.sample(2000, generator=gen(35))
    st = {}
    ref = sample_mala(target.score, target.log_prob, x0, 0.5, 20, generator=gen(36), stats=st)
    pre = sample_preconditioned_langevin(target.score, x0, 0.25, 20, preconditioner=2.0,
                                         log_prob_fn=target.log_prob, generator=gen(36))
    hmc = sample_hmc(target.score, target.log_prob, x0, 1.0, 1, 20, generator=gen(36))
    pt = sample_parallel_tempering(target.score, target.log_prob, x0, [1.0], 0.5, 20, generator=gen(36))
    for x in (pre, hmc, pt):
        torch.testing.assert_close(x, ref, rtol=1e-9, atol=1e-9)
    assert st["acceptance_rate"] < 0.95  # enough rejections for a wrong ratio to show


@pytest.mark.parametrize("mass", [None, torch.tensor([[2.0, -0.5], [-0.5, 1.5]], dtype=F64)])
def test_hmc_keeps_exact_samples_exact(target, floor, mass):
    x0 = target.sample(N_INV, generator=gen(30))
    st = {}
    x = sample_hmc(target.score, target.log_prob, x0, 0.35, 6, 15, mass=mass, generator=gen(31), stats=st)
    assert 0.5 < st["acceptance_rate"] < 0.99
    assert (x - x0).abs().sum(-1).median() > 0.5  # the particles really moved
    assert_moments(x, target)
    assert_near_floor(x, target, floor, seed=32)


def test_hmc_step_jitter_keeps_invariance_and_breaks_resonance(target, floor):
    # invariance with a random step per chain and iteration
    x0 = target.sample(N_INV, generator=gen(33))
    x = sample_hmc(target.score, target.log_prob, x0, 0.35, 6, 15, step_jitter=0.5, generator=gen(34))
    assert_moments(x, target)
    assert_near_floor(x, target, floor, seed=34)
    # on N(0, 1), L h = 2 pi is a full period of the harmonic flow: fixed-step trajectories come back
    # to (nearly) where they started, whereas jittered ones do not
    gauss = sl.Gaussian(torch.zeros(1, dtype=F64), torch.ones(1, 1, dtype=F64))
    start = gauss.sample(500, generator=gen(37))
    h, L = 2 * math.pi / 40, 40
    fixed = sample_hmc(gauss.score, gauss.log_prob, start, h, L, 1, generator=gen(38))
    jittered = sample_hmc(gauss.score, gauss.log_prob, start, h, L, 1, step_jitter=0.3, generator=gen(38))
    assert float((fixed - start).abs().max()) < 0.05
    assert float((jittered - start).abs().median()) > 0.3


def test_parallel_tempering_cold_chain_keeps_exact_samples_exact(target, floor):
    x0 = target.sample(N_INV, generator=gen(40))
    st = {}
    x = sample_parallel_tempering(target.score, target.log_prob, x0, [1.0, 3.0, 9.0], [0.25, 0.75, 2.25], 30,
                                  generator=gen(41), stats=st)
    assert st["swap_acceptance"].shape == (2,)
    assert bool((st["swap_acceptance"] > 0.05).all())  # swaps happen, and must not bias the cold chain
    assert_moments(x, target)
    assert_near_floor(x, target, floor, seed=42)


# -- kinetic Langevin ------------------------------------------------------------------------

def splitting_variance(lam, h, scheme):
    """Configurational variance of a splitting on a Gaussian of variance lam (unit mass).

    BAOAB samples the position exactly (Leimkuhler & Matthews, 2013); OBABO samples the
    invariant law of velocity Verlet's modified energy, variance lam / (1 - h^2 / (4 lam)).
    """
    return lam if scheme == "BAOAB" else lam / (1 - h * h / (4 * lam))


@pytest.mark.parametrize("scheme", ["BAOAB", "OBABO"])
def test_kinetic_langevin_position_variance_on_a_gaussian(scheme):
    cov, R = rotated_cov([1.0, 3.0], 0.4)
    target = sl.Gaussian(torch.zeros(2, dtype=F64), cov)
    h, n = 0.9, 20_000
    x = sample_kinetic_langevin(target.score, torch.full((n, 2), 3.0, dtype=F64), h, 150, friction=1.0,
                                scheme=scheme, generator=gen(50))
    lam = torch.tensor([splitting_variance(v, h, scheme) for v in (1.0, 3.0)], dtype=F64)
    exact = R @ torch.diag(lam) @ R.T
    prods = x[:, :, None] * x[:, None, :]
    se = prods.std(0) / math.sqrt(n)
    assert bool(((prods.mean(0) - exact).abs() < 5 * se).all()), (prods.mean(0), exact)
    if scheme == "OBABO":
        assert bool(((prods.mean(0) - cov).abs() > 5 * se).any())  # OBABO's bias is visible at this h


def test_baoab_with_a_mass_matrix_is_still_exact_on_a_gaussian():
    """With x' = M^{1/2} x, BAOAB with mass M is unit-mass BAOAB on another Gaussian, so the positions
    are still exact.  The momenta (read after the final half kick) are not: per normal mode of
    frequency omega their variance is 1 - h^2 omega^2 / 4, i.e. Cov(p) = M - (h^2 / 4) Sigma^{-1}.
    """
    cov, _ = rotated_cov([0.5, 4.0], -0.3)
    target = sl.Gaussian(torch.zeros(2, dtype=F64), cov)
    mass = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=F64)
    n = 20_000
    h = 0.5
    x, p = sample_kinetic_langevin(target.score, torch.zeros(n, 2, dtype=F64), h, 150, friction=1.0, mass=mass,
                                   return_momentum=True, generator=gen(51))
    p_cov = mass - h * h / 4 * torch.linalg.inv(cov)
    for sample, exact in ((x, cov), (p, p_cov)):
        prods = sample[:, :, None] * sample[:, None, :]
        se = prods.std(0) / math.sqrt(n)
        assert bool(((prods.mean(0) - exact).abs() < 5 * se).all()), (prods.mean(0), exact)


def test_kinetic_langevin_reaches_a_non_gaussian_target_from_a_far_start(target, floor):
    x0 = torch.tensor([[6.0, -6.0]], dtype=F64).expand(N_INV, 2)
    st = {}
    x = sample_kinetic_langevin(target.score, x0, 0.2, 300, friction=1.5, generator=gen(60), stats=st)
    assert st["nfe"] == 301
    assert_moments(x, target)
    assert_near_floor(x, target, floor, seed=61)


def test_kinetic_langevin_without_friction_conserves_energy():
    target = sl.Gaussian(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    x0 = torch.tensor([[1.0, 0.0]], dtype=F64)
    p0 = torch.tensor([[0.0, 1.0]], dtype=F64)
    x, p = sample_kinetic_langevin(target.score, x0, 0.01, 157, friction=0.0, p0=p0, return_momentum=True,
                                   generator=gen(0))
    energy = 0.5 * (x.square().sum() + p.square().sum())
    assert float(energy) == pytest.approx(1.0, abs=1e-4)  # leapfrog error O(h^2)
    assert float(x[0, 0]) == pytest.approx(math.cos(1.57), abs=1e-3)  # harmonic motion x = cos t


# -- parallel tempering -----------------------------------------------------------------------

def test_parallel_tempering_replicas_sample_the_tempered_gaussians():
    """p = N(0, 1) tempered at T is N(0, T): every replica's variance must be its temperature."""
    target = sl.Gaussian(torch.zeros(1, dtype=F64), torch.ones(1, 1, dtype=F64))
    temps = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=F64)
    n = 4000
    st = {}
    xs = sample_parallel_tempering(target.score, target.log_prob, torch.zeros(n, 1, dtype=F64), temps, 0.8 * temps,
                                   200, swap_every=2, return_all=True, generator=gen(70), stats=st)
    assert xs.shape == (4, n, 1)
    v = xs.square().mean(1).squeeze(-1)
    se = temps * math.sqrt(2.0 / n)
    assert bool(((v - temps).abs() < 5 * se).all()), (v, temps)
    assert st["nfe"] == 4 * 201 and st["n_swap_rounds"] == 100
    assert st["acceptance_per_temperature"].shape == (4,)


def test_parallel_tempering_recovers_far_mode_weights_that_mala_misses():
    """Song & Ermon's mixture, weights 0.2 / 0.8 at (-5, -5) and (5, 5), started uniformly."""
    mix = sl.song_ermon_mixture()
    n = 2000
    x0 = torch.rand(n, 2, generator=gen(80)) * 16 - 8
    temps = torch.logspace(0, math.log10(40.0), 6)
    temps[0] = 1.0
    st = {}
    x_pt = sample_parallel_tempering(mix.score, mix.log_prob, x0, temps, 0.5 * temps, 400, generator=gen(81),
                                     stats=st)
    x_mala = sample_mala(mix.score, mix.log_prob, x0, 0.5, 2400, generator=gen(82))  # same NFE budget
    w_pt, w_mala = mode_weights(x_pt, mix), mode_weights(x_mala, mix)
    se = math.sqrt(0.2 * 0.8 / n)                  # binomial standard error of a mode fraction
    assert abs(float(w_pt[0]) - 0.2) < 5 * se, w_pt
    assert abs(float(w_mala[0]) - 0.2) > 15 * se, w_mala  # MALA keeps the basins' initial split
    assert bool((st["swap_acceptance"] > 0.3).all()), st["swap_acceptance"]


# -- bookkeeping: NFE, callbacks, determinism -------------------------------------------------

class Counting:
    """Wrap a function and count the points it is evaluated on."""

    def __init__(self, fn):
        self.fn, self.points, self.calls = fn, 0, 0

    def __call__(self, x):
        self.points += x.shape[0]
        self.calls += 1
        return self.fn(x)


def test_nfe_matches_the_number_of_score_evaluations(target):
    x0 = target.sample(7, generator=gen(90))
    cases = [
        (lambda s, lp, st: sample_preconditioned_langevin(s, x0, 0.1, 5, preconditioner=2.0, stats=st)),
        (lambda s, lp, st: sample_preconditioned_langevin(s, x0, 0.1, 5, preconditioner=2.0, log_prob_fn=lp,
                                                          stats=st)),
        (lambda s, lp, st: sample_kinetic_langevin(s, x0, 0.1, 5, stats=st)),
        (lambda s, lp, st: sample_hmc(s, lp, x0, 0.1, 4, 5, stats=st)),
        (lambda s, lp, st: sample_parallel_tempering(s, lp, x0, [1.0, 2.0, 4.0], 0.1, 5, stats=st)),
    ]
    for run in cases:
        s, st = Counting(target.score), {}
        run(s, target.log_prob, st)
        assert st["nfe"] == s.points // 7, (st["nfe"], s.points)


def test_callbacks_report_state_and_hmc_paths(target):
    x0 = target.sample(5, generator=gen(91))
    infos = []
    x = sample_hmc(target.score, target.log_prob, x0, 0.2, 4, 3, callback=infos.append, generator=gen(92))
    assert [info["i"] for info in infos] == [0, 1, 2]
    assert infos[-1]["path"].shape == (5, 5, 2)  # (L + 1, N, d)
    torch.testing.assert_close(infos[-1]["x"], x)
    rejected = ~infos[0]["accepted"]
    torch.testing.assert_close(infos[0]["path"][0], x0)  # the path starts at the current point
    torch.testing.assert_close(infos[0]["x"][rejected], x0[rejected])
    infos = []
    sample_kinetic_langevin(target.score, x0, 0.1, 2, callback=infos.append)
    assert set(infos[0]) >= {"i", "x", "p", "step_size", "friction"}
    infos = []
    sample_parallel_tempering(target.score, target.log_prob, x0, [1.0, 2.0], 0.1, 2, callback=infos.append)
    assert infos[0]["x_all"].shape == (2, 5, 2) and infos[0]["swapped"].shape == (1, 5)
    torch.testing.assert_close(infos[0]["x"], infos[0]["x_all"][0])


def test_same_seed_same_result_and_x0_untouched(target):
    x0 = target.sample(20, generator=gen(93))
    keep = x0.clone()
    for run in (
        lambda: sample_preconditioned_langevin(target.score, x0, 0.1, 5, preconditioner=[1.0, 2.0], generator=3),
        lambda: sample_kinetic_langevin(target.score, x0, 0.1, 5, generator=3),
        lambda: sample_hmc(target.score, target.log_prob, x0, 0.1, 3, 5, generator=3),
        lambda: sample_parallel_tempering(target.score, target.log_prob, x0, [1.0, 2.0], 0.1, 5, generator=3),
    ):
        torch.testing.assert_close(run(), run(), rtol=0, atol=0)
    torch.testing.assert_close(x0, keep, rtol=0, atol=0)


def test_float32_inputs_give_float32_outputs():
    target = sl.standard_gaussian(2)
    x0 = torch.zeros(4, 2)
    assert sample_preconditioned_langevin(target.score, x0, 0.1, 2, preconditioner=torch.eye(2)).dtype == torch.float32
    assert sample_kinetic_langevin(target.score, x0, 0.1, 2, mass=[1.0, 2.0]).dtype == torch.float32
    assert sample_hmc(target.score, target.log_prob, x0, 0.1, 2, 2).dtype == torch.float32
    assert sample_parallel_tempering(target.score, target.log_prob, x0, [1.0, 2.0], 0.1, 2).dtype == torch.float32


# -- clear errors -------------------------------------------------------------------------------

def test_clear_errors():
    t = sl.standard_gaussian(2)
    x0 = torch.zeros(3, 2)
    with pytest.raises(TypeError, match="score_fn"):
        sample_preconditioned_langevin(None, x0, 0.1, 2, preconditioner=1.0)
    with pytest.raises(ValueError, match=r"x: expected a non-empty tensor of shape \(N, d\)"):
        sample_preconditioned_langevin(t.score, torch.zeros(3), 0.1, 2, preconditioner=1.0)
    with pytest.raises(TypeError, match="floating"):
        sample_hmc(t.score, t.log_prob, torch.zeros(3, 2, dtype=torch.long), 0.1, 2, 2)
    with pytest.raises(ValueError, match="step_size"):
        sample_preconditioned_langevin(t.score, x0, -0.1, 2, preconditioner=1.0)
    with pytest.raises(ValueError, match=r"preconditioner: expected a number, a \(2,\) diagonal"):
        sample_preconditioned_langevin(t.score, x0, 0.1, 2, preconditioner=torch.eye(3))
    with pytest.raises(ValueError, match="positive-definite"):
        sample_preconditioned_langevin(t.score, x0, 0.1, 2, preconditioner=torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        sample_hmc(t.score, t.log_prob, x0, 0.1, 2, 2, mass=torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive diagonal"):
        sample_kinetic_langevin(t.score, x0, 0.1, 2, mass=[1.0, 0.0])
    with pytest.raises(ValueError, match="friction"):
        sample_kinetic_langevin(t.score, x0, 0.1, 2, friction=-1.0)
    with pytest.raises(ValueError, match="scheme"):
        sample_kinetic_langevin(t.score, x0, 0.1, 2, scheme="leapfrog")
    with pytest.raises(ValueError, match="p0"):
        sample_kinetic_langevin(t.score, x0, 0.1, 2, p0=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="n_leapfrog"):
        sample_hmc(t.score, t.log_prob, x0, 0.1, 0, 2)
    with pytest.raises(ValueError, match="n_steps"):
        sample_hmc(t.score, t.log_prob, x0, 0.1, 2, 2.5)
    with pytest.raises(ValueError, match="step_jitter"):
        sample_hmc(t.score, t.log_prob, x0, 0.1, 2, 2, step_jitter=1.0)
    with pytest.raises(ValueError, match=r"score_fn: expected an output of shape \(3, 2\)"):
        sample_kinetic_langevin(lambda x: x[:, :1], x0, 0.1, 2)
    with pytest.raises(ValueError, match=r"log_prob_fn: expected an output of shape \(3,\)"):
        sample_hmc(t.score, lambda x: x, x0, 0.1, 2, 2)
    with pytest.raises(ValueError, match="starting at exactly 1.0"):
        sample_parallel_tempering(t.score, t.log_prob, x0, [2.0, 4.0], 0.1, 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        sample_parallel_tempering(t.score, t.log_prob, x0, [1.0, 3.0, 2.0], 0.1, 2)
    with pytest.raises(ValueError, match=r"step_size: expected a number or a \(2,\) sequence"):
        sample_parallel_tempering(t.score, t.log_prob, x0, [1.0, 2.0], [0.1, 0.2, 0.3], 2)
    with pytest.raises(ValueError, match="local"):
        sample_parallel_tempering(t.score, t.log_prob, x0, [1.0, 2.0], 0.1, 2, local="hmc")
    with pytest.raises(ValueError, match=r"\(N, d\) or \(2, N, d\)"):
        sample_parallel_tempering(t.score, t.log_prob, torch.zeros(3, 3, 2), [1.0, 2.0], 0.1, 2)
    with pytest.raises(ValueError, match="swap_every"):
        sample_parallel_tempering(t.score, t.log_prob, x0, [1.0, 2.0], 0.1, 2, swap_every=0)
    with pytest.raises(TypeError, match="stats"):
        sample_hmc(t.score, t.log_prob, x0, 0.1, 2, 2, stats=[])
    with pytest.raises(TypeError, match="generator"):
        sample_kinetic_langevin(t.score, x0, 0.1, 2, generator="seed")
