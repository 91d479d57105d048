"""Langevin samplers driven by a score function (sections 4.1.2 and 4.3.2).

Every sampler follows the contract of CONTRIBUTING.md ("Samplers")::

    x = sample_<name>(score_fn, x, step_size, n_steps, *, generator=None, callback=None, stats=None)

- ``x`` is an (N, d) floating tensor of starting points; it is never modified.
- ``score_fn(x) -> (N, d)`` approximates ``grad_x log p(x)``; the annealed sampler takes a
  noise-conditional ``score_fn(x, sigma)`` and passes ``sigma`` as a Python float.
- ``generator`` (a ``torch.Generator`` or an int seed) is the only source of randomness.
- ``callback`` is called after every step with one dict whose keys are the same at every
  step: ``"i"``, ``"x"`` and the keys each sampler lists (the annealed sampler is a
  noise-level sampler: ``"sigma"`` and ``"denoised"``), which is what
  ``scorelab.plotting.TrajectoryRecorder`` needs for an animation.
- ``stats``, when a dict, is filled with ``"nfe"`` (number of score evaluations) and, for
  MALA, the acceptance rates.

The loops run under ``torch.no_grad()``: a score model that needs autograd inside (an
energy model, ``score = -grad E``) must enable it itself, as
``scorelab.distributions.EnergyModel.score`` does.
"""

from __future__ import annotations

import math

import torch

from ._checks import (
    check_bool,
    check_callable,
    check_callback_stats,
    check_count,
    check_generator,
    check_levels,
    check_positive,
    check_start,
    checked_log_prob,
    checked_score,
)
from ._random import gaussian_like, metropolis_accept, where_accepted

__all__ = ["sample_langevin", "sample_mala", "sample_annealed_langevin", "geometric_sigmas"]


# -- noise schedule ------------------------------------------------------------

def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int, *,
                     dtype: torch.dtype | None = None) -> torch.Tensor:
    """Geometric noise schedule ``sigma_i = sigma_max (sigma_min / sigma_max)^((i-1)/(L-1))`` (section 4.3.1).

    Consecutive levels share one ratio ``sigma_{i+1} / sigma_i = (sigma_min / sigma_max)^(1/(L-1))``,
    so the noised laws of neighbouring levels overlap equally well all the way down
    (Song & Ermon, 2019, "Generative Modeling by Estimating Gradients of the Data Distribution").

    Args:
        sigma_max: the largest noise level, comparable to the largest distance between data points.
        sigma_min: the smallest, small enough that ``p_sigma_min`` is close to the data.
        n_levels: the number of levels L (1 gives ``[sigma_max]``, which then must equal ``sigma_min``).
        dtype: floating dtype of the result (default: torch's default dtype).

    Returns:
        (L,) strictly decreasing tensor from ``sigma_max`` to ``sigma_min``.
    """
    sigma_max = check_positive(sigma_max, "sigma_max")
    sigma_min = check_positive(sigma_min, "sigma_min")
    n_levels = check_count(n_levels, "n_levels", minimum=1)
    if n_levels == 1:
        if sigma_max != sigma_min:
            raise ValueError(f"n_levels=1 needs sigma_max == sigma_min, got {sigma_max} and {sigma_min}")
    elif not sigma_max > sigma_min:
        raise ValueError(f"sigma_max: expected sigma_max > sigma_min, got sigma_max={sigma_max}, sigma_min={sigma_min}")
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), n_levels, dtype=torch.float64)
    out = torch.exp(logs)
    out[0], out[-1] = sigma_max, sigma_min  # exact end points despite exp(log(.)) round-off
    return out.to(dtype or torch.get_default_dtype())


# -- samplers ------------------------------------------------------------------

def _langevin_start(score_fn, x, step_size, n_steps, generator, callback, stats):
    """The checks shared by the fixed-step samplers: ``(x, eps, n_steps, generator)``."""
    check_callable(score_fn, "score_fn", "mapping (N, d) points to (N, d) scores")
    x = check_start(x)
    eps = check_positive(step_size, "step_size")
    n_steps = check_count(n_steps, "n_steps")
    g = check_generator(generator)
    check_callback_stats(callback, stats)
    return x, eps, n_steps, g


