"""Chain diagnostics against independent references: AR(1) theory, direct sums, Lyapunov equations."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch

import scorelab as sl
from scorelab.diagnostics import (
    autocorrelation,
    distance_to_target_curve,
    effective_sample_size,
    integrated_autocorrelation_time,
    ula_autocorrelation,
    ula_stationary_variance,
)
from scorelab.metrics import sliced_wasserstein


def ar1(rho, T, n_chains, seed):
    """Stationary AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, unit variance: (T, n_chains)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((T, n_chains)) * math.sqrt(1 - rho**2)
    e[0] = rng.standard_normal(n_chains)  # x_0 drawn from the stationary law N(0, 1)
    return torch.from_numpy(scipy.signal.lfilter([1.0], [1.0, -rho], e, axis=0))


def direct_acf(x, max_lag):
    """O(T * K) reference: sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2 for a 1-D numpy series."""
    xc = x - x.mean()
    den = (xc * xc).sum()
    return np.array([(xc[: len(x) - k] * xc[k:]).sum() / den for k in range(max_lag + 1)])


# -- autocorrelation ------------------------------------------------------------------

def test_fft_autocorrelation_equals_direct_sum():
    chain = ar1(0.7, 300, 3, seed=0)
    acf = autocorrelation(chain, max_lag=40)
    assert acf.shape == (41, 3)
    for j in range(3):
        np.testing.assert_allclose(acf[:, j].numpy(), direct_acf(chain[:, j].numpy(), 40), rtol=0, atol=1e-12)


def test_autocorrelation_shapes_and_lag_zero():
    x = torch.randn(50, 4, 2, generator=torch.Generator().manual_seed(1))
    acf = autocorrelation(x, max_lag=5)
    assert acf.shape == (6, 4, 2) and acf.dtype == torch.float64
    torch.testing.assert_close(acf[0], torch.ones(4, 2, dtype=torch.float64))
    assert autocorrelation(x[:, 0, 0]).shape == (50,)


@pytest.mark.parametrize("rho", [0.9, -0.6])
def test_ar1_autocorrelation_matches_rho_to_the_k(rho):
    T, n, max_lag = 20_000, 16, 25
    acf = autocorrelation(ar1(rho, T, n, seed=2), max_lag=max_lag).mean(-1)
    k = np.arange(max_lag + 1)
    theory = rho**k
    # Bartlett's variance of the lag-k estimate for AR(1), averaged over n independent chains,
    # plus the O(tau / T) bias of the mean-subtracted estimator.
    var = ((1 + rho**2) * (1 - rho ** (2 * k)) / (1 - rho**2) - 2 * k * rho ** (2 * k)) / T
    tau = (1 + rho) / (1 - rho)
    tol = 5 * np.sqrt(var / n) + 2 * tau / T
    err = np.abs(acf.numpy() - theory)
    assert (err <= tol).all(), f"max excess {np.max(err - tol):.2e} at lag {np.argmax(err - tol)}"


# -- ESS ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, 0.8, -0.5])
def test_ess_of_ar1_matches_n_times_one_minus_rho_over_one_plus_rho(rho):
    T, n = 10_000, 24
    chain = ar1(rho, T, n, seed=3)
    expected = n * T * (1 - rho) / (1 + rho)
    per_chain = T / integrated_autocorrelation_time(chain)          # (n,): each column is one chain
    # the tolerance comes from the spread of the per-chain estimates, not from the answer
    se_total = float(per_chain.std()) * math.sqrt(n)
    ess = float(effective_sample_size(chain.unsqueeze(-1)))          # (T, n, 1): n chains, summed
    assert ess == pytest.approx(float(per_chain.sum()), rel=1e-12)
    assert abs(ess - expected) < 4 * se_total, (ess, expected, se_total)
    if rho < 0:
        assert ess > n * T  # antithetic chains beat independent draws


def test_ess_shapes_and_dimensions_are_separate():
    fast = ar1(0.0, 4000, 5, seed=4)
    slow = ar1(0.95, 4000, 5, seed=5)
    chain = torch.stack([fast, slow], -1)                            # (T, N=5, d=2)
    ess = effective_sample_size(chain)
    assert ess.shape == (2,)
    assert ess[0] > 10 * ess[1]
    assert effective_sample_size(chain[:, 0, :]).shape == (2,)       # (T, d): one chain
    assert effective_sample_size(chain[:, 0, 0]).ndim == 0           # (T,)


def test_constant_chain_counts_as_no_information():
    ess = effective_sample_size(torch.ones(100, 3))
    assert bool((ess < 2).all())


# -- ULA closed forms --------------------------------------------------------------------

def lyapunov_reference(eps, cov, G=None):
    """Stationary covariance of x' = (I - eps G P) x + sqrt(2 eps) G^{1/2} z, from scipy's solver."""
    d = cov.shape[0]
    G = np.eye(d) if G is None else G
    A = np.eye(d) - eps * G @ np.linalg.inv(cov)
    return scipy.linalg.solve_discrete_lyapunov(A, 2 * eps * G)


def test_ula_scalar_formula_matches_lyapunov_solution():
    for s2, eps in [(1.0, 0.1), (2.0, 1.5), (0.5, 0.9)]:
        v = ula_stationary_variance(eps, s2)
        assert isinstance(v, float)
        assert v == pytest.approx(float(lyapunov_reference(eps, np.array([[s2]]))[0, 0]), rel=1e-12)
        assert v > s2  # Euler–Maruyama always widens a Gaussian


