"""Score-matching losses against independent references (section 4.2).

References used: analytic Laplacians (exact Gaussian scores, linear and element-wise maps),
``torch.autograd.functional.jacobian``, closed-form minimisers of quadratic losses, and
Monte-Carlo averages over projections with tolerances from their standard errors.
"""

import math

import pytest
import torch

import scorelab as sl
from scorelab.losses import (
    denoising_score_matching_loss,
    explicit_score_matching_loss,
    ncsn_loss,
    score_divergence,
    sliced_score_matching_loss,
)
from scorelab.nets import MLPScore

torch.set_num_threads(1)
F64 = torch.float64


def spd(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return a @ a.T / d + 0.5 * torch.eye(d, dtype=F64)


def gaussian(d, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    return sl.Gaussian(torch.randn(d, generator=g, dtype=F64), spd(d, seed))


def mlp64(d, seed=0):
    return MLPScore(d, hidden=32, depth=2, seed=seed).double()


# -- the exact divergence and the explicit (Hyvärinen) loss ----------------------

@pytest.mark.parametrize("d", [1, 3, 6])
def test_divergence_of_gaussian_score_is_minus_trace_of_precision(d):
    p = gaussian(d, seed=d)
    x = p.sample(50, generator=1)
    s, div = score_divergence(p.score, x)
    expected = -torch.linalg.inv(p.covariance_matrix).trace()
    torch.testing.assert_close(div, expected.expand(50), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s, p.score(x))


def test_divergence_of_elementwise_map_is_analytic():
    c = torch.tensor([0.5, -2.0, 3.0], dtype=F64)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    _, div = score_divergence(lambda z: c * torch.tanh(z) + z**2, x)
    expected = (c * (1 - torch.tanh(x) ** 2) + 2 * x).sum(-1)
    torch.testing.assert_close(div, expected, rtol=1e-12, atol=1e-12)


def test_divergence_of_network_matches_full_jacobian_trace():
    net = mlp64(4)
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    _, div = score_divergence(net, x)
    for i in range(7):
        jac = torch.autograd.functional.jacobian(lambda z: net(z[None])[0], x[i])
        torch.testing.assert_close(div[i], jac.trace(), rtol=1e-10, atol=1e-12)


def test_explicit_loss_value_for_exact_gaussian_score():
    p = gaussian(3, seed=3)
    x = p.sample(200, generator=4)
    precision = torch.linalg.inv(p.covariance_matrix)
    s_ref = -(x - p.mean) @ precision
    expected = -precision.trace() + 0.5 * (s_ref**2).sum(-1).mean()
    torch.testing.assert_close(explicit_score_matching_loss(p.score, x), expected, rtol=1e-10, atol=1e-12)


def test_explicit_loss_gradient_includes_the_trace_term():
    """For s(x) = W x + b: dL/dW = I + mean[s x^T], dL/db = mean[s]; the identity comes from the trace."""
    g = torch.Generator().manual_seed(5)
    lin = torch.nn.Linear(3, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 3, generator=g, dtype=F64))
        lin.bias.copy_(torch.randn(3, generator=g, dtype=F64))
    x = torch.randn(100, 3, generator=g, dtype=F64)
    explicit_score_matching_loss(lin, x).backward()
    with torch.no_grad():
        s = lin(x)
        grad_w = torch.eye(3, dtype=F64) + s.T @ x / 100
        grad_b = s.mean(0)
    torch.testing.assert_close(lin.weight.grad, grad_w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lin.bias.grad, grad_b, rtol=1e-10, atol=1e-12)


def test_explicit_loss_minimiser_is_the_empirical_gaussian_score():
    """ESM of a linear model is quadratic; its minimiser is -Cov_hat^{-1}(x - mean_hat)."""
    p = gaussian(2, seed=7)
    x = p.sample(500, generator=8)
    lin = torch.nn.Linear(2, 2).double()
    opt = torch.optim.LBFGS(lin.parameters(), lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = explicit_score_matching_loss(lin, x)
        loss.backward()
        return loss

    opt.step(closure)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / x.shape[0]
    w_star = -torch.linalg.inv(cov)
    torch.testing.assert_close(lin.weight.detach(), w_star, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lin.bias.detach(), -w_star @ mean, rtol=1e-6, atol=1e-6)


def test_explicit_loss_trains_a_network():
    net = mlp64(2)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    explicit_score_matching_loss(net, x).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0


# -- denoising score matching -----------------------------------------------------

def _dsm_linear_minimiser(x, sigma, scale, seed):
    """Minimise DSM over s(x) = theta x in 1-D by evaluating the (exactly quadratic) loss at 3 points."""
    thetas = torch.tensor([-1.0, 0.0, 1.0], dtype=F64)
    vals = torch.stack([
        denoising_score_matching_loss(lambda z, t=t: t * z, x, sigma, scale=scale, generator=seed)
        for t in thetas
    ])
    a = (vals[0] + vals[2] - 2 * vals[1]) / 2  # L(t) = a t^2 + b t + c
    b = (vals[2] - vals[0]) / 2
    return float(-b / (2 * a))


@pytest.mark.parametrize("s, sigma, scale", [(1.0, 0.5, 1.0), (1.5, 0.8, 1.0), (2.0, 1.0, 1.0),
                                             (1.0, math.sqrt(1 - 0.6), math.sqrt(0.6))])
def test_dsm_minimiser_for_linear_model_is_minus_one_over_noised_variance(s, sigma, scale):
    """1-D data N(0, s^2), x~ = scale x + sigma eps: optimum theta = -1 / (scale^2 s^2 + sigma^2)."""
    n, seed = 200_000, 11
    x = s * torch.randn(n, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
    theta_hat = _dsm_linear_minimiser(x, sigma, scale, seed)
    # the same noise, replayed, gives the least-squares minimiser -mean(eps x~ / sigma) / mean(x~^2) and,
    # by the delta method, its standard error
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    xt = (scale * x + sigma * eps)[:, 0]
    a_i, b_i = (eps[:, 0] * xt / sigma), xt**2
    A, B = a_i.mean(), b_i.mean()
    torch.testing.assert_close(torch.tensor(theta_hat, dtype=F64), -A / B, rtol=1e-8, atol=1e-10)
    cov = torch.cov(torch.stack([a_i, b_i]))
    var = (cov[0, 0] / B**2 + A**2 * cov[1, 1] / B**4 - 2 * A * cov[0, 1] / B**3) / n
    theta_star = -1.0 / (scale**2 * s**2 + sigma**2)
    assert abs(theta_hat - theta_star) < 5 * math.sqrt(float(var)), (theta_hat, theta_star)
    if scale == 1.0:  # variance-exploding noise: the optimum is not the clean score's -1/s^2
        assert abs(theta_hat + 1 / s**2) > 20 * math.sqrt(float(var))
    else:  # variance-preserving noise on N(0, 1) data keeps the law N(0, 1): theta* = -1 for every sigma
        assert theta_star == pytest.approx(-1.0)


def test_dsm_value_matches_manual_formula_and_is_reproducible():
    p = gaussian(3, seed=1)
    x = p.sample(30, generator=0)
    net = mlp64(3)
    loss = denoising_score_matching_loss(net, x, 0.4, generator=123)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(123), dtype=F64)
    expected = 0.5 * ((net(x + 0.4 * eps) + eps / 0.4) ** 2).sum(-1).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(denoising_score_matching_loss(net, x, 0.4, generator=123), loss)
    assert not torch.equal(denoising_score_matching_loss(net, x, 0.4, generator=124), loss)


def test_dsm_equals_hyvarinen_on_noised_data_plus_a_constant():
    """Over models s = theta x~, DSM(theta) - ESM_noised(theta) stays constant (up to Monte-Carlo slope)."""
    n, sigma, seed = 100_000, 0.5, 9
    x = 1.3 * torch.randn(n, 1, generator=torch.Generator().manual_seed(1), dtype=F64)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    xt = x + sigma * eps
    diffs, dsm = [], []
    thetas = (-2.0, -0.5, 0.5, 1.5)
    for theta in thetas:
        f = lambda z, t=theta: t * z  # noqa: E731
        d_val = float(denoising_score_matching_loss(f, x, sigma, generator=seed))
        diffs.append(d_val - float(explicit_score_matching_loss(f, xt).detach()))
        dsm.append(d_val)
    # d/dtheta of the difference is mean(x~ eps)/sigma - 1, whose standard deviation is about sqrt(var/n)
    slope_sd = math.sqrt(float((xt[:, 0] * eps[:, 0] / sigma).var()) / n)
    slopes = torch.diff(torch.tensor(diffs)) / torch.diff(torch.tensor(thetas, dtype=F64))
    assert float(slopes.abs().max()) < 5 * slope_sd
    assert max(dsm) - min(dsm) > 1.0  # the losses themselves do depend on theta


# -- sliced score matching ------------------------------------------------------

@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_ssm_is_unbiased_for_esm(projection, variance_reduced):
    """Averaged over directions, SSM equals Hyvärinen's objective on the same model and batch."""
    net = mlp64(3, seed=1)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 1.5
    esm = explicit_score_matching_loss(net, x).item()
    g = torch.Generator().manual_seed(42)
    draws = torch.tensor([
        sliced_score_matching_loss(net, x, projection=projection, variance_reduced=variance_reduced,
                                   generator=g).item()
        for _ in range(300)
    ])
    se = float(draws.std()) / math.sqrt(len(draws))
    assert abs(float(draws.mean()) - esm) < 4.5 * se, (float(draws.mean()), esm, se)
    # many directions in one call: same expectation, smaller error
    many = sliced_score_matching_loss(net, x, n_projections=300, projection=projection,
                                      variance_reduced=variance_reduced, generator=7).item()
    assert abs(many - esm) < 4.5 * se


def test_ssm_rademacher_vr_is_exact_for_diagonal_jacobian():
    """Element-wise maps have diagonal Jacobians: v^T J v = tr J for every +-1 vector v."""
    c = torch.tensor([0.7, -1.2, 2.0, 0.3], dtype=F64)
    f = lambda z: c * torch.sin(z) - z  # noqa: E731
    x = torch.randn(25, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    ssm = sliced_score_matching_loss(f, x, projection="rademacher", variance_reduced=True, generator=3)
    torch.testing.assert_close(ssm, explicit_score_matching_loss(f, x), rtol=1e-12, atol=1e-12)
    # Gaussian directions are not exact for the same map
    gauss = sliced_score_matching_loss(f, x, projection="gaussian", variance_reduced=True, generator=3)
    assert abs((gauss - explicit_score_matching_loss(f, x)).item()) > 1e-3


def test_ssm_matches_manual_jacobian_computation():
    net = mlp64(3, seed=2)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    loss = sliced_score_matching_loss(net, x, generator=77)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(77), dtype=F64)
    terms = []
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda z: net(z[None])[0], x[i])
        s = net(x[i:i + 1])[0]
        terms.append(v[i] @ jac @ v[i] + 0.5 * (v[i] @ s) ** 2)
    torch.testing.assert_close(loss, torch.stack(terms).mean(), rtol=1e-10, atol=1e-12)


def test_ssm_trains_a_network():
    net = mlp64(2)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    sliced_score_matching_loss(net, x, n_projections=2, generator=0).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())