@torch.no_grad()
def sample_langevin(score_fn, x: torch.Tensor, step_size: float, n_steps: int, *,
                    generator=None, callback=None, stats=None) -> torch.Tensor:
    """Unadjusted Langevin algorithm (ULA), section 4.1.2.

    Iterates ``x <- x + eps * score_fn(x) + sqrt(2 eps) * z`` with ``z ~ N(0, I)``: the
    Euler–Maruyama discretisation of the Langevin diffusion ``dx = grad log p(x) dt + sqrt(2) dW``,
    whose stationary law is ``p``.  With a finite step the chain is biased: on ``N(0, 1)`` its
    stationary variance is ``1 / (1 - eps / 2)`` instead of 1.

    Args:
        score_fn: callable (N, d) -> (N, d).
        x: (N, d) starting points (not modified).
        step_size: eps > 0.
        n_steps: number of updates (0 returns a copy of ``x``).
        generator: ``torch.Generator`` or int seed for the Gaussian noise.
        callback: called after each step with ``{"i", "x", "step_size"}``.
        stats: dict filled with ``"nfe"`` (``n_steps``).

    Returns:
        (N, d) tensor of the final particles.
    """
    x, eps, n_steps, g = _langevin_start(score_fn, x, step_size, n_steps, generator, callback, stats)
    noise_scale = math.sqrt(2.0 * eps)
    for i in range(n_steps):
        x = x + eps * checked_score(score_fn(x), x) + noise_scale * gaussian_like(x, g)
        if callback is not None:
            callback({"i": i, "x": x, "step_size": eps})
    if stats is not None:
        stats["nfe"] = n_steps
    return x


@torch.no_grad()
def sample_mala(score_fn, log_prob_fn, x: torch.Tensor, step_size: float, n_steps: int, *,
                generator=None, callback=None, stats=None) -> torch.Tensor:
    """Metropolis-adjusted Langevin algorithm (MALA), section 4.1.2 (Roberts & Tweedie, 1996).

    Each particle proposes the Langevin move ``y = x + eps s(x) + sqrt(2 eps) z`` and accepts it
    with probability ``min(1, p(y) q(x | y) / (p(x) q(y | x)))``, where
    ``q(y | x) = N(y; x + eps s(x), 2 eps I)``.  The accept/reject step removes the
    discretisation bias of ULA, so ``p`` is exactly invariant for any step size; only the
    unnormalised log-density is needed (constants cancel in the ratio).

    Args:
        score_fn: callable (N, d) -> (N, d), the gradient of ``log_prob_fn``.
        log_prob_fn: callable (N, d) -> (N,), log-density up to an additive constant.
        x: (N, d) starting points (not modified).
        step_size: eps > 0.
        n_steps: number of proposals per particle.
        generator: ``torch.Generator`` or int seed (proposal noise and acceptance uniforms).
        callback: called after each step with ``{"i", "x", "step_size", "accepted"}``,
            ``accepted`` an (N,) bool tensor.
        stats: dict filled with ``"nfe"`` (score evaluations, ``n_steps + 1``), ``"n_log_prob"``,
            ``"acceptance_rate"`` (mean over steps and particles, a float) and
            ``"acceptance_per_step"`` ((n_steps,) tensor of the accepted fraction at each step).

    Returns:
        (N, d) tensor of the final particles.
    """
    check_callable(log_prob_fn, "log_prob_fn", "mapping (N, d) points to (N,) log-densities")
    x, eps, n_steps, g = _langevin_start(score_fn, x, step_size, n_steps, generator, callback, stats)
    noise_scale = math.sqrt(2.0 * eps)

    def log_q(to: torch.Tensor, frm: torch.Tensor, score_frm: torch.Tensor) -> torch.Tensor:
        # log N(to; frm + eps s(frm), 2 eps I) without its constant, which cancels.
        return -((to - frm - eps * score_frm) ** 2).sum(-1) / (4.0 * eps)

    s_x = checked_score(score_fn(x), x)
    lp_x = checked_log_prob(log_prob_fn(x), x)
    per_step = torch.zeros(n_steps, dtype=torch.float64)
    for i in range(n_steps):
        y = x + eps * s_x + noise_scale * gaussian_like(x, g)
        s_y = checked_score(score_fn(y), y)
        lp_y = checked_log_prob(log_prob_fn(y), y)
        log_alpha = lp_y - lp_x + log_q(x, y, s_y) - log_q(y, x, s_x)
        accepted = metropolis_accept(log_alpha, g)  # NaN log_alpha (e.g. lp_y = -inf) rejects
        x, s_x, lp_x = where_accepted(accepted, (y, s_y, lp_y), (x, s_x, lp_x))
        per_step[i] = accepted.double().mean()
        if callback is not None:
            callback({"i": i, "x": x, "step_size": eps, "accepted": accepted})
    if stats is not None:
        stats["nfe"] = n_steps + 1
        stats["n_log_prob"] = n_steps + 1
        stats["acceptance_per_step"] = per_step
        stats["acceptance_rate"] = float(per_step.mean()) if n_steps else float("nan")
    return x


