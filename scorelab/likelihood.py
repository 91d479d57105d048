"""Exact log-likelihood through the probability-flow ODE (section 4.5.3).

The probability-flow ODE ``dx/dt = v(x, t) = f(t) x - g(t)^2 s(x, t) / 2`` is a continuous
normalising flow: along a solution, ``d log p_t(x(t)) / dt = -div v(x(t), t)`` (the
instantaneous change of variables of Chen et al. 2018).  Integrating the pair
``(x, int div v dt)`` from the data at ``t_eps`` up to ``T`` therefore gives::

    log p_{t_eps}(x) = log p_T(x(T)) + int_{t_eps}^{T} div v(x(t), t) dt

with ``p_T`` replaced by the SDE's prior (``sde.prior_logp``).  With the exact score of a
toy mixture this reproduces the true log-density, which is what the tests check.

The divergence is either exact (one autograd pass per dimension, fine for 2-D toys) or
Hutchinson's unbiased estimate ``E_z[z^T (dv/dx) z]`` with one vector-Jacobian product
(Grathwohl et al. 2019, FFJORD), the probes ``z`` drawn once and held fixed along the
trajectory so the ODE stays smooth for the adaptive solver.
"""

from __future__ import annotations

import math

import torch

from ._checks import (
    check_batch,
    check_bool,
    check_callable,
    check_count,
    check_generator,
    check_output,
    check_positive,
    check_t_eps,
    check_type,
)
from ._ode import solve_ode
from ._random import probes as draw_probes
from .losses import score_divergence
from .sdes import SDE

__all__ = ["log_likelihood", "batched_divergence", "bits_per_dim", "dequantize"]


def log_likelihood(score_fn, x: torch.Tensor, sde: SDE, *, exact: bool = True, probe: str = "rademacher",
                   n_probes: int = 1, t_eps: float = 1e-5, solver: str = "scipy", method: str | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5, prior_logp=None, generator=None,
                   stats: dict | None = None, batched: bool = False) -> torch.Tensor:
    """Log-likelihood ``log p_{t_eps}(x)`` by the probability-flow ODE, Song et al. (2021) section D.2 (our 4.5.3).

    Integrates ``d/dt [x, delta] = [v(x, t), div v(x, t)]`` from ``t_eps`` to ``T`` and returns
    ``sde.prior_logp(x(T)) + delta(T)`` in nats.  The result is the density of the data
    *blurred to time t_eps*; a small ``t_eps`` makes that blur negligible (for the VP SDE,
    ``sigma(1e-5) ~ 1e-3``).  The divergence is ``scorelab.losses.score_divergence`` of the
    velocity ``v``.

    Args:
        score_fn: time-conditional score ``(x (N, ...), t (N,)) -> shaped like x``, differentiable
            in x (``scorelab.sdes.exact_score_fn`` is).
        x: (N, d) points or (N, C, H, W) images; computed in x's dtype (use float64 for
            tight tolerances).
        sde: the forward SDE.
        exact: exact divergence (D backward passes per evaluation) if True, else Hutchinson.
        probe: ``"rademacher"`` or ``"gaussian"`` Hutchinson probes.
        n_probes: probes averaged per evaluation (fixed along the trajectory).
        t_eps: start time of the integration.
        solver: ``"scipy"`` (``solve_ivp``, ``method`` RK45 by default) or ``"torchdiffeq"``
            (``odeint``, ``method`` dopri5 by default).
        rtol, atol: solver tolerances (1e-5 as in the paper's code).
        prior_logp: callable z (N, ...) -> (N,) used for ``log p_T`` instead of ``sde.prior_logp``.
            Passing the exact ``p_T`` of a toy (``sde.marginal(dist, sde.T).log_prob``) removes
            the prior mismatch, leaving only the solver's error.
        generator: ``torch.Generator`` or int seed for the probes.
        stats: filled with ``"nfe"``, ``"prior_logp"`` (N,), ``"delta_logp"`` (N,), ``"z"`` (x(T)).
        batched: with ``exact``, the divergence from one forward and one backward pass through a
            batch of D copies of x (``batched_divergence``), far faster than D passes for small
            images; the score must treat the examples of a batch independently.

    Returns:
        (N,) log-likelihoods in nats, float64.
    """
    check_type(sde, SDE, "sde", "a scorelab SDE (VESDE, VPSDE, SubVPSDE)")
    check_callable(score_fn, "score_fn", "(x (N, ...), t (N,)) -> tensor shaped like x")
    x = check_batch(x, images=True).detach()
    t_eps = check_t_eps(t_eps, sde.T)
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    check_bool(exact, "exact")
    n_probes = check_count(n_probes, "n_probes", minimum=1)
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"stats: expected None or a dict to fill, got {type(stats).__name__}")
    if prior_logp is None:
        prior_logp = sde.prior_logp
    else:
        check_callable(prior_logp, "prior_logp", "z (N, ...) -> (N,) log-densities")
    probes = None if exact else draw_probes((n_probes,) + tuple(x.shape), probe, check_generator(generator), x)
    n = x.shape[0]
    nfe = 0

    def rhs(t: float, state):
        nonlocal nfe
        nfe += 1
        xt, _ = state
        t = min(max(t, t_eps), sde.T)
        tt = torch.tensor([t], dtype=torch.float64)
        f, g = float(sde.drift_coef(tt)), float(sde.diffusion_coef(tt))
        t_one = torch.tensor(t, dtype=x.dtype, device=x.device)

        def velocity(y):
            s = check_output(score_fn(y, t_one.expand(y.shape[0])), y.shape, "score_fn", " (same as x)")
            return f * y - (0.5 * g * g) * s

        if batched and exact:
            return batched_divergence(velocity, xt)
        return score_divergence(velocity, xt, probes=probes)

    [(z, delta)] = solve_ode(rhs, (x, torch.zeros(n, dtype=x.dtype, device=x.device)), t_eps, sde.T,
                             solver=solver, method=method, rtol=rtol, atol=atol)
    z, delta = z.double(), delta.double()
    prior = check_output(prior_logp(z), (n,), "prior_logp").double()
    if stats is not None:
        stats.update(nfe=nfe, prior_logp=prior, delta_logp=delta, z=z)
    return prior + delta