# -- NCSN's multi-scale loss ---------------------------------------------------------

def test_ncsn_loss_matches_manual_formula():
    sigmas = torch.tensor([2.0, 1.0, 0.5, 0.1], dtype=F64)
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    seen = {}

    def score_fn(z, sigma):
        seen["sigma"] = sigma
        return -z / (1 + sigma[:, None] ** 2) + 0.1 * torch.sin(z)

    loss = ncsn_loss(score_fn, x, sigmas, generator=5)
    g = torch.Generator().manual_seed(5)
    idx = torch.randint(0, 4, (40,), generator=g)
    eps = torch.randn(x.shape, generator=g, dtype=F64)
    sig = sigmas[idx]
    xt = x + sig[:, None] * eps
    per_example = sig**2 * 0.5 * ((score_fn(xt, sig) + eps / sig[:, None]) ** 2).sum(-1)
    torch.testing.assert_close(loss, per_example.mean())
    assert seen["sigma"].shape == (40,)
    assert set(seen["sigma"].tolist()) <= set(sigmas.tolist())


def test_ncsn_loss_draws_levels_uniformly():
    sigmas = [1.0, 0.5, 0.25]
    seen = {}

    def score_fn(z, sigma):
        seen["sigma"] = sigma
        return torch.zeros_like(z)

    ncsn_loss(score_fn, torch.zeros(30_000, 1), sigmas, generator=0)
    counts = torch.stack([(seen["sigma"] == s).sum() for s in sigmas]).double()
    # binomial(30000, 1/3): standard deviation ~ 82
    assert float((counts - 10_000).abs().max()) < 5 * math.sqrt(30_000 * (1 / 3) * (2 / 3))