def test_ula_matrix_and_preconditioned_versions_match_lyapunov_solution():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((3, 3))
    cov = a @ a.T + 0.5 * np.eye(3)
    b = rng.standard_normal((3, 3))
    G = b @ b.T + 0.3 * np.eye(3)
    eps = 0.4 * float(np.linalg.eigvalsh(cov).min())
    out = ula_stationary_variance(eps, torch.from_numpy(cov))
    np.testing.assert_allclose(out.numpy(), lyapunov_reference(eps, cov), rtol=1e-9, atol=1e-12)
    # preconditioned: stability depends on eigenvalues of G^{-1/2} cov G^{-1/2}
    Li = np.linalg.inv(np.linalg.cholesky(G))
    eps_g = 0.6 * float(np.linalg.eigvalsh(Li @ cov @ Li.T).min())
    out_g = ula_stationary_variance(eps_g, torch.from_numpy(cov), preconditioner=torch.from_numpy(G))
    np.testing.assert_allclose(out_g.numpy(), lyapunov_reference(eps_g, cov, G), rtol=1e-9, atol=1e-12)
    # G = cov: every direction has the same relative bias 1 / (1 - eps / 2)
    out_c = ula_stationary_variance(0.5, torch.from_numpy(cov), preconditioner=torch.from_numpy(cov))
    np.testing.assert_allclose(out_c.numpy(), cov / (1 - 0.25), rtol=1e-9)


def test_ula_diagonal_inputs_are_elementwise():
    v = ula_stationary_variance(0.3, torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(v, torch.tensor([1 / (1 - 0.15), 4 / (1 - 0.3 / 8)], dtype=torch.float64))
    vg = ula_stationary_variance(0.3, torch.tensor([1.0, 4.0]), preconditioner=torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(vg, torch.tensor([1.0, 4.0], dtype=torch.float64) / (1 - 0.15))


def test_ula_autocorrelation_is_a_power_of_the_ar1_coefficient():
    k = torch.arange(6)
    torch.testing.assert_close(ula_autocorrelation(0.5, 2.0, k), 0.75 ** k.double())
    assert float(ula_autocorrelation(3.0, 2.0, 1)) == pytest.approx(-0.5)


# -- distance curve ----------------------------------------------------------------------

def test_distance_curve_equals_direct_sliced_wasserstein_and_falls():
    target = sl.Gaussian(torch.zeros(2), torch.eye(2))
    g = torch.Generator().manual_seed(7)
    exact = target.sample(500, generator=g)
    base = target.sample(500, generator=g)
    shifts = [4.0, 2.0, 1.0, 0.5, 0.0]
    frames = torch.stack([base + s for s in shifts])                # (T=5, N, d)
    curve = distance_to_target_curve(frames, exact, seed=3)
    direct = [sliced_wasserstein(f, exact, generator=torch.Generator().manual_seed(3)) for f in frames]
    torch.testing.assert_close(curve, torch.tensor(direct, dtype=torch.float64))
    assert bool((curve[1:] < curve[:-1]).all())
    # callback dicts, a recorder-like object and `every` give the same numbers
    dicts = [{"i": i, "x": f} for i, f in enumerate(frames)]
    torch.testing.assert_close(distance_to_target_curve(dicts, exact, seed=3), curve)

    class Recorder:
        trajectory = frames

    torch.testing.assert_close(distance_to_target_curve(Recorder(), exact, every=2, seed=3), curve[::2])


# -- errors ------------------------------------------------------------------------------

def test_clear_errors():
    with pytest.raises(ValueError, match="time steps"):
        effective_sample_size(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\(T,\), \(T, d\) or \(T, N, d\)"):
        autocorrelation(torch.randn(10, 2, 2, 2))
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(torch.randn(10), max_lag=10)
    with pytest.raises(ValueError, match="NaN or inf"):
        effective_sample_size(torch.tensor([1.0, float("nan"), 2.0, 3.0, 4.0]))
    with pytest.raises(TypeError, match="chain"):
        autocorrelation("abc")
    with pytest.raises(ValueError, match="unstable"):
        ula_stationary_variance(2.0, 1.0)
    with pytest.raises(ValueError, match="unstable"):
        ula_stationary_variance(1.0, torch.diag(torch.tensor([4.0, 0.4])))
    with pytest.raises(ValueError, match="step_size"):
        ula_stationary_variance(-0.1, 1.0)
    with pytest.raises(ValueError, match="positive"):
        ula_stationary_variance(0.1, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="preconditioner"):
        ula_stationary_variance(0.1, torch.eye(2), preconditioner=torch.ones(3))
    with pytest.raises(ValueError, match="positive-definite"):
        ula_stationary_variance(0.1, torch.eye(2), preconditioner=torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="lags"):
        ula_autocorrelation(0.1, 1.0, [0.5])
    with pytest.raises(ValueError, match="dimension"):
        distance_to_target_curve(torch.zeros(3, 10, 2), torch.zeros(10, 3))
    with pytest.raises(ValueError, match=r"\(T, N, d\)"):
        distance_to_target_curve(torch.zeros(10, 2), torch.zeros(10, 2))
    with pytest.raises(ValueError, match="'x'"):
        distance_to_target_curve([{"i": 0}], torch.zeros(10, 2))
