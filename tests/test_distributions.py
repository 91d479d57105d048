"""Exact distributions against independent references: autograd, Monte Carlo, torch.distributions."""

import math

import pytest
import torch

import scorelab as sl
from scorelab.distributions import Distribution

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def random_spd(d, g):
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.float64)


def full_cov_mixture(d, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    covs = torch.stack([random_spd(d, g) for _ in range(k)])
    means = 2 * torch.randn(k, d, generator=g, dtype=torch.float64)
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    return sl.GaussianMixture(w, means, covs)


def gaussian(d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return sl.Gaussian(torch.randn(d, generator=g, dtype=torch.float64), random_spd(d, g))


def all_cases():
    """(name, distribution) pairs covering every dimension, covariance type and factory."""
    cases = []
    for d in (1, 2, 5):
        cases.append((f"gaussian-{d}d", gaussian(d, seed=d)))
        cases.append((f"mixture-full-{d}d", full_cov_mixture(d, seed=d)))
    cases += [
        ("two_mode_1d", sl.two_mode_1d()),
        ("song_ermon", sl.song_ermon_mixture()),
        ("eight_gaussians", sl.eight_gaussians()),
        ("ring", sl.ring()),
        ("concentric_rings", sl.concentric_rings()),
        ("unequal-isotropic-3d", sl.GaussianMixture.isotropic([0.5, 0.3, 0.2], torch.randn(3, 3), [0.5, 1.0, 2.0])),
        ("standard-4d", sl.standard_gaussian(4)),
    ]
    return cases


CASES = all_cases()
IDS = [c[0] for c in CASES]


def autograd_score(dist, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(dist.log_prob(x).sum(), x)
    return g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,dist", CASES, ids=IDS)
def test_score_equals_autograd_of_log_prob(name, dist, dtype):
    g = torch.Generator().manual_seed(1)
    x = (dist.sample(64, generator=g).to(torch.float64) + 0.5 * torch.randn(64, dist.dim, generator=g,
                                                                               dtype=torch.float64)).to(dtype)
    s = dist.score(x)
    assert s.shape == x.shape and s.dtype == dtype
    # reference: autograd of log_prob in float64; float32 is judged relative to the field's scale
    ref = autograd_score(dist, x.double())
    atol = TOL[dtype]["atol"] * (1 + float(ref.abs().max()))
    torch.testing.assert_close(s.double(), ref, rtol=TOL[dtype]["rtol"], atol=atol)
    torch.testing.assert_close(s, autograd_score(dist, x), rtol=10 * TOL[dtype]["rtol"], atol=10 * atol)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_log_prob_matches_torch_distributions(d):
    mix = full_cov_mixture(d, seed=10 + d)
    m = mix._p.master
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(m["weights"]),
        torch.distributions.MultivariateNormal(m["means"], m["covs"]),
    )
    x = torch.randn(50, d, dtype=torch.float64) * 3
    torch.testing.assert_close(mix.log_prob(x), ref.log_prob(x))
    gauss = gaussian(d, seed=d)
    gm = gauss._p.master
    ref_g = torch.distributions.MultivariateNormal(gm["mean"], gm["cov"])
    torch.testing.assert_close(gauss.log_prob(x), ref_g.log_prob(x))


@pytest.mark.parametrize("name,dist", CASES, ids=IDS)
def test_samples_match_moments(name, dist):
    n = 40_000
    x = dist.sample(n, generator=torch.Generator().manual_seed(2)).to(torch.float64)
    cov = dist.covariance_matrix.to(torch.float64)
    se = (torch.diagonal(cov) / n).sqrt()  # standard error of each coordinate's mean
    assert ((x.mean(0) - dist.mean.to(torch.float64)).abs() <= 5 * se + 1e-9).all()
    # each covariance entry is a mean of products; its standard error comes from those products
    c = x - x.mean(0)
    prods = c[:, :, None] * c[:, None, :]
    emp_cov, se_cov = prods.mean(0), prods.std(0) / math.sqrt(n)
    assert ((emp_cov - cov).abs() <= 5 * se_cov + 1e-9).all()


@pytest.mark.parametrize("sigma,scale", [(0.5, 1.0), (2.0, 1.0), (0.8, 0.6), (0.3, 0.0)])
@pytest.mark.parametrize("name,dist", [c for c in CASES if c[0] in
                                       ("gaussian-2d", "mixture-full-2d", "song_ermon", "unequal-isotropic-3d")],
                         ids=["gaussian-2d", "mixture-full-2d", "song_ermon", "unequal-isotropic-3d"])
def test_perturbed_matches_monte_carlo_moments(name, dist, sigma, scale):
    g = torch.Generator().manual_seed(3)
    n = 60_000
    x0 = dist.sample(n, generator=g).to(torch.float64)
    xt = scale * x0 + sigma * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    pert = dist.perturbed(sigma, scale)
    assert type(pert) is type(dist)
    cov = pert.covariance_matrix.to(torch.float64)
    se = (torch.diagonal(cov) / n).sqrt()
    assert ((xt.mean(0) - pert.mean.to(torch.float64)).abs() <= 5 * se).all()
    rel = (torch.cov(xt.T) - cov).abs() / torch.diagonal(cov).sqrt().outer(torch.diagonal(cov).sqrt())
    assert rel.max() < 0.05
    # and the densities agree: mean log-density of the simulated points is the entropy estimate
    lp = pert.log_prob(xt)
    assert torch.isfinite(lp).all()


@pytest.mark.parametrize("sigma,scale", [(0.7, 1.0), (1.5, 0.8)])
def test_perturbed_score_is_posterior_expectation(sigma, scale):
    """Tweedie / the DSM identity: grad log p_sigma(x) = E[(scale * x0 - x) / sigma^2 | x].

    The posterior expectation is estimated independently by self-normalised importance
    sampling over exact prior draws x0, weighted by the Gaussian likelihood N(x; scale x0, sigma^2 I).
    """
    dist = full_cov_mixture(2, seed=7)
    pert = dist.perturbed(sigma, scale)
    g = torch.Generator().manual_seed(4)
    x0 = dist.sample(400_000, generator=g).to(torch.float64)
    queries = pert.sample(6, generator=g).to(torch.float64)
    for x in queries:
        logw = -((x - scale * x0) ** 2).sum(-1) / (2 * sigma**2)
        w = torch.softmax(logw, 0)
        est = (w[:, None] * (scale * x0 - x)).sum(0) / sigma**2
        ess = 1 / (w**2).sum()
        assert ess > 200
        exact = pert.score(x[None])[0]
        assert (est - exact).norm() < 0.05 * (1 + exact.norm())


def test_perturbed_of_gaussian_is_closed_form():
    g = gaussian(3, seed=5)
    p = g.perturbed(0.5, 2.0)
    m = g._p.master
    torch.testing.assert_close(p.mean.double(), 2.0 * m["mean"])
    torch.testing.assert_close(p.covariance_matrix.double(), 4.0 * m["cov"] + 0.25 * torch.eye(3, dtype=torch.float64))


FAR_FIELD = [c for c in CASES
             if c[0] in ("song_ermon", "eight_gaussians", "mixture-full-2d", "unequal-isotropic-3d", "gaussian-2d")]


@pytest.mark.parametrize("name,dist", FAR_FIELD, ids=[c[0] for c in FAR_FIELD])
def test_far_field_scores_finite_and_correct_in_float32(name, dist):
    """At |x| = 1e3 the score must be finite in float32 and agree with a float64 evaluation."""
    g = torch.Generator().manual_seed(6)
    dirs = torch.randn(32, dist.dim, generator=g, dtype=torch.float64)
    x64 = 1e3 * dirs / dirs.norm(dim=-1, keepdim=True)
    s32 = dist.score(x64.float())
    lp32 = dist.log_prob(x64.float())
    assert torch.isfinite(s32).all() and torch.isfinite(lp32).all()
    s64 = dist.score(x64)
    rel = (s32.double() - s64).norm(dim=-1) / s64.norm(dim=-1)
    assert rel.max() < 1e-3


def test_component_softmax_has_no_subnormal_weights_and_keeps_scores():
    """Points between far-apart components give float32 weights below 1e-38 (subnormal, slow on
    CPUs); softmax_components floors them at e^-60 of the largest, and the score is unchanged."""
    mix = sl.GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), 0.01)
    x = torch.linspace(-1.3, 1.3, 2001)[:, None] * torch.tensor([[1.0, 0.0]])  # sweeps the gap
    logits = torch.stack([-(x - m).square().sum(-1) / (2 * 0.01) for m in mix.means])
    plain = torch.softmax(logits, dim=0)
    tiny = torch.finfo(torch.float32).tiny
    assert ((plain > 0) & (plain < tiny)).any()  # the case exists: plain softmax makes subnormals
    floored = sl.distributions.softmax_components(logits)
    assert not ((floored > 0) & (floored < tiny)).any()
    assert float((floored - plain).abs().max()) < 1e-25
    torch.testing.assert_close(floored.sum(0), torch.ones(x.shape[0]))
    # float64 is left alone, and the float32 score still matches the float64 one
    torch.testing.assert_close(sl.distributions.softmax_components(logits.double()), torch.softmax(logits.double(), 0))
    s32, s64 = mix.score(x), mix.score(x.double())
    assert torch.isfinite(s32).all()
    torch.testing.assert_close(s32.double(), s64, rtol=1e-4, atol=1e-3)


