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

from ._checks import check_generator, check_positive
from .sdes import SDE, _check_x

__all__ = ["divergence", "log_likelihood", "bits_per_dim", "dequantize"]

_SCIPY_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


def divergence(fn, x: torch.Tensor, *, probes: torch.Tensor | None = None,
               batched: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fn(x), div fn(x))`` for a map ``fn`` from (N, ...) to the same shape; the divergence is (N,) (4.5.3).

    Exact (one backward pass per dimension ``D = x[0].numel()``) when ``probes`` is None;
    otherwise Hutchinson's estimate ``mean_p z_p . (J^T z_p)`` over the (P, N, ...) probes,
    unbiased when ``E[z z^T] = I`` (Gaussian or Rademacher probes).

    ``batched=True`` computes the exact divergence with one forward and one backward pass through a
    batch of D copies of x (copy i differentiates output i), far faster for an image of 64 pixels
    than D sequential passes; ``fn`` must then treat the examples of a batch independently.
    """
    if batched and probes is None:
        return _batched_divergence(fn, x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        v = fn(xg)
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"fn: expected an output of shape {tuple(x.shape)} (same as x), got {got}")
        n = x.shape[0]
        if probes is None:
            vf = v.reshape(n, -1)
            d = vf.shape[1]
            div = torch.zeros(n, dtype=x.dtype, device=x.device)
            for i in range(d):
                (gi,) = torch.autograd.grad(vf[:, i].sum(), xg, retain_graph=i < d - 1)
                div = div + gi.reshape(n, -1)[:, i]
        else:
            div = torch.zeros(n, dtype=x.dtype, device=x.device)
            for p, z in enumerate(probes):
                (vjp,) = torch.autograd.grad((v * z).sum(), xg, retain_graph=p < len(probes) - 1)
                div = div + (vjp * z).reshape(n, -1).sum(-1)
            div = div / len(probes)
    return v.detach(), div.detach()


def _batched_divergence(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = x.shape[0], x[0].numel()
    with torch.enable_grad():
        xg = x.detach().unsqueeze(0).expand(d, *x.shape).reshape(d * n, *x.shape[1:]).requires_grad_(True)
        v = fn(xg)
        if not isinstance(v, torch.Tensor) or v.shape != xg.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"fn: expected an output of shape {tuple(xg.shape)} (same as x), got {got}")
        eye = torch.arange(d, device=x.device)
        diag = v.reshape(d, n, d)[eye, :, eye]  # (d, n): output i of copy i
        (grad,) = torch.autograd.grad(diag.sum(), xg)
        div = grad.reshape(d, n, d)[eye, :, eye].sum(0)
    return v.detach()[:n], div.detach()


def _probes(kind: str, n_probes: int, x: torch.Tensor, g) -> torch.Tensor:
    shape = (n_probes,) + tuple(x.shape)
    dev = x.device if g is None else g.device  # a CPU generator draws on the CPU, then the probes move
    if kind == "gaussian":
        return torch.randn(shape, generator=g, dtype=x.dtype, device=dev).to(x.device)
    if kind == "rademacher":
        return (torch.randint(0, 2, shape, generator=g, device=dev).to(x.dtype) * 2 - 1).to(x.device)
    raise ValueError(f"probe: expected 'gaussian' or 'rademacher', got {kind!r}")


def log_likelihood(score_fn, x: torch.Tensor, sde: SDE, *, exact: bool = True, probe: str = "rademacher",
                   n_probes: int = 1, t_eps: float = 1e-5, solver: str = "scipy", method: str | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5, prior_logp=None, generator=None,
                   stats: dict | None = None, batched: bool = False) -> torch.Tensor:
    """Log-likelihood ``log p_{t_eps}(x)`` by the probability-flow ODE, Song et al. (2021) section D.2 (our 4.5.3).

    Integrates ``d/dt [x, delta] = [v(x, t), div v(x, t)]`` from ``t_eps`` to ``T`` and returns
    ``sde.prior_logp(x(T)) + delta(T)`` in nats.  The result is the density of the data
    *blurred to time t_eps*; a small ``t_eps`` makes that blur negligible (for the VP SDE,
    ``sigma(1e-5) ~ 1e-3``).

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
        batched: exact divergence through one batch of D copies (``divergence(..., batched=True)``);
            for networks that treat examples independently.

    Returns:
        (N,) log-likelihoods in nats, float64.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
    if not callable(score_fn):
        raise TypeError("score_fn: expected a callable (x (N, ...), t (N,)) -> tensor shaped like x")
    x = _check_x(x).detach()
    t_eps = check_positive(t_eps, "t_eps")
    if not t_eps < sde.T:
        raise ValueError(f"t_eps: expected 0 < t_eps < T = {sde.T}, got {t_eps}")
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    if not isinstance(exact, bool):
        raise TypeError(f"exact: expected a bool, got {type(exact).__name__}")
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes: expected a positive int, got {n_probes!r}")
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"stats: expected None or a dict to fill, got {type(stats).__name__}")
    if prior_logp is None:
        prior_logp = sde.prior_logp
    elif not callable(prior_logp):
        raise TypeError("prior_logp: expected None or a callable z (N, ...) -> (N,) log-densities")
    probes = None if exact else _probes(probe, n_probes, x, check_generator(generator))
    shape, dtype, n = x.shape, x.dtype, x.shape[0]
    size = x.numel()
    nfe = 0

    def rhs_torch(t: float, xt: torch.Tensor):
        nonlocal nfe
        nfe += 1
        t = min(max(t, t_eps), sde.T)
        tt = torch.tensor([t], dtype=torch.float64)
        f, g = float(sde.drift_coef(tt)), float(sde.diffusion_coef(tt))
        t_one = torch.tensor(t, dtype=dtype, device=x.device)
        return divergence(lambda y: f * y - (0.5 * g * g) * score_fn(y, t_one.expand(y.shape[0])), xt,
                          probes=probes, batched=batched)

    if solver == "scipy":
        import numpy as np
        from scipy.integrate import solve_ivp

        method = method or "RK45"
        if method not in _SCIPY_METHODS:
            raise ValueError(f"method: expected one of {_SCIPY_METHODS} for solver='scipy', got {method!r}")

        def rhs(t, y):
            xt = torch.from_numpy(y[:size]).reshape(shape).to(dtype=dtype, device=x.device)
            v, div = rhs_torch(t, xt)
            return np.concatenate([v.reshape(-1).double().cpu().numpy(), div.double().cpu().numpy()])

        y0 = np.concatenate([x.reshape(-1).double().cpu().numpy(), np.zeros(n)])
        sol = solve_ivp(rhs, (t_eps, sde.T), y0, method=method, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        yT = torch.from_numpy(sol.y[:, -1])
        z, delta = yT[:size].reshape(shape), yT[size:]
    elif solver == "torchdiffeq":
        try:
            from torchdiffeq import odeint
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ImportError("solver='torchdiffeq' needs the torchdiffeq package") from exc

        def func(t, state):
            xt, _ = state
            return rhs_torch(float(t), xt)

        options = {"step_t": torch.tensor([sde.T], dtype=torch.float64)} if (method or "dopri5") in (
            "dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun") else None
        xs, ds = odeint(func, (x, torch.zeros(n, dtype=dtype, device=x.device)),
                        torch.tensor([t_eps, sde.T], dtype=torch.float64), rtol=rtol, atol=atol,
                        method=method or "dopri5", options=options)
        z, delta = xs[-1].double(), ds[-1].double()
    else:
        raise ValueError(f"solver: expected 'scipy' or 'torchdiffeq', got {solver!r}")

    prior = prior_logp(z.to(x.device))
    if not isinstance(prior, torch.Tensor) or prior.shape != (n,):
        raise ValueError(f"prior_logp: expected an output of shape ({n},), got {getattr(prior, 'shape', type(prior))}")
    prior = prior.double().cpu()
    z, delta = z.cpu(), delta.cpu()
    if stats is not None:
        stats.update(nfe=nfe, prior_logp=prior, delta_logp=delta, z=z)
    return prior + delta


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
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim: expected the positive int number of dimensions per example, got {dim!r}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins: expected an int >= 2, got {n_bins!r}")
    data_scale = check_positive(data_scale, "data_scale")
    return (-log_p - dim * math.log(data_scale) + dim * math.log(n_bins)) / (dim * math.log(2))


def dequantize(k: torch.Tensor, *, n_bins: int = 256, generator=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniform dequantisation ``(k + U[0, 1)) / n_bins`` of integers k in ``{0, ..., n_bins - 1}``,
    shape kept (4.5.3)."""
    if not isinstance(k, torch.Tensor):
        raise TypeError(f"k: expected a torch.Tensor of integer levels, got {type(k).__name__}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins: expected an int >= 2, got {n_bins!r}")
    kf = k.to(dtype or torch.get_default_dtype())
    if not bool((kf == kf.round()).all()) or bool((kf < 0).any()) or bool((kf >= n_bins).any()):
        raise ValueError(f"k: expected integers in [0, {n_bins - 1}]")
    u = torch.rand(k.shape, generator=check_generator(generator), dtype=kf.dtype, device=k.device)
    return (kf + u) / n_bins