def test_ncsn_loss_weighting_at_the_exact_noised_score():
    """Data N(0, s^2 I_d) and the exact noised score: E loss = mean_sigma 1/2 d s^2 / (s^2 + sigma^2)."""
    s, d, n = 1.5, 2, 200_000
    sigmas = torch.tensor([5.0, 1.0, 0.2], dtype=F64)
    x = s * torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = sl.noised_score(sl.Gaussian(torch.zeros(d, dtype=F64), s**2 * torch.ones(d, dtype=F64)))

    def score_fn(z, sigma):  # exact per-example noised score of N(0, s^2 I)
        return -z / (s**2 + sigma[:, None] ** 2)

    torch.testing.assert_close(score_fn(x[:5], sigmas[:1].expand(5)), exact(x[:5], float(sigmas[0])))
    g = torch.Generator().manual_seed(1)
    per_batch = torch.tensor([float(ncsn_loss(score_fn, x[i::20], sigmas, generator=g)) for i in range(20)])
    expected = float((0.5 * d * s**2 / (s**2 + sigmas**2)).mean())
    se = float(per_batch.std()) / math.sqrt(20)
    assert abs(float(per_batch.mean()) - expected) < 5 * se + 1e-3
    # with weight 1 instead of sigma^2 the value would be very different
    unweighted = float((0.5 * d * s**2 / (sigmas**2 * (s**2 + sigmas**2))).mean())
    assert abs(unweighted - expected) > 50 * se