@torch.no_grad()
def sample_annealed_langevin(score_fn, x: torch.Tensor, sigmas, *, eps: float, n_steps_each: int,
                             denoise: bool = True, generator=None, callback=None, stats=None) -> torch.Tensor:
    """Annealed Langevin dynamics, Song & Ermon (2019) Algorithm 1, section 4.3.2.

    For each noise level ``sigma_i`` (largest first) run ``n_steps_each`` Langevin updates on the
    noised score with step ``alpha_i = eps * sigma_i^2 / sigma_L^2``::

        x <- x + alpha_i * score_fn(x, sigma_i) + sqrt(2 alpha_i) * z

    Scaling the step with ``sigma_i^2`` keeps the signal-to-noise ratio of an update the same at
    every level.  Large noise levels fill low-density regions, so the chain crosses between modes
    and finds their relative weights; small levels then sharpen the samples.  With ``denoise=True``
    a final Tweedie step ``x <- x + sigma_L^2 * score_fn(x, sigma_L)`` removes the residual noise of
    the last level (the posterior mean ``E[x_0 | x]`` under ``x = x_0 + sigma_L z``).

    Args:
        score_fn: noise-conditional callable ``(x (N, d), sigma: float) -> (N, d)``.
        x: (N, d) starting points (not modified), e.g. uniform noise or ``sigma_1 * randn``.
        sigmas: (L,) strictly decreasing positive noise levels (see ``geometric_sigmas``).
        eps: base step size, the step used at the smallest level.
        n_steps_each: Langevin steps per level, T.
        denoise: apply the final Tweedie step.
        generator: ``torch.Generator`` or int seed.
        callback: called after each step with ``{"i", "x", "sigma", "denoised", "step_size",
            "level", "denoise"}``: ``i`` counts all steps, ``sigma`` is the noise level whose score
            the step used, ``denoised`` Tweedie's estimate ``x + sigma^2 score_fn(x, sigma)`` at the
            point where that score was evaluated (the state before the step), ``step_size`` the
            step ``alpha_i``, ``level`` the 0-based index of sigma; the final Tweedie step (if
            any) is reported with ``denoise=True`` (``False`` for every Langevin step), and
            there ``denoised`` is the result.
        stats: dict filled with ``"nfe"`` (``L * T``, plus one for the denoising step).

    Returns:
        (N, d) tensor of the final samples.
    """
    check_callable(score_fn, "score_fn", "(x of shape (N, d), sigma: float) -> (N, d)")
    x = check_start(x)
    levels = check_levels(sigmas, "sigmas", order="decreasing", dtype=torch.float64).tolist()
    eps = check_positive(eps, "eps")
    n_steps_each = check_count(n_steps_each, "n_steps_each")
    check_bool(denoise, "denoise")
    g = check_generator(generator)
    check_callback_stats(callback, stats)
    sigma_last = levels[-1]
    i = 0
    for level, sigma in enumerate(levels):
        alpha = eps * sigma**2 / sigma_last**2
        noise_scale = math.sqrt(2.0 * alpha)
        for _ in range(n_steps_each):
            s = checked_score(score_fn(x, sigma), x)
            x_new = x + alpha * s + noise_scale * gaussian_like(x, g)
            if callback is not None:
                callback({"i": i, "x": x_new, "sigma": sigma, "denoised": x + sigma**2 * s, "step_size": alpha,
                          "level": level, "denoise": False})
            x = x_new
            i += 1
    nfe = i
    if denoise:
        step = sigma_last**2
        x = x + step * checked_score(score_fn(x, sigma_last), x)
        nfe += 1
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma_last, "denoised": x, "step_size": step,
                      "level": len(levels) - 1, "denoise": True})
    if stats is not None:
        stats["nfe"] = nfe
    return x
