"""Bits per dimension of images: exact against the closed form of Gaussian data whose score is known,
the batched exact divergence against the sequential one, and the two baselines against direct counts."""

import math

import pytest
import torch

from scorelab.distributions import Gaussian
from scorelab.image_likelihood import categorical_bits_per_dim, image_bits_per_dim, uniform_bits_per_dim
from scorelab.likelihood import batched_divergence
from scorelab.losses import score_divergence
from scorelab.sdes import VPSDE, exact_score_fn


def _image_gaussian(side=3):
    d = side * side
    g = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.15
    cov = a @ a.T + 0.04 * torch.eye(d, dtype=torch.float64)
    mean = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
    return Gaussian(mean, cov), d


def test_batched_exact_divergence_equals_the_sequential_one():
    w = torch.randn(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def fn(x):  # a per-example nonlinear map of (N, 1, 3, 4) images
        flat = x.reshape(x.shape[0], -1)
        return torch.tanh(flat @ w).reshape(x.shape) * x

    x = torch.randn(5, 1, 3, 4, dtype=torch.float64)
    v1, d1 = score_divergence(fn, x)
    v2, d2 = batched_divergence(fn, x)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(d1, d2)


@pytest.mark.parametrize("exact", [True, False])
def test_bits_per_dim_of_gaussian_data_match_the_closed_form(exact):
    """Gaussian data in image shape (N, 1, 3, 3) diffused by the VP SDE have an exact score; the ODE's
    bits per dimension of dequantised levels must equal those of the Gaussian density at the same points."""
    dist, d = _image_gaussian()
    sde = VPSDE(0.1, 20.0)
    exact_score = exact_score_fn(sde, dist)
    score = lambda x, t: exact_score(x.double(), t.double()).to(x.dtype)  # noqa: E731
    n_levels = 17
    g = torch.Generator().manual_seed(4)
    # integer levels whose bins lie inside [-1, 1]
    levels = torch.randint(3, 14, (12, 1, 3, 3), generator=g, dtype=torch.uint8)
    stats = {}
    bpd = image_bits_per_dim(score, levels, n_levels, sde, n_dequant=2, exact=exact, n_probes=8,
                             generator=torch.Generator().manual_seed(9), rtol=1e-6, atol=1e-6, stats=stats,
                             dtype=torch.float64)
    assert bpd.shape == (12,) and stats["exact"] is exact and len(stats["points"]) == 2
    ref = []
    for x in stats["points"]:
        assert torch.equal(torch.floor((x + 1) / 2 * n_levels).to(torch.uint8), levels)  # inside their bins
        # t_eps = 1e-5 blurs the data by sigma(1e-5) ~ 1e-3: compare with the marginal at t_eps
        logp = sde.marginal(dist, 1e-5).log_prob(x.reshape(12, -1))
        ref.append((-logp - d * math.log(2) + d * math.log(n_levels)) / (d * math.log(2)))
    ref = torch.stack(ref).mean(0)
    diff = bpd - ref
    if exact:
        # the prior N(0, I) stands in for p_T and the solver has rtol 1e-6: a few 1e-3 bits in all
        assert float(diff.abs().max()) < 5e-3
    else:
        # Hutchinson is unbiased: the errors scatter around 0 (a few hundredths of a bit per image)
        se = float(diff.std()) / math.sqrt(len(diff))
        assert float(diff.abs().max()) > 1e-3  # the estimate is random ...
        assert abs(float(diff.mean())) < 4 * se + 5e-3  # ... and centred on the truth
        assert float(diff.abs().max()) < 0.3


def test_uniform_baseline_is_log2_of_the_levels():
    assert uniform_bits_per_dim(17) == pytest.approx(math.log2(17))
    assert uniform_bits_per_dim(256) == 8.0


def test_categorical_baseline_against_direct_counts():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 4, (50, 1, 2, 2), generator=g)
    test = torch.randint(0, 4, (20, 1, 2, 2), generator=g)
    got = categorical_bits_per_dim(train, test, 4, alpha=1.0)
    total = 0.0
    for j in range(4):
        col = train.reshape(50, 4)[:, j]
        for k in test.reshape(20, 4)[:, j].tolist():
            p = (int((col == k).sum()) + 1) / (50 + 4)
            total -= math.log2(p)
    assert got == pytest.approx(total / 80, rel=1e-12)
    # a pixel that is always 0 in training costs almost nothing when it is 0 again
    zeros = torch.zeros(1000, 1, 1, 1, dtype=torch.long)
    assert categorical_bits_per_dim(zeros, zeros[:5], 17) < 0.03
    with pytest.raises(ValueError, match="levels"):
        categorical_bits_per_dim(train, test + 10, 4)