# -- bad input ---------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    f = lambda z: -z  # noqa: E731
    x = torch.randn(10, 2)
    with pytest.raises(TypeError, match="score_fn"):
        explicit_score_matching_loss("not callable", x)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        explicit_score_matching_loss(f, torch.randn(10))
    with pytest.raises(TypeError, match="floating"):
        explicit_score_matching_loss(f, torch.ones(10, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="output of shape"):
        explicit_score_matching_loss(lambda z: z.sum(-1), x)
    with pytest.raises(ValueError, match="autograd"):
        explicit_score_matching_loss(lambda z: torch.zeros_like(z), x)
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_loss(f, x, 0.0)
    with pytest.raises(ValueError, match="ncsn_loss"):
        denoising_score_matching_loss(f, x, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="projection"):
        sliced_score_matching_loss(f, x, projection="uniform")
    with pytest.raises(ValueError, match="n_projections"):
        sliced_score_matching_loss(f, x, n_projections=0)
    with pytest.raises(TypeError, match="generator"):
        sliced_score_matching_loss(f, x, generator="seed")
    g = lambda z, s: -z  # noqa: E731
    with pytest.raises(ValueError, match="sigmas"):
        ncsn_loss(g, x, [1.0, -0.5])
    with pytest.raises(ValueError, match="sigmas"):
        ncsn_loss(g, x, [])
    with pytest.raises(ValueError, match="sigmas"):
        ncsn_loss(g, x, torch.ones(2, 2))
    with pytest.raises(ValueError, match="output of shape"):
        ncsn_loss(lambda z, s: z[:, :1], x, [1.0])
