"""Tests for scorelab.samplers against exact samples and closed forms (sections 4.1.2, 4.3).

References used:
- fresh exact samples of the target and the sliced-Wasserstein floor of two exact sample sets
  (``scorelab.metrics.sliced_wasserstein_floor``): what a perfect sampler scores;
- the closed-form stationary variance of ULA on a Gaussian N(0, v) with step a:
  the chain x' = (1 - a/v) x + sqrt(2a) z has variance v / (1 - a / (2 v));
- exact moments of the target for MALA's invariance;
- Song & Ermon (2019)'s mode-weight experiment with exact noised scores.

Monte-Carlo tolerances are a few standard errors of the estimator (stated at each assert); every
draw uses a fixed seed, so the file is deterministic.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from reference import gen, near_floor, sw_to_target  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.metrics import mode_weights, sliced_wasserstein_floor
from scorelab.samplers import geometric_sigmas, sample_annealed_langevin, sample_langevin, sample_mala

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def target():
    """Two overlapping, unequal, anisotropic-looking blobs that Langevin mixes between quickly."""
    return sl.GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-1.5, 0.0], [1.0, 1.0]]),
                              torch.tensor([0.5, 0.8]))


N_SW = 4000


@pytest.fixture(scope="module")
def floor(target):
    """Mean and std of SW between two independent exact sample sets of size N_SW."""
    return sliced_wasserstein_floor(target, N_SW, n_repeats=10, generator=gen(100))


# -- geometric schedule ----------------------------------------------------------

def test_geometric_sigmas_end_points_and_constant_ratio():
    s = geometric_sigmas(20.0, 0.01, 10, dtype=torch.float64)
    assert s.shape == (10,)
    assert s[0].item() == 20.0 and s[-1].item() == 0.01
    ratios = s[1:] / s[:-1]
    expected = (0.01 / 20.0) ** (1 / 9)
    torch.testing.assert_close(ratios, torch.full_like(ratios, expected), rtol=1e-12, atol=0)
    assert bool((s[1:] < s[:-1]).all())
    assert geometric_sigmas(1.0, 0.1, 4).dtype == torch.get_default_dtype()
    assert geometric_sigmas(2.0, 2.0, 1).tolist() == [2.0]


@pytest.mark.parametrize("args, match", [
    ((0.01, 20.0, 10), "sigma_max > sigma_min"),
    ((20.0, 0.0, 10), "sigma_min"),
    ((-1.0, 0.1, 10), "sigma_max"),
    ((20.0, 0.01, 0), "n_levels"),
    ((20.0, 0.01, 2.5), "n_levels"),
    ((20.0, 0.01, 1), "n_levels=1"),
])
def test_geometric_sigmas_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        geometric_sigmas(*args)


# -- unadjusted Langevin -----------------------------------------------------------

@pytest.mark.parametrize("eps", [0.2, 0.5])
def test_ula_stationary_variance_on_standard_gaussian(eps):
    """ULA on N(0, 1): stationary variance 1 / (1 - eps/2), mean 0 (the discretisation bias)."""
    n = 20_000
    target = sl.standard_gaussian(1)
    x = sample_langevin(target.score, torch.zeros(n, 1, dtype=torch.float64), eps, 100, generator=gen(0))
    v_theory = 1.0 / (1.0 - eps / 2)
    # Contraction (1 - eps)^2 per step: after 100 steps the start is forgotten to < 1e-9.
    se_var = v_theory * math.sqrt(2.0 / n)  # std of the sample variance of n Gaussian draws
    assert abs(x.var().item() - v_theory) < 4 * se_var
    assert abs(x.mean().item()) < 4 * math.sqrt(v_theory / n)
    # The bias is real: the unbiased value 1 is excluded at the same tolerance.
    assert abs(x.var().item() - 1.0) > 4 * se_var


def test_ula_reaches_target_near_sw_floor(target, floor):
    # Start far from the target (N(0, 9 I)); eps = 0.02 makes the ULA bias (a few percent of the
    # variance at most: v / (1 - eps / (2 v)) with v >= 0.5) invisible next to the SW floor.
    x0 = 3 * torch.randn(N_SW, 2, generator=gen(1))
    x = sample_langevin(target.score, x0, 0.02, 1000, generator=gen(2))
    assert near_floor(sw_to_target(x, target, 3), floor)


def test_sw_criterion_has_power(target, floor):
    """Negative control: the same criterion rejects a chain aimed at the wrong law p^2."""
    x0 = 3 * torch.randn(N_SW, 2, generator=gen(1))
    x = sample_langevin(lambda y: 2 * target.score(y), x0, 0.02, 1000, generator=gen(2))
    assert not near_floor(sw_to_target(x, target, 3), floor)


def test_langevin_callback_stats_and_purity():
    x0 = torch.randn(50, 3, generator=gen(0))
    x0_copy = x0.clone()
    frames = []
    stats = {}
    out = sample_langevin(lambda x: -x, x0, 0.1, 7, generator=gen(1), callback=frames.append, stats=stats)
    assert torch.equal(x0, x0_copy), "x0 must not be modified"
    assert [f["i"] for f in frames] == list(range(7))
    assert all(f["step_size"] == 0.1 for f in frames)
    assert torch.equal(frames[-1]["x"], out)
    assert not torch.equal(frames[0]["x"], frames[1]["x"])
    assert stats == {"nfe": 7}
    # Same seed, same result; a different seed, a different one.
    assert torch.equal(out, sample_langevin(lambda x: -x, x0, 0.1, 7, generator=gen(1)))
    assert not torch.equal(out, sample_langevin(lambda x: -x, x0, 0.1, 7, generator=gen(2)))
    assert torch.equal(out, sample_langevin(lambda x: -x, x0, 0.1, 7, generator=1))
    # n_steps = 0 returns a copy.
    same = sample_langevin(lambda x: -x, x0, 0.1, 0)
    assert torch.equal(same, x0) and same is not x0
    # dtype is kept.
    assert out.dtype == torch.float32
    assert sample_langevin(lambda x: -x, x0.double(), 0.1, 2, generator=gen(1)).dtype == torch.float64


def test_langevin_one_step_matches_formula():
    """One update equals x + eps s(x) + sqrt(2 eps) z with z drawn from the same generator."""
    x0 = torch.randn(10, 2, generator=gen(0), dtype=torch.float64)
    eps = 0.3
    out = sample_langevin(lambda x: -2 * x, x0, eps, 1, generator=gen(5))
    z = torch.randn(10, 2, generator=gen(5), dtype=torch.float64)
    torch.testing.assert_close(out, x0 + eps * (-2 * x0) + math.sqrt(2 * eps) * z)


# -- MALA --------------------------------------------------------------------------

def test_mala_leaves_target_invariant(target):
    """Start from exact samples; with a step where ULA is visibly biased, MALA keeps the moments."""
    n, eps = 20_000, 0.6
    x0 = target.sample(n, generator=gen(0)).double()
    stats = {}
    x = sample_mala(target.score, target.log_prob, x0, eps, 30, generator=gen(1), stats=stats)
    mean, cov = target.mean.double(), target.covariance_matrix.double()
    # Particles stay exact and independent, so per-entry standard errors come from the
    # spread of the exact draws themselves.
    c = x0 - mean
    se_mean = x0.std(0) / math.sqrt(n)
    prods = (c[:, :, None] * c[:, None, :]).reshape(n, -1)
    se_cov = (prods.std(0) / math.sqrt(n)).reshape(2, 2)
    assert bool(((x.mean(0) - mean).abs() < 4 * se_mean).all())
    assert bool(((torch.cov(x.T) - cov).abs() < 4 * se_cov + 4 * se_mean.max() ** 2).all())
    assert 0.0 < stats["acceptance_rate"] < 1.0
    # Control: plain ULA at the same step inflates the covariance beyond that tolerance.
    y = sample_langevin(target.score, x0, eps, 30, generator=gen(1))
    assert bool(((torch.cov(y.T) - cov).abs() > 4 * se_cov + 4 * se_mean.max() ** 2).any())


def test_mala_exact_variance_where_ula_is_biased():
    """On N(0, 1) with eps = 1, ULA's stationary variance is 2; MALA's stays 1."""
    n = 20_000
    target = sl.standard_gaussian(1)
    x = sample_mala(target.score, target.log_prob, torch.zeros(n, 1, dtype=torch.float64), 1.0, 200,
                    generator=gen(3))
    assert abs(x.var().item() - 1.0) < 4 * math.sqrt(2.0 / n)


def test_mala_reaches_target_near_sw_floor(target, floor):
    x0 = 3 * torch.randn(N_SW, 2, generator=gen(1))
    x = sample_mala(target.score, target.log_prob, x0, 0.3, 300, generator=gen(2))
    assert near_floor(sw_to_target(x, target, 3), floor)


def test_mala_acceptance_rises_as_step_shrinks(target):
    x0 = target.sample(2000, generator=gen(0))
    rates = []
    for eps in [2.0, 0.5, 0.1, 0.001]:
        stats = {}
        sample_mala(target.score, target.log_prob, x0, eps, 20, generator=gen(1), stats=stats)
        assert stats["acceptance_per_step"].shape == (20,)
        assert stats["nfe"] == 21 and stats["n_log_prob"] == 21
        torch.testing.assert_close(stats["acceptance_per_step"].mean().item(), stats["acceptance_rate"])
        rates.append(stats["acceptance_rate"])
    assert all(a < b for a, b in pairwise(rates)), rates
    # The Metropolis log-ratio is O(eps^{3/2}) for small steps, so acceptance tends to 1.
    assert rates[-1] > 0.995
    assert 0.0 < rates[0] < 0.9


def test_mala_callback_reports_acceptance():
    target = sl.standard_gaussian(2)
    frames = []
    x0 = torch.randn(100, 2, generator=gen(0))
    out = sample_mala(target.score, target.log_prob, x0, 1.5, 5, generator=gen(1), callback=frames.append)
    assert [f["i"] for f in frames] == list(range(5))
    assert all(f["accepted"].shape == (100,) and f["accepted"].dtype == torch.bool for f in frames)
    assert torch.equal(frames[-1]["x"], out)
    # Rejected particles did not move at that step.
    prev = x0
    for f in frames:
        moved = (f["x"] != prev).any(-1)
        assert torch.equal(moved, f["accepted"])
        prev = f["x"]


# -- annealed Langevin --------------------------------------------------------------

def test_annealed_step_scaling_and_tweedie_denoising_closed_form():
    """Target N(0, 1), sigmas [2, 0.5]: every level is ULA on N(0, v = 1 + sigma^2).

    Level 0 uses alpha_0 = eps * 2^2 / 0.5^2 = 16 eps, so its stationary variance is
    v0 / (1 - alpha_0 / (2 v0)); the final Tweedie step x + sigma_L^2 * (-x / v1) = x / v1
    divides the last level's variance by v1^2.
    """
    n, eps = 20_000, 0.1
    sigmas = [2.0, 0.5]
    frames = []
    x0 = torch.zeros(n, 1, dtype=torch.float64)
    x = sample_annealed_langevin(sl.noised_score(sl.standard_gaussian(1)), x0, sigmas, eps=eps,
                                 n_steps_each=200, generator=gen(0), callback=frames.append)
    v0, v1 = 1 + sigmas[0] ** 2, 1 + sigmas[1] ** 2
    a0, a1 = eps * sigmas[0] ** 2 / sigmas[1] ** 2, eps
    var0 = v0 / (1 - a0 / (2 * v0))  # 5.95; an unscaled step would give 5.05
    var1 = v1 / (1 - a1 / (2 * v1))
    end0 = frames[199]
    assert end0["level"] == 0 and end0["sigma"] == 2.0 and end0["step_size"] == pytest.approx(a0)
    tol = 4 * math.sqrt(2.0 / n)  # relative std of a sample variance, 4 standard errors
    assert abs(end0["x"].var().item() / var0 - 1) < tol
    before = frames[-2]
    assert before["level"] == 1 and before["denoise"] is False
    assert abs(before["x"].var().item() / var1 - 1) < tol
    assert frames[-1]["denoise"] is True and frames[-1]["step_size"] == pytest.approx(0.25)
    assert abs(x.var().item() / (var1 / v1**2) - 1) < tol
    # Without denoising the output is the last Langevin state.
    y = sample_annealed_langevin(sl.noised_score(sl.standard_gaussian(1)), x0, sigmas, eps=eps,
                                 n_steps_each=200, denoise=False, generator=gen(0))
    torch.testing.assert_close(y, before["x"])


def test_annealed_reaches_target_near_sw_floor(target, floor):
    x0 = torch.rand(N_SW, 2, generator=gen(1)) * 8 - 4  # uniform on [-4, 4]^2
    sigmas = geometric_sigmas(5.0, 0.05, 10)
    # eps / sigma_L^2 = 0.4: the last level is ULA with step 1e-3 on a law of variance >= 0.5.
    x = sample_annealed_langevin(sl.noised_score(target), x0, sigmas, eps=1e-3, n_steps_each=100,
                                 generator=gen(2))
    assert near_floor(sw_to_target(x, target, 3), floor)


def test_song_ermon_mode_weights_plain_vs_annealed():
    """Song & Ermon (2019), section 3.2: weights 0.2 / 0.8, 1,280 particles uniform on [-8, 8]^2."""
    mix = sl.song_ermon_mixture()
    x0 = torch.rand(1280, 2, generator=gen(0)) * 16 - 8
    w0 = mode_weights(x0, mix)
    plain = sample_langevin(mix.score, x0, 0.1, 1000, generator=gen(1))
    w_plain = mode_weights(plain, mix)
    # Each particle stays in the basin it starts in: the split matches the initial one
    # (about 0.5 / 0.5; the basin boundary x1 + x2 = -log(4) / 10 is almost the diagonal).
    assert abs(w_plain[0].item() - w0[0].item()) < 0.03
    assert abs(w_plain[0].item() - 0.5) < 0.05  # binomial SE of 1,280 fair draws: 0.014
    stats = {}
    annealed = sample_annealed_langevin(sl.noised_score(mix), x0, geometric_sigmas(20.0, 1.0, 10),
                                        eps=0.1, n_steps_each=100, generator=gen(1), stats=stats)
    w_ann = mode_weights(annealed, mix)
    # Binomial SE of a 0.2 fraction over 1,280 particles is 0.011; +-0.03 is ~2.7 SE.
    assert abs(w_ann[0].item() - 0.2) < 0.03
    assert stats["nfe"] == 10 * 100 + 1


def test_annealed_callback_schedule():
    sigmas = geometric_sigmas(4.0, 1.0, 3)
    frames = []
    stats = {}
    x0 = torch.zeros(5, 2)
    calls = []

    def score(x, sigma):
        calls.append(sigma)
        assert isinstance(sigma, float)
        return -x / (1 + sigma**2)

    sample_annealed_langevin(score, x0, sigmas, eps=0.01, n_steps_each=4, generator=gen(0),
                             callback=frames.append, stats=stats)
    assert len(frames) == 3 * 4 + 1 and stats["nfe"] == 13 and len(calls) == 13
    assert [f["i"] for f in frames] == list(range(13))
    assert [f["level"] for f in frames] == [0] * 4 + [1] * 4 + [2] * 5
    for f in frames[:-1]:
        assert f["step_size"] == pytest.approx(0.01 * f["sigma"] ** 2 / 1.0)
    assert calls[-1] == pytest.approx(1.0)
    stats = {}
    sample_annealed_langevin(score, x0, sigmas, eps=0.01, n_steps_each=4, denoise=False, stats=stats)
    assert stats["nfe"] == 12


# -- bad inputs --------------------------------------------------------------------

def _score(x):
    return -x


def _log_prob(x):
    return -0.5 * (x**2).sum(-1)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: sample_langevin(_score, [[0.0, 1.0]], 0.1, 1), TypeError, "x: expected a torch.Tensor"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2, dtype=torch.long), 0.1, 1), TypeError, "floating"),
    (lambda: sample_langevin(_score, torch.zeros(3), 0.1, 1), ValueError, r"\(N, d\)"),
    (lambda: sample_langevin(_score, torch.zeros(0, 2), 0.1, 1), ValueError, "at least one"),
    (lambda: sample_langevin(_score, torch.full((2, 2), float("nan")), 0.1, 1), ValueError, "finite"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), 0.0, 1), ValueError, "step_size"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), -0.1, 1), ValueError, "step_size"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), 0.1, 1.5), ValueError, "n_steps"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), 0.1, -1), ValueError, "n_steps"),
    (lambda: sample_langevin("not callable", torch.zeros(3, 2), 0.1, 1), TypeError, "score_fn"),
    (lambda: sample_langevin(lambda x: x[:, :1], torch.zeros(3, 2), 0.1, 1), ValueError, "score_fn"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), 0.1, 1, generator="seed"), TypeError, "generator"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), 0.1, 1, callback=3), TypeError, "callback"),
    (lambda: sample_langevin(_score, torch.zeros(3, 2), 0.1, 1, stats=[]), TypeError, "stats"),
    (lambda: sample_mala(_score, None, torch.zeros(3, 2), 0.1, 1), TypeError, "log_prob_fn"),
    (lambda: sample_mala(_score, lambda x: x, torch.zeros(3, 2), 0.1, 1), ValueError, "log_prob_fn"),
    (lambda: sample_mala(_score, _log_prob, torch.zeros(3, 2), 0.0, 1), ValueError, "step_size"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [1.0, 2.0], eps=0.1, n_steps_each=1),
     ValueError, "decreasing"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [1.0, 0.0], eps=0.1, n_steps_each=1),
     ValueError, "positive"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [], eps=0.1, n_steps_each=1),
     ValueError, "non-empty"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [[1.0]], eps=0.1, n_steps_each=1),
     ValueError, "1-D"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [2.0, 1.0], eps=0.0, n_steps_each=1),
     ValueError, "eps"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [2.0, 1.0], eps=0.1, n_steps_each=-2),
     ValueError, "n_steps_each"),
    (lambda: sample_annealed_langevin(_score, torch.zeros(3, 2), [2.0, 1.0], eps=0.1, n_steps_each=1,
                                      denoise="yes"), TypeError, "denoise"),
])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