def test_scores_at_the_mode_point_uphill():
    """Every score field points uphill: a small step along it increases log p (4.1.1)."""
    for _, dist in CASES:
        x = dist.sample(200, generator=torch.Generator().manual_seed(8)).double() * 1.3
        s = dist.score(x)
        step = 1e-4 * s / s.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        assert (dist.log_prob(x + step) >= dist.log_prob(x) - 1e-12).all()


def test_standard_gaussian_score_is_minus_x():
    x = torch.linspace(-4, 4, 41).unsqueeze(-1)
    torch.testing.assert_close(sl.standard_gaussian(1).score(x), -x)


def test_sampling_is_reproducible_with_generator_and_seed():
    p = sl.eight_gaussians()
    a = p.sample(100, generator=torch.Generator().manual_seed(11))
    b = p.sample(100, generator=torch.Generator().manual_seed(11))
    c = p.sample(100, generator=11)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert not torch.equal(a, p.sample(100, generator=12))


def test_noised_score_matches_perturbed():
    p = sl.song_ermon_mixture()
    f = sl.noised_score(p)
    x = torch.randn(10, 2)
    for s in (0.1, 1.0, 10.0):
        torch.testing.assert_close(f(x, s), p.perturbed(s).score(x))
        torch.testing.assert_close(f(x, torch.full((10,), s)), p.perturbed(s).score(x))
    sig = torch.tensor([0.1, 1.0, 0.1, 3.0, 1.0, 0.1, 3.0, 3.0, 1.0, 0.1])
    per_point = torch.cat([p.perturbed(float(s)).score(x[i:i + 1]) for i, s in enumerate(sig)])
    torch.testing.assert_close(f(x, sig), per_point)
    with pytest.raises(ValueError, match=r"\(10,\) tensor"):
        f(x, torch.linspace(0.1, 1, 7))


