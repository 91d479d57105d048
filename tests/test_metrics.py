"""Metrics: zero (or at the noise floor) on identical laws, and they detect a shifted law."""

import math

import pytest
import torch

import scorelab as sl
from scorelab import metrics


def test_sliced_wasserstein_zero_on_identical_clouds_and_detects_shift():
    p = sl.eight_gaussians()
    g = torch.Generator().manual_seed(0)
    x, y = p.sample(3000, generator=g), p.sample(3000, generator=g)
    assert metrics.sliced_wasserstein(x, x) == 0.0
    floor, spread = metrics.sliced_wasserstein_floor(p, 3000, n_repeats=5, generator=1)
    assert metrics.sliced_wasserstein(x, y) < floor + 4 * spread
    shifted = metrics.sliced_wasserstein(x, y + torch.tensor([0.6, 0.0]))
    assert shifted > floor + 6 * spread


def test_sliced_wasserstein_of_a_translation_in_1d_is_the_shift():
    """In 1-D, W2 between a law and its translate by c is |c|, and every projection is +-1."""
    x = torch.randn(5000, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, x + 0.75) == pytest.approx(0.75, rel=1e-9)


def test_sliced_wasserstein_unequal_sizes():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(2500, 2, generator=g, dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, y) < 0.06
    assert metrics.sliced_wasserstein(x, 2 * y) > 0.3


def test_mmd_near_zero_for_same_law_and_positive_for_shift():
    g = torch.Generator().manual_seed(4)
    p = sl.song_ermon_mixture()
    x, y = p.sample(800, generator=g), p.sample(800, generator=g)
    same = metrics.mmd(x, y)
    # the unbiased estimator fluctuates around 0 with standard deviation ~ 1/n
    assert abs(same) < 5e-3
    assert metrics.mmd(x, y + 1.0) > 10 * max(abs(same), 1e-3)
    assert metrics.mmd(x, y, bandwidth=1.0) < metrics.mmd(x, y + 1.0, bandwidth=1.0)


def test_mode_weights_recover_mixture_weights():
    p = sl.song_ermon_mixture()
    x = p.sample(20_000, generator=5)
    w = metrics.mode_weights(x, p)
    se = math.sqrt(0.2 * 0.8 / 20_000)
    assert abs(float(w[0]) - 0.2) < 5 * se
    torch.testing.assert_close(w, metrics.mode_weights(x, p.means))
    assert float(w.sum()) == pytest.approx(1.0)


def test_score_errors():
    p = sl.eight_gaussians()
    x = p.sample(2000, generator=6)
    assert metrics.relative_score_error(p.score, p.score, x) == 0.0
    assert metrics.fisher_divergence(p.score, p.score, x) == 0.0
    assert metrics.relative_score_error(lambda z: torch.zeros_like(z), p.score, x) == pytest.approx(1.0)
    # a score of the noised law is off by a computable amount; the Fisher divergence is 0.5 E|ds|^2
    q = p.perturbed(0.5)
    diff = (q.score(x) - p.score(x)).double()
    assert metrics.fisher_divergence(q.score, p.score, x) == pytest.approx(0.5 * float((diff**2).sum(-1).mean()))
    assert 0 < metrics.relative_score_error(q.score, p.score, x) < 1


def test_metric_errors_are_clear():
    with pytest.raises(ValueError, match=r"expected shape \(N, 2\)"):
        metrics.sliced_wasserstein(torch.zeros(10, 2), torch.zeros(10, 3))
    with pytest.raises(TypeError, match="GaussianMixture"):
        metrics.mode_weights(torch.zeros(10, 2), [0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        metrics.relative_score_error(lambda z: z[:, :1], lambda z: z, torch.ones(5, 2))
