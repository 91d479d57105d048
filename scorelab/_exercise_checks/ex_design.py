"""Checks of the closing design project (a score-based model of time series): milestones M1-M4.

The data are stationary AR(1) series ``x_k = phi x_{k-1} + z_k`` of length ``L = 16`` with
``phi = 0.8``: a Gaussian with the Toeplitz covariance ``C_ij = phi^|i-j| / (1 - phi^2)``, so
the exact score at every diffusion time is known (``scorelab.sdes.exact_score_fn``) and a
model's score and samples can be graded against the truth.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_output, autograd_score, call, close, register, relative_error
from ..distributions import Gaussian
from ..sdes import VPSDE, exact_score_fn

L, PHI = 16, 0.8


def series_covariance() -> torch.Tensor:
    """The (L, L) covariance of the stationary AR(1) series (float64)."""
    k = torch.arange(L, dtype=F64)
    return PHI ** (k[:, None] - k[None, :]).abs() / (1 - PHI**2)


def _lag_correlation(x: torch.Tensor, lag: int) -> float:
    x = x.double()
    return float((x[:, lag:] * x[:, :-lag]).mean() / (x * x).mean())


@register("design.M1", "a generator of stationary AR(1) series", answers=('make_series',), hidden=False)
def _series(fn):
    first = call(fn, 5, torch.Generator().manual_seed(0), name="make_series")
    first = as_output(first, torch.empty(5, L), "make_series(5, generator)")
    again = as_output(call(fn, 5, torch.Generator().manual_seed(0), name="make_series"), torch.empty(5, L),
                      "make_series(5, generator)")
    other = as_output(call(fn, 5, torch.Generator().manual_seed(1), name="make_series"), torch.empty(5, L),
                      "make_series(5, generator)")
    if not torch.equal(first, again) or torch.equal(first, other):
        raise Mismatch("make_series must draw all its randomness from the generator it is given: the same "
                       "seed must give the same series and another seed other series.")
    n = 20_000
    x = as_output(call(fn, n, torch.Generator().manual_seed(2), name="make_series"), torch.empty(n, L),
                  "make_series(n, generator)").double()
    c = series_covariance()
    var0, var_end = float(x[:, 0].var()), float(x[:, -1].var())
    lag1 = _lag_correlation(x, 1)
    if abs(lag1 + PHI) < 0.05:
        raise Mismatch(f"consecutive values are anti-correlated (lag-1 correlation {lag1:.2f}): "
                       "x_k = +phi x_(k-1) + z_k.")
    if abs(lag1) < 0.1:
        raise Mismatch(f"consecutive values are uncorrelated (lag-1 correlation {lag1:.2f}): each x_k must be "
                       "phi times the previous value plus fresh noise.")
    if abs(var0 - 1.0) < 0.1 and abs(var_end - float(c[0, 0])) < 0.3:
        raise Mismatch(f"the series is not stationary: var(x_0) = {var0:.2f} but var(x_15) = {var_end:.2f}. Start "
                       f"from the stationary law, x_0 ~ N(0, 1 / (1 - phi^2)) = N(0, {float(c[0, 0]):.3f}).")
    se_mean = math.sqrt(float(c[0, 0]) / n)
    if float(x.mean(0).abs().max()) > 5 * se_mean:
        raise Mismatch("the series should have mean 0; the largest coordinate mean is "
                       f"{float(x.mean(0).abs().max()):.3f}.")
    err = float((torch.cov(x.T) - c).norm() / c.norm())
    if err > 0.06:
        raise Mismatch(f"the covariance of 20,000 series differs from phi^|i-j| / (1 - phi^2) by {err:.3f} "
                       f"(relative, Frobenius); var(x_0) = {var0:.2f}, lag-1 correlation {lag1:.2f}.")
    return (f"20,000 series: covariance within {err:.3f} of phi^|i-j| / (1 - phi^2), lag-1 correlation "
            f"{lag1:.3f}, reproducible from the generator. A Gaussian with a known covariance: the exact score "
            "of every p_t is available to grade your model.")


@register("design.M2", "the exact score of the series distribution", answers=('series_score',), hidden=False)
def _exact_series_score(fn):
    c = series_covariance()
    dist = torch.distributions.MultivariateNormal(torch.zeros(L, dtype=F64), covariance_matrix=c)
    x = 2 * torch.randn(64, L, generator=torch.Generator().manual_seed(3), dtype=F64)
    ref = autograd_score(dist.log_prob, x)
    out = as_output(call(fn, x.clone(), name="series_score"), ref, "series_score(x)")
    if close(out, ref, 1e-6):
        return ("matches autograd of the Gaussian log-density: s(x) = -C^-1 x, and C^-1 is tridiagonal "
                "(each value interacts only with its neighbours, the Markov property).")
    if close(out, -ref, 1e-6):
        raise Mismatch("the sign is flipped: the score points back towards the mean 0.")
    if close(out, -x @ c, 1e-6):
        raise Mismatch("the score of N(0, C) is -C^-1 x: use the inverse (precision) matrix, not C.")
    raise Mismatch(f"your score differs from autograd of log N(0, C) by {relative_error(out, ref):.2g} (relative).")


@register("design.M3", "a trained time-conditional score model", points=2.0, answers=('model',), hidden=False)
def _model(model):
    sde = VPSDE()
    exact = exact_score_fn(sde, Gaussian(torch.zeros(L, dtype=F64), series_covariance()))
    errors = {}
    for t in (0.1, 0.3, 0.6):
        xt = sde.marginal(Gaussian(torch.zeros(L, dtype=F64), series_covariance()), t).sample(
            2000, generator=torch.Generator().manual_seed(int(100 * t)))
        ref = exact(xt, t)
        tt = torch.full((2000,), t)
        with torch.no_grad():
            out = call(model, xt.float(), tt, name="model")
        out = as_output(out, ref, "model(x, t)")
        errors[t] = float(((out - ref) ** 2).sum(-1).mean() / (ref**2).sum(-1).mean())
    worst = max(errors, key=errors.get)
    table = ", ".join(f"t = {t}: {e:.4f}" for t, e in errors.items())
    if not all(math.isfinite(e) for e in errors.values()) or errors[worst] > 0.05:
        hint = (" The error is largest at small t, where the score is large and the data term dominates: "
                "train longer, or check that the model divides its noise prediction by sigma(t)."
                if worst == 0.1 else " Check that the model was trained on the VP SDE with default betas.")
        raise Mismatch(f"relative score error against the exact score of p_t: {table} (need < 0.05 at each).{hint}")
    return f"relative score error against the exact score of p_t: {table}."


@register("design.M4", "generated series with the right statistics", points=2.0, answers=('samples',), hidden=False)
def _samples(samples):
    if not isinstance(samples, torch.Tensor) or samples.ndim != 2 or samples.shape[1] != L:
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Mismatch(f"samples should be a tensor of shape (N, {L}) with N >= 2000, got {got}")
    if samples.shape[0] < 2000:
        raise Mismatch(f"generate at least 2000 series (got {samples.shape[0]}): fewer make the statistics too noisy.")
    x = samples.detach().double()
    if not bool(torch.isfinite(x).all()):
        raise Mismatch("some samples are NaN or infinite: lower the step size or check the sampler's end time.")
    c = series_covariance()
    err = float((torch.cov(x.T) - c).norm() / c.norm())
    lag1 = _lag_correlation(x, 1)
    var_ratio = float(x.var(0).mean()) / float(c[0, 0])
    if err < 0.12 and abs(lag1 - PHI) < 0.04:
        return (f"covariance within {err:.3f} of the truth (relative), lag-1 correlation {lag1:.3f} (true {PHI}), "
                f"variance ratio {var_ratio:.3f}.")
    hint = ""
    if var_ratio < 0.8:
        hint = (" The variance is too small: samples collapse towards the mean (too much denoising, or a score "
                "that is too strong).")
    elif var_ratio > 1.25:
        hint = " The variance is too large: the sampler stopped too early (t_eps too big) or took too few steps."
    elif abs(lag1 - PHI) >= 0.04:
        hint = (" The marginal variance is right but the temporal correlation is not: the model has not learned how "
                "neighbouring values interact.")
    raise Mismatch(f"covariance error {err:.3f} (need < 0.12), lag-1 correlation {lag1:.3f} (need {PHI} +- 0.04), "
                   f"variance ratio {var_ratio:.2f}.{hint}")