def test_empirical_distribution_and_memorising_score():
    data = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    emp = sl.EmpiricalDistribution(data)
    x = emp.sample(500, generator=0)
    assert all((data == xi).all(-1).any() for xi in x)
    with pytest.raises(NotImplementedError, match="perturbed"):
        emp.score(x)
    smooth = emp.perturbed(0.1)
    # near a data point the memorising score points straight back at it: (x_i - x) / sigma^2
    q = torch.tensor([[2.9, 0.05]])
    torch.testing.assert_close(smooth.score(q), (data[1] - q) / 0.01, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(smooth.score(q), autograd_score(smooth, q), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="sigma > 0"):
        emp.perturbed(0.0)


def double_well_energy(x):
    return ((x**2 - 1) ** 2).sum(-1) + 0.5 * x[:, 0] * x[:, 1]


def test_energy_model_score_needs_no_normaliser():
    """The autograd score of exp(-E) equals the score of the numerically normalised density."""
    model = sl.EnergyModel(double_well_energy, 2)
    n = 401
    grid = torch.linspace(-3, 3, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    logz = torch.logsumexp(-double_well_energy(pts), 0) + 2 * math.log(float(grid[1] - grid[0]))

    def normalised_log_prob(x):
        return -double_well_energy(x) - logz

    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    xg = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(normalised_log_prob(xg).sum(), xg)
    torch.testing.assert_close(model.score(x), ref)
    with pytest.raises(NotImplementedError, match="normalising constant"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        model.score(torch.zeros(3, 5))


def test_ising_analytic_score_matches_autograd_and_discrete_energy():
    ising = sl.IsingRelaxation(side=4, J=0.7, h=0.2, barrier=1.5)
    x = torch.randn(8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ising.energy(xg).sum(), xg)
    torch.testing.assert_close(ising.score(x), -grad)
    # discrete energy against an explicit double loop over lattice bonds
    s = torch.sign(x)
    grid = s.reshape(8, 4, 4)
    ref = torch.zeros(8, dtype=torch.float64)
    for i in range(4):
        for j in range(4):
            ref -= 0.7 * grid[:, i, j] * (grid[:, i, (j + 1) % 4] + grid[:, (i + 1) % 4, j])
    ref -= 0.2 * s.sum(-1)
    torch.testing.assert_close(ising.discrete_energy(s), ref)
    # at spin configurations the barrier vanishes: relaxed energy == discrete energy
    torch.testing.assert_close(ising.energy(s), ising.discrete_energy(s))


def test_distribution_is_a_score_function():
    p = sl.eight_gaussians()
    x = torch.randn(5, 2)
    assert isinstance(p, Distribution)
    torch.testing.assert_close(p(x), p.score(x))


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: sl.eight_gaussians().score(torch.zeros(4, 3)), ValueError, r"expected shape \(N, 2\), got \(4, 3\)"),
        (lambda: sl.eight_gaussians().score(torch.zeros(4, 2, dtype=torch.long)), TypeError, "floating"),
        (lambda: sl.eight_gaussians().score([[0.0, 0.0]]), TypeError, "torch.Tensor"),
        (lambda: sl.Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), ValueError, "positive-definite"),
        (lambda: sl.Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]), ValueError, "symmetric"),
        (lambda: sl.GaussianMixture([0.5, 0.5], torch.zeros(3, 2)), ValueError, r"weights: expected shape \(3,\)"),
        (lambda: sl.GaussianMixture([-1.0, 2.0], torch.zeros(2, 2)), ValueError, "non-negative"),
        (lambda: sl.eight_gaussians().perturbed(-1.0), ValueError, "sigma"),
        (lambda: sl.eight_gaussians().sample(-3), ValueError, "non-negative int"),
        (lambda: sl.eight_gaussians().sample(3, generator="seed"), TypeError, "generator"),
    ],
)
def test_bad_input_gets_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_one_dimensional_points_accept_flat_vectors():
    p = sl.two_mode_1d()
    x = torch.linspace(-3, 3, 7)
    assert p.score(x).shape == (7, 1)
    assert p.log_prob(x).shape == (7,)