def batched_divergence(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fn(x), div fn(x))`` exactly, with one forward and one backward pass through a batch of D copies
    of x (copy i differentiates output i; ``D = x[0].numel()``).  ``fn`` maps (M, ...) to (M, ...) and must
    treat examples independently (no batch statistics).  Same result as D sequential backward passes
    (``scorelab.losses.score_divergence``), much faster for images of a few dozen pixels."""
    n, d = x.shape[0], x[0].numel()
    with torch.enable_grad():
        xg = x.detach().unsqueeze(0).expand(d, *x.shape).reshape(d * n, *x.shape[1:]).requires_grad_(True)
        v = check_output(fn(xg), xg.shape, "fn", " (same as x)")
        eye = torch.arange(d, device=x.device)
        diag = v.reshape(d, n, d)[eye, :, eye]  # (d, n): output i of copy i
        (grad,) = torch.autograd.grad(diag.sum(), xg)
        div = grad.reshape(d, n, d)[eye, :, eye].sum(0)
    return v.detach()[:n], div.detach()


def bits_per_dim(log_p: torch.Tensor, dim: int, *, n_bins: int = 256, data_scale: float = 1.0) -> torch.Tensor:
    """Bits per dimension of discrete data from a continuous log-density in nats (4.5.3): (N,) -> (N,).

    Discrete data with ``n_bins`` levels per dimension are dequantised to
    ``u = (k + U[0, 1)) / n_bins`` in ``[0, 1)`` (``dequantize``), and the model sees
    ``y = shift + data_scale * u`` (``data_scale = 1`` for data in [0, 1], 2 for [-1, 1]).
    The probability of a bin is at least ``E_U[p_u(u)] / n_bins^D`` by Jensen, so::

        bpd = (-log p_y(y) - D log(data_scale) + D log(n_bins)) / (D log 2)

    i.e. ``-log p / (D ln 2) + 8`` for 8-bit images in [0, 1] and ``+ 7`` for [-1, 1]: the
    offsets of the paper's code.
    """
    dim = check_count(dim, "dim", minimum=1)
    n_bins = check_count(n_bins, "n_bins", minimum=2)
    data_scale = check_positive(data_scale, "data_scale")
    return (-log_p - dim * math.log(data_scale) + dim * math.log(n_bins)) / (dim * math.log(2))


def dequantize(k: torch.Tensor, *, n_bins: int = 256, generator=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniform dequantisation ``(k + U[0, 1)) / n_bins`` of integers k in ``{0, ..., n_bins - 1}``,
    shape kept (4.5.3)."""
    check_type(k, torch.Tensor, "k", "a torch.Tensor of integer levels")
    n_bins = check_count(n_bins, "n_bins", minimum=2)
    kf = k.to(dtype or torch.get_default_dtype())
    if not bool((kf == kf.round()).all()) or bool((kf < 0).any()) or bool((kf >= n_bins).any()):
        raise ValueError(f"k: expected integers in [0, {n_bins - 1}]")
    u = torch.rand(k.shape, generator=check_generator(generator), dtype=kf.dtype, device=k.device)
    return (kf + u) / n_bins
