"""Tests for scorelab.sde_samplers (sections 4.5.2-4.5.3) against independent references.

References used:
- fresh exact samples of the data distribution and the sliced-Wasserstein floor of two exact
  sample sets (``scorelab.metrics.sliced_wasserstein_floor``): what a perfect sampler scores,
  with a negative control showing the criterion rejects a sampler that is off;
- exact moments of Gaussian data, which every sampler driven by the exact score must reproduce
  (Monte-Carlo tolerance from the standard error, plus the scheme's O(h) bias);
- a tight adaptive solution (DOP853, rtol = atol = 1e-10) of the probability-flow ODE, against
  which the fixed-step solvers must show their convergence order;
- one step of ``sde.reverse(score_fn)`` (the object surface) against one sampler step;
- a counting wrapper around the score for the NFE bookkeeping.

Every draw uses a fixed seed, so the file is deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import gen, near_floor, sw_to_target  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.metrics import sliced_wasserstein_floor
from scorelab.sde_samplers import (
    karras_times,
    langevin_step_size,
    sample_dpm_solver_2,
    sample_euler_maruyama,
    sample_heun_karras,
    sample_pc,
    sample_probability_flow,
    sample_probability_flow_adaptive,
    sample_reverse_diffusion,
    time_grid,
)
from scorelab.sdes import VESDE, VPSDE, SubVPSDE, exact_score_fn

torch.set_num_threads(1)

SDES = {
    "ve": lambda: VESDE(sigma_min=0.01, sigma_max=50.0),
    "vp": lambda: VPSDE(),
    "subvp": lambda: SubVPSDE(),
}

# (sampler, keyword arguments) with step counts that keep the bias below the floor's noise
SAMPLERS = {
    "euler_maruyama": (sample_euler_maruyama, dict(n_steps=300, generator=1)),
    "reverse_diffusion": (sample_reverse_diffusion, dict(n_steps=300, generator=1)),
    "pc": (sample_pc, dict(n_steps=200, snr=0.1, generator=1)),
    "ode_euler": (sample_probability_flow, dict(method="euler", n_steps=200)),
    "ode_heun": (sample_probability_flow, dict(method="heun", n_steps=100)),
    "ode_rk45": (sample_probability_flow_adaptive, dict(solver="scipy", method="RK45", rtol=1e-4, atol=1e-4)),
    "ode_dopri5": (sample_probability_flow_adaptive, dict(solver="torchdiffeq", method="dopri5", rtol=1e-4, atol=1e-4)),
    "heun_karras": (sample_heun_karras, dict(n_steps=12)),
    "dpm_solver_2": (sample_dpm_solver_2, dict(n_steps=12)),
    "dpm_solver_2_karras": (sample_dpm_solver_2, dict(n_steps=12, spacing="karras")),
}


N_SW = 2000


@pytest.fixture(scope="module")
def target():
    return sl.eight_gaussians()


@pytest.fixture(scope="module")
def floor(target):
    return sliced_wasserstein_floor(target, N_SW, n_repeats=10, generator=gen(100))


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_sampler_with_exact_score_reaches_target(name, sampler, target, floor):
    sde = SDES[name]()
    fn, kwargs = SAMPLERS[sampler]
    x_T = sde.prior_sampling((N_SW, 2), generator=gen(2))
    x = fn(exact_score_fn(sde, target), x_T, sde, **kwargs)
    assert x.shape == (N_SW, 2) and torch.isfinite(x).all()
    sw = sw_to_target(x, target, seed=3)
    assert near_floor(sw, floor), f"{sampler} on {name}: SW {sw:.3f} vs floor {floor[0]:.3f} +- {floor[1]:.3f}"


def test_near_floor_criterion_rejects_poor_samplers(target, floor):
    """Negative controls: too few steps, or the score of the wrong distribution, fail the criterion."""
    sde = VPSDE()
    x_T = sde.prior_sampling((N_SW, 2), generator=gen(2))
    coarse = sample_euler_maruyama(exact_score_fn(sde, target), x_T, sde, n_steps=4, generator=1)
    assert not near_floor(sw_to_target(coarse, target, seed=3), floor)
    wrong = sample_heun_karras(exact_score_fn(sde, sl.eight_gaussians(radius=3.2)), x_T, sde, n_steps=12)
    assert not near_floor(sw_to_target(wrong, target, seed=3), floor)


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("sampler", ["euler_maruyama", "reverse_diffusion", "pc", "ode_heun"])
def test_sampler_reproduces_gaussian_moments(name, sampler):
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    dist = sl.Gaussian(mu, cov)
    sde = SDES[name]()
    fn, kwargs = SAMPLERS[sampler]
    n = 20000
    x_T = sde.prior_sampling((n, 2), generator=gen(4), dtype=torch.float64)
    x = fn(exact_score_fn(sde, dist), x_T, sde, **kwargs)
    # SE of the mean ~ sqrt(1/n) = 0.007 and of the covariance entries ~ sqrt(2/n) = 0.01;
    # the deterministic ODE also carries the prior mismatch (p_T is not exactly N(0, prior_std^2)),
    # a shift of at most a few 1e-2 here
    tol_mean = 0.035 if sampler.startswith("ode") else 0.03
    torch.testing.assert_close(x.mean(0), mu, atol=tol_mean, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.05, rtol=0)


# -- the probability-flow ODE solvers against a tight reference ---------------------------

@pytest.fixture(scope="module")
def ode_problem():
    out = {}
    for name in ("ve", "vp"):
        sde, dist = SDES[name](), sl.eight_gaussians()
        score = exact_score_fn(sde, dist)
        x_T = sde.prior_sampling((200, 2), generator=gen(5), dtype=torch.float64)
        ref = sample_probability_flow_adaptive(score, x_T, sde, method="DOP853", rtol=1e-10, atol=1e-10,
                                               denoise=False)
        out[name] = (sde, score, x_T, ref)
    return out


def _error(x, ref):
    return float((x - ref).norm(dim=-1).mean())


@pytest.mark.parametrize("name", ["ve", "vp"])
@pytest.mark.parametrize("method,steps,order", [
    ("euler", (80, 160), 1), ("heun", (80, 160), 2), ("karras", (40, 80), 2), ("dpm2", (40, 80), 2),
    ("dpm2_karras", (40, 80), 2)])
def test_ode_solvers_converge_at_their_order(ode_problem, name, method, steps, order):
    sde, score, x_T, ref = ode_problem[name]

    def run(n):
        if method in ("euler", "heun"):
            return sample_probability_flow(score, x_T, sde, n_steps=n, method=method, denoise=False)
        if method == "karras":
            return sample_heun_karras(score, x_T, sde, n_steps=n, denoise=False)
        spacing = "karras" if method == "dpm2_karras" else "logsnr"
        return sample_dpm_solver_2(score, x_T, sde, n_steps=n, spacing=spacing, denoise=False)

    e1, e2 = _error(run(steps[0]), ref), _error(run(steps[1]), ref)
    ratio = e1 / e2  # halving the step divides the error by 2^order
    assert 2**order * 0.8 < ratio < 2**order * 1.25, (e1, e2, ratio)


@pytest.mark.parametrize("solver,method", [("scipy", "RK45"), ("scipy", "RK23"), ("torchdiffeq", "dopri5"),
                                           ("torchdiffeq", "bosh3")])
def test_adaptive_solvers_meet_their_tolerance(ode_problem, solver, method):
    sde, score, x_T, ref = ode_problem["vp"]
    errors, nfes = [], []
    for tol in (1e-3, 1e-6):
        stats = {}
        x = sample_probability_flow_adaptive(score, x_T, sde, solver=solver, method=method, rtol=tol, atol=tol,
                                             denoise=False, stats=stats)
        errors.append(_error(x, ref))
        nfes.append(stats["nfe"])
    assert errors[1] < 1e-3 and errors[1] < errors[0] / 10
    assert nfes[1] > nfes[0]


def test_torchdiffeq_fixed_step_method(ode_problem):
    sde, score, x_T, ref = ode_problem["vp"]
    x = sample_probability_flow_adaptive(score, x_T, sde, solver="torchdiffeq", method="rk4",
                                         options={"step_size": 0.01}, denoise=False)
    assert _error(x, ref) < 1e-3


# -- one step equals the SDE object's formulas ------------------------------------------------

@pytest.mark.parametrize("name", list(SDES))
def test_one_step_equals_reverse_sde_object(name):
    sde, dist = SDES[name](), sl.eight_gaussians()
    score = exact_score_fn(sde, dist)
    x = 2 * torch.randn(16, 2, generator=gen(6), dtype=torch.float64)
    t0, t1 = 0.6, 0.55
    ts = torch.tensor([t0, t1], dtype=torch.float64)
    h = t0 - t1
    z = torch.randn(16, 2, generator=gen(7), dtype=torch.float64)  # the sampler's first draw with seed 7

    drift, diffusion = sde.reverse(score).sde(x, t0)
    em = sample_euler_maruyama(score, x, sde, ts=ts, denoise=False, generator=7)
    torch.testing.assert_close(em, x - drift * h + diffusion[:, None] * math.sqrt(h) * z)

    rev_f, rev_G = sde.reverse(score).discretize(x, t0, dt=h)
    rd = sample_reverse_diffusion(score, x, sde, ts=ts, denoise=False, generator=7)
    torch.testing.assert_close(rd, x - rev_f + rev_G[:, None] * z)

    ode_drift, _ = sde.reverse(score, probability_flow=True).sde(x, t0)
    pf = sample_probability_flow(score, x, sde, ts=ts, method="euler", denoise=False)
    torch.testing.assert_close(pf, x - ode_drift * h)


def test_langevin_corrector_step():
    sde, dist = VPSDE(), sl.eight_gaussians()
    score = exact_score_fn(sde, dist)
    x = torch.randn(32, 2, generator=gen(8), dtype=torch.float64)
    ts = torch.tensor([0.5, 0.45], dtype=torch.float64)
    snr = 0.2
    out = sample_pc(score, x, sde, ts=ts, predictor=None, snr=snr, denoise=False, generator=9)
    s = score(x, 0.45)
    z = torch.randn(32, 2, generator=gen(9), dtype=torch.float64)
    # 1 - beta_i of the step h = 0.05 ending at 0.45: exp(-int_0.40^0.45 beta), beta linear
    alpha = math.exp(-float(sde.beta(torch.tensor(0.425))) * 0.05)
    eps = 2 * alpha * (snr * float(z.norm(dim=-1).mean()) / float(s.norm(dim=-1).mean())) ** 2
    assert math.isclose(langevin_step_size(s, z, snr, alpha), eps)
    torch.testing.assert_close(out, x + eps * s + math.sqrt(2 * eps) * z)


def test_predictors_differ_and_corrector_changes_the_result():
    sde, dist = VESDE(0.01, 50.0), sl.eight_gaussians()
    score = exact_score_fn(sde, dist)
    x_T = sde.prior_sampling((100, 2), generator=gen(10))
    a = sample_pc(score, x_T, sde, n_steps=20, predictor="reverse_diffusion", corrector=None, generator=1)
    b = sample_pc(score, x_T, sde, n_steps=20, predictor="euler_maruyama", corrector=None, generator=1)
    c = sample_pc(score, x_T, sde, n_steps=20, predictor="reverse_diffusion", corrector="langevin", generator=1)
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


# -- bookkeeping: NFE, callback, seeds, shapes ---------------------------------------------

class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, t):
        self.calls += 1
        assert t.shape == (x.shape[0],)
        return self.fn(x, t)


@pytest.mark.parametrize("sampler,kwargs,expected", [
    (sample_euler_maruyama, dict(n_steps=7), 7 + 1),
    (sample_reverse_diffusion, dict(n_steps=7, denoise=False), 7),
    (sample_pc, dict(n_steps=7, n_corrector_steps=2), 7 * 3 + 1),
    (sample_pc, dict(n_steps=7, predictor=None, n_corrector_steps=2, denoise=False), 14),
    (sample_probability_flow, dict(n_steps=7, method="euler"), 8),
    (sample_probability_flow, dict(n_steps=7, method="heun"), 15),
    (sample_heun_karras, dict(n_steps=7), 15),
    (sample_dpm_solver_2, dict(n_steps=7, denoise=False), 14),
    (sample_probability_flow_adaptive, dict(), None),
])
def test_nfe_is_counted(sampler, kwargs, expected):
    sde = VPSDE()
    score = Counting(exact_score_fn(sde, sl.eight_gaussians()))
    stats = {}
    sampler(score, sde.prior_sampling((10, 2), generator=gen(11)), sde, stats=stats, **kwargs)
    assert stats["nfe"] == score.calls
    if expected is not None:
        assert score.calls == expected


def test_callback_reports_every_step():
    sde = VESDE(0.01, 50.0)
    score = exact_score_fn(sde, sl.eight_gaussians())
    frames = []
    x_T = sde.prior_sampling((10, 2), generator=gen(12))
    sample_pc(score, x_T, sde, n_steps=5, n_corrector_steps=1, callback=frames.append, generator=1)
    assert [f["i"] for f in frames] == list(range(11))
    assert [f["kind"] for f in frames[:2]] == ["predictor", "corrector"]
    assert frames[-1]["denoise"] and frames[-1]["t"] == 0.0
    assert math.isclose(frames[-2]["t"], 1e-3)
    assert all(f["x"].shape == (10, 2) for f in frames)
    frames.clear()
    sample_probability_flow_adaptive(score, x_T, sde, t_eval=[0.5, 0.1], callback=frames.append, denoise=False)
    assert [f["t"] for f in frames] == [0.5, 0.1, 1e-3]


def test_seeds_and_input_untouched():
    sde = VPSDE()
    score = exact_score_fn(sde, sl.eight_gaussians())
    x_T = sde.prior_sampling((50, 2), generator=gen(13))
    copy = x_T.clone()
    a = sample_pc(score, x_T, sde, n_steps=10, generator=3)
    b = sample_pc(score, x_T, sde, n_steps=10, generator=3)
    c = sample_pc(score, x_T, sde, n_steps=10, generator=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x_T, copy)
    d = sample_probability_flow(score, x_T, sde, n_steps=10)
    assert torch.equal(d, sample_probability_flow(score, x_T, sde, n_steps=10))  # deterministic


@pytest.mark.parametrize("name", ["ve", "vp"])
@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samplers_never_write_to_their_input(name, sampler, dtype):
    """The samplers do not copy x on entry, so no update may write into it (nor into the
    caller's score output); the result is a new tensor."""
    sde = SDES[name]()
    exact = exact_score_fn(sde, sl.eight_gaussians())
    returned = []

    def score(x, t):  # hands out a tensor it keeps, as a cached or memoised score might
        s = exact(x, t)
        returned.append((s, s.clone()))
        return s

    x_T = sde.prior_sampling((64, 2), generator=gen(14), dtype=dtype)
    copy = x_T.clone()
    fn, kwargs = SAMPLERS[sampler]
    kwargs = {k: (min(v, 8) if k == "n_steps" else v) for k, v in kwargs.items()}
    out = fn(score, x_T, sde, **kwargs)
    assert torch.equal(x_T, copy)
    assert out.data_ptr() != x_T.data_ptr()
    assert all(torch.equal(s, kept) for s, kept in returned)


@pytest.mark.parametrize("shape", [(400, 1), (400, 2, 2, 2)])
def test_samplers_on_1d_points_and_images(shape):
    d = math.prod(shape[1:])
    dist = sl.Gaussian(torch.zeros(d), 0.25 * torch.ones(d))
    sde = VESDE(0.01, 20.0)
    score = exact_score_fn(sde, dist)
    x_T = sde.prior_sampling(shape, generator=gen(14), dtype=torch.float64)
    for x in (sample_pc(score, x_T, sde, n_steps=100, generator=1),
              sample_heun_karras(score, x_T, sde, n_steps=15),
              sample_probability_flow_adaptive(score, x_T, sde)):
        assert x.shape == shape
        # pooled variance over 400 * d entries: SE ~ 0.25 * sqrt(2 / (400 d)) ~ 0.018 for d = 1
        assert abs(float(x.var()) - 0.25) < 0.08


def test_time_grids():
    sde = VPSDE()
    ts = time_grid(sde, 10, 1e-3)
    assert ts.shape == (11,) and ts[0] == 1.0 and math.isclose(float(ts[-1]), 1e-3)
    kt = karras_times(sde, 10, 1e-3, rho=7.0)
    assert kt.shape == (11,) and torch.all(kt[1:] < kt[:-1])
    assert kt[0] == 1.0 and math.isclose(float(kt[-1]), 1e-3)
    r = sde.noise_ratio(kt) ** (1 / 7)  # equally spaced in r^(1/rho)
    torch.testing.assert_close(r[1:] - r[:-1], torch.full((10,), float(r[1] - r[0]), dtype=torch.float64))


def test_bad_inputs():
    sde = VPSDE()
    score = exact_score_fn(sde, sl.eight_gaussians())
    x = torch.zeros(5, 2)
    with pytest.raises(TypeError, match="sde"):
        sample_pc(score, x, "vp")
    with pytest.raises(TypeError, match="score_fn"):
        sample_pc("score", x, sde)
    with pytest.raises(ValueError, match="score_fn: expected an output of shape"):
        sample_euler_maruyama(lambda x, t: x[:, :1], x, sde, n_steps=3)
    with pytest.raises(ValueError, match="n_steps"):
        sample_euler_maruyama(score, x, sde, n_steps=0)
    with pytest.raises(ValueError, match="t_eps"):
        sample_probability_flow(score, x, sde, t_eps=1.0)
    with pytest.raises(ValueError, match="predictor"):
        sample_pc(score, x, sde, predictor="ancestral")
    with pytest.raises(ValueError, match="at least one"):
        sample_pc(score, x, sde, predictor=None, corrector=None)
    with pytest.raises(ValueError, match="snr"):
        sample_pc(score, x, sde, snr=0.0)
    with pytest.raises(ValueError, match="method"):
        sample_probability_flow(score, x, sde, method="rk4")
    with pytest.raises(ValueError, match="method"):
        sample_probability_flow_adaptive(score, x, sde, method="dopri5")  # a torchdiffeq name for scipy
    with pytest.raises(ValueError, match="solver"):
        sample_probability_flow_adaptive(score, x, sde, solver="jax")
    with pytest.raises(ValueError, match="decreasing"):
        sample_probability_flow(score, x, sde, ts=torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match="t_eval"):
        sample_probability_flow_adaptive(score, x, sde, t_eval=[0.1, 0.5])
    with pytest.raises(ValueError, match="finite"):
        sample_pc(score, torch.full((5, 2), float("nan")), sde)
    with pytest.raises(TypeError, match="denoise"):
        sample_probability_flow(score, x, sde, n_steps=2, denoise="yes")
    with pytest.raises(TypeError, match="callback"):
        sample_pc(score, x, sde, n_steps=2, callback=3)
    with pytest.raises(ValueError, match="spacing"):
        sample_dpm_solver_2(score, x, sde, n_steps=2, spacing="cosine")
    with pytest.raises(ValueError, match="rho"):
        sample_dpm_solver_2(score, x, sde, n_steps=2, spacing="karras", rho=0.0)


@pytest.mark.parametrize("name", list(SDES))
def test_simulate_forward_reaches_the_marginal(name):
    from scorelab.sde_samplers import simulate_forward

    sde = SDES[name]()
    n = 20000
    x0 = torch.tensor([[1.5, -2.0]], dtype=torch.float64).expand(n, 2)
    frames = []
    x = simulate_forward(x0, sde, n_steps=500, t_end=0.5, generator=1, callback=frames.append)
    assert len(frames) == 500 and math.isclose(frames[-1]["t"], 0.5)
    mean, std = sde.marginal_prob(x0[:1], 0.5)
    # SE of the mean std/sqrt(n), of the std std/sqrt(2n); Euler adds an O(h) relative bias (< 2%)
    assert torch.all((x.mean(0) - mean[0]).abs() < 5 * float(std) / math.sqrt(n) + 0.02 * mean[0].abs())
    assert torch.all((x.std(0) - std).abs() < 5 * float(std) / math.sqrt(2 * n) + 0.02 * std)
