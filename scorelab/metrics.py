"""How good is a sampler, how good is a learned score: the numbers every chapter reports.

- ``sliced_wasserstein``: distance between two point clouds through 1-D projections.
- ``sliced_wasserstein_floor``: the same distance between two fresh exact sample sets of
  a distribution, i.e. what a perfect sampler scores with that many points.
- ``mmd``: kernel maximum mean discrepancy (unbiased, Gaussian kernel).
- ``mode_weights``: the fraction of points that falls in each mode (4.3, Song & Ermon's toy).
- ``fisher_divergence`` and ``relative_score_error``: a score against an exact one (4.2).
"""

from __future__ import annotations

import math

import torch

from ._checks import as_points, check_callable, check_count, check_generator, check_output, check_positive

__all__ = [
    "sliced_wasserstein",
    "sliced_wasserstein_floor",
    "sliced_wasserstein_to_target",
    "mmd",
    "mode_weights",
    "fisher_divergence",
    "relative_score_error",
]


def _two_clouds(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x, y: expected two torch.Tensors of shape (N, d) and (M, d)")
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if y.ndim == 1:
        y = y.unsqueeze(-1)
    if x.ndim != 2:
        raise ValueError(f"x: expected shape (N, d), got {tuple(x.shape)}")
    x = as_points(x, x.shape[-1], "x")
    y = as_points(y, x.shape[-1], "y")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x, y: expected at least 2 points each, got {x.shape[0]} and {y.shape[0]}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)


def _quantiles(v: torch.Tensor, n: int) -> torch.Tensor:
    """Empirical quantile functions of the columns of v (M, P) at n mid-point levels: (n, P)."""
    m = v.shape[0]
    s, _ = torch.sort(v, dim=0)
    if m == n:
        return s
    levels = (torch.arange(n, dtype=v.dtype) + 0.5) / n * m - 0.5
    lo = levels.floor().clamp(0, m - 1).long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (levels - lo.to(v.dtype)).clamp(0, 1).unsqueeze(-1)
    return s[lo] * (1 - frac) + s[hi] * frac


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, *, n_projections: int = 256, p: int = 2,
                       generator=None) -> float:
    """Sliced p-Wasserstein distance between point clouds x (N, d) and y (M, d).

    Projects both clouds on ``n_projections`` random unit directions, compares the sorted
    projections (1-D optimal transport; quantiles are interpolated when N != M), and returns
    ``(mean_theta W_p^p)^(1/p)``.  Identical clouds give exactly 0.
    """
    x, y = _two_clouds(x, y)
    n_projections = check_count(n_projections, "n_projections", minimum=1)
    g = check_generator(generator)
    if g is None:
        g = torch.Generator().manual_seed(0)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64).to(x.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, py = x @ theta, y @ theta
    n = max(x.shape[0], y.shape[0])
    qx, qy = _quantiles(px, n), _quantiles(py, n)
    return float(((qx - qy).abs() ** p).mean() ** (1.0 / p))


def sliced_wasserstein_floor(dist, n: int, *, n_repeats: int = 5, n_projections: int = 256,
                             generator=None) -> tuple[float, float]:
    """Mean and standard deviation of the sliced Wasserstein distance between two independent
    exact sample sets of size n from ``dist``: the value a perfect sampler scores.
    """
    g = check_generator(generator)
    if g is None:
        g = torch.Generator().manual_seed(0)
    vals = [sliced_wasserstein(dist.sample(n, generator=g), dist.sample(n, generator=g),
                               n_projections=n_projections, generator=g) for _ in range(n_repeats)]
    t = torch.tensor(vals)
    return float(t.mean()), float(t.std()) if n_repeats > 1 else 0.0


def sliced_wasserstein_to_target(x: torch.Tensor, dist, *, n_repeats: int = 3, n_projections: int = 256,
                                 generator=None) -> float:
    """Mean sliced Wasserstein distance from x (N, d) to ``n_repeats`` fresh exact sample sets of
    ``dist`` of the same size; averaging removes much of the sample and projection noise.
    Compare with ``sliced_wasserstein_floor(dist, N)``, what a perfect sampler scores.
    """
    g = check_generator(generator)
    if g is None:
        g = torch.Generator().manual_seed(0)
    vals = [sliced_wasserstein(x, dist.sample(len(x), generator=g), n_projections=n_projections, generator=g)
            for _ in range(n_repeats)]
    return sum(vals) / n_repeats


def mmd(x: torch.Tensor, y: torch.Tensor, *, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel.

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``; ``h`` defaults to the median pairwise distance
    of the pooled sample (median heuristic).  x (N, d), y (M, d); O((N + M)^2) memory, so
    keep clouds to a few thousand points.  Can be slightly negative for identical laws.
    """
    x, y = _two_clouds(x, y)
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        off = d2[~torch.eye(len(z), dtype=torch.bool)]
        h2 = float(off.median().clamp_min(1e-12))
    else:
        h2 = check_positive(bandwidth, "bandwidth") ** 2
    k = torch.exp(-d2 / (2 * h2))
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mode_weights(x: torch.Tensor, modes) -> torch.Tensor:
    """Fraction of the points x (N, d) assigned to each mode: a (K,) tensor summing to 1.

    ``modes`` is a GaussianMixture (each point goes to the component of highest posterior
    probability) or a (K, d) tensor of centres (each point goes to the nearest centre).
    """
    from .distributions import GaussianMixture

    if isinstance(modes, GaussianMixture):
        x = as_points(x, modes.dim)
        labels = modes.responsibilities(x).argmax(-1)
        k = modes.n_components
    else:
        if not isinstance(modes, torch.Tensor) or modes.ndim != 2:
            raise TypeError("modes: expected a GaussianMixture or a (K, d) tensor of centres")
        x = as_points(x, modes.shape[1])
        labels = torch.cdist(x, modes.to(x.dtype)).argmin(-1)
        k = modes.shape[0]
    return torch.bincount(labels, minlength=k).to(torch.float64) / max(len(x), 1)


def _two_scores(score_fn, exact_score_fn, x):
    check_callable(score_fn, "score_fn", "mapping (N, d) points to (N, d) scores")
    check_callable(exact_score_fn, "exact_score_fn", "mapping (N, d) points to (N, d) scores")
    with torch.no_grad():
        s = check_output(score_fn(x), x.shape, "score_fn", " (same as x)")
        s_star = check_output(exact_score_fn(x), x.shape, "exact_score_fn", " (same as x)")
    return s.to(torch.float64), s_star.to(torch.float64)


def fisher_divergence(score_fn, exact_score_fn, x: torch.Tensor) -> float:
    """Monte-Carlo Fisher divergence ``0.5 * mean |s(x) - s*(x)|^2`` over the points x (N, d)."""
    s, s_star = _two_scores(score_fn, exact_score_fn, x)
    return float(0.5 * ((s - s_star) ** 2).sum(-1).mean())


def relative_score_error(score_fn, exact_score_fn, x: torch.Tensor) -> float:
    """``mean |s - s*|^2 / mean |s*|^2`` over x (N, d): 0 is perfect, 1 is as bad as s = 0."""
    s, s_star = _two_scores(score_fn, exact_score_fn, x)
    den = float((s_star**2).sum(-1).mean())
    if den == 0 or math.isnan(den):
        raise ValueError("exact_score_fn: the exact score is zero at every point; the relative error is undefined")
    return float(((s - s_star) ** 2).sum(-1).mean()) / den
