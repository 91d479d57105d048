"""Score-matching objectives: learning a score without knowing the density (section 4.2).

Every loss takes a score callable and a batch of data points and returns a scalar tensor
that is differentiable in the callable's parameters, so it can be handed straight to
``scorelab.training.train``.

- ``explicit_score_matching_loss``: Hyvärinen (2005), ``E[tr(ds/dx) + 1/2 |s|^2]`` with the
  trace computed exactly (one backward pass per dimension, section 4.2.1).
- ``denoising_score_matching_loss``: Vincent (2011), ``1/2 E|s(x + sigma eps) + eps/sigma|^2``
  for one noise level (section 4.2.2).
- ``sliced_score_matching_loss``: Song, Garg, Shi & Ermon (2019), ``E[v^T (ds/dx) v + 1/2 (v^T s)^2]``
  with random projections ``v`` and Jacobian-vector products (section 4.2.3).
- ``ncsn_loss``: Song & Ermon (2019), DSM over a set of noise levels with weight
  ``lambda(sigma) = sigma^2`` (section 4.3.1).
- ``sde_score_matching_loss``: Song et al. (2021), DSM over all times of a forward SDE with
  weight ``lambda(t) = sigma(t)^2`` (section 4.5.1).

``score_divergence`` is the divergence ``tr(ds/dx)`` on its own (the Laplacian of ``log p``
when ``s`` is a score), exact or by Hutchinson's estimator, used by the explicit loss, by the
likelihood (``scorelab.likelihood``) and by the chapters.

Shapes: ``x`` is ``(N, d)``; a score function maps ``(N, d) -> (N, d)`` row by row (no
coupling between examples: the per-dimension backward passes sum over the batch, which
gives per-example derivatives only when each output row depends on its own input row).
The SDE loss and the divergence also take images ``(N, C, H, W)``.
"""

from __future__ import annotations

import torch

from ._checks import (
    check_batch,
    check_callable,
    check_count,
    check_differentiable,
    check_finite,
    check_generator,
    check_levels,
    check_output,
    check_positive,
    check_t_eps,
    check_type,
)
from ._random import gaussian_like, probes
from .sdes import SDE, append_dims

__all__ = [
    "score_divergence",
    "explicit_score_matching_loss",
    "denoising_score_matching_loss",
    "sliced_score_matching_loss",
    "ncsn_loss",
    "sde_score_matching_loss",
]

_SCORE = "mapping (N, d) points to (N, d) scores"


# -- the divergence -----------------------------------------------------------------

def score_divergence(score_fn, x: torch.Tensor, *, probes: torch.Tensor | None = None, create_graph: bool = False):
    """Score and its divergence ``tr(ds/dx)``: exact, or Hutchinson's estimate (4.2.1, 4.5.3).

    For a score ``s = grad log p`` the divergence is the Laplacian ``Delta log p = tr(Hessian)``
    that Hyvärinen's objective needs; for the velocity of the probability-flow ODE it is the
    rate of change of ``log p_t`` (``scorelab.likelihood``).

    - ``probes=None``: exact.  Row ``i`` is ``sum_j d s_j(x_i) / d x_ij``, from ``D`` vector-Jacobian
      products with the unit vectors ``e_j`` (``D = x[0].numel()``); the cost grows linearly with D.
    - ``probes`` (P, N, ...): Hutchinson's estimate ``mean_p z_p . (J^T z_p)``, one vector-Jacobian
      product per probe, unbiased when ``E[z z^T] = I`` (Gaussian or Rademacher probes,
      ``scorelab._random.probes``).

    Args:
        score_fn: callable ``(N, ...) -> (N, ...)`` (same shape), differentiable, acting row by row.
        x: (N, d) points or (N, C, H, W) images.
        probes: optional (P,) + x.shape probe directions.
        create_graph: keep the graph of the derivatives (needed to train through them); without
            it both results are detached.

    Returns:
        ``(s, div)``: the score, shaped like x, and its divergence ``(N,)``.
    """
    check_callable(score_fn, "score_fn", _SCORE)
    x = check_batch(x, images=True)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        s = check_differentiable(check_output(score_fn(xg), xg.shape, "score_fn", " (same as its input)"))
        n = x.shape[0]
        div = torch.zeros(n, dtype=s.dtype, device=s.device)
        if probes is None:
            sf = s.reshape(n, -1)
            d = sf.shape[1]
            for j in range(d):
                (g,) = torch.autograd.grad(sf[:, j].sum(), xg, create_graph=create_graph,
                                           retain_graph=create_graph or j < d - 1)
                div = div + g.reshape(n, -1)[:, j]
        else:
            for p, z in enumerate(probes):
                (vjp,) = torch.autograd.grad((s * z).sum(), xg, create_graph=create_graph,
                                             retain_graph=create_graph or p < len(probes) - 1)
                div = div + (vjp * z).reshape(n, -1).sum(-1)
            div = div / len(probes)
    return (s, div) if create_graph else (s.detach(), div.detach())


# -- section 4.2.1 ------------------------------------------------------------------

def explicit_score_matching_loss(score_fn, x: torch.Tensor) -> torch.Tensor:
    """Hyvärinen's score-matching objective ``E[tr(ds/dx) + 1/2 |s(x)|^2]`` (section 4.2.1).

    Hyvärinen (2005), "Estimation of non-normalized statistical models by score matching":
    integrating by parts turns the Fisher divergence ``1/2 E|s - grad log p|^2`` into this
    expression plus a constant that does not depend on ``s``.  The trace is exact, computed by
    ``score_divergence`` with ``create_graph=True`` so the loss trains; its cost is ``d``
    backward passes.

    Args:
        score_fn: callable ``(N, d) -> (N, d)``, differentiable in x and its parameters.
        x: (N, d) data points.

    Returns:
        A scalar tensor (the batch mean).
    """
    x = check_batch(x)
    s, div = score_divergence(score_fn, x, create_graph=True)
    return (div + 0.5 * (s * s).sum(-1)).mean()


# -- section 4.2.2 ------------------------------------------------------------------

def denoising_score_matching_loss(score_fn, x: torch.Tensor, sigma, *, scale: float = 1.0,
                                  generator=None) -> torch.Tensor:
    """Denoising score matching at one noise level, ``1/2 E|s(x~) + eps/sigma|^2`` (section 4.2.2).

    Vincent (2011), "A connection between score matching and denoising autoencoders".  The
    noisy point is ``x~ = scale * x + sigma * eps`` with ``eps ~ N(0, I)``; the regression target
    ``-eps/sigma`` is the score of the Gaussian kernel ``p(x~ | x)``, and the minimiser over all
    functions is the score of the *noised* law ``p.perturbed(sigma, scale)``, not of ``p``.

    Args:
        score_fn: unconditional callable ``(N, d) -> (N, d)`` (a model for this one sigma).
        x: (N, d) clean data.
        sigma: the noise standard deviation, a positive number.
        scale: multiplies the clean data (1 for variance-exploding noise, ``sqrt(alpha_bar)``
            for the variance-preserving form of the principles text).
        generator: ``torch.Generator`` or int seed for the noise.

    Returns:
        A scalar tensor (the batch mean of ``1/2 |s + eps/sigma|^2``).
    """
    check_callable(score_fn, "score_fn", _SCORE)
    x = check_batch(x)
    if isinstance(sigma, torch.Tensor) and sigma.numel() != 1:
        raise ValueError(f"sigma: expected one noise level (a number), got a tensor of shape {tuple(sigma.shape)}; "
                         "for one sigma per example use ncsn_loss")
    sigma = check_positive(sigma, "sigma")
    scale = check_finite(scale, "scale")
    g = check_generator(generator)
    eps = gaussian_like(x, g)
    x_noisy = scale * x + sigma * eps
    s = check_output(score_fn(x_noisy), x_noisy.shape, "score_fn", " (same as its input)")
    return 0.5 * ((s + eps / sigma) ** 2).sum(-1).mean()


# -- section 4.2.3 ------------------------------------------------------------------

def sliced_score_matching_loss(score_fn, x: torch.Tensor, *, n_projections: int = 1,
                               projection: str = "gaussian", variance_reduced: bool = False,
                               generator=None) -> torch.Tensor:
    """Sliced score matching ``E_x E_v[v^T (ds/dx) v + 1/2 (v^T s)^2]`` (section 4.2.3).

    Song, Garg, Shi & Ermon (2019), "Sliced score matching: a scalable approach to density
    and score estimation".  With ``E[v v^T] = I`` the projected terms are unbiased for
    Hyvärinen's ``tr(ds/dx)`` and ``1/2 |s|^2``, so the expectation over ``v`` equals
    ``explicit_score_matching_loss``; the Jacobian never appears, only one vector-Jacobian
    product ``v^T (ds/dx)`` per projection (``torch.autograd.grad``), whatever ``d`` is.

    ``variance_reduced=True`` (SSM-VR) replaces ``1/2 (v^T s)^2`` by its exact expectation
    ``1/2 |s|^2``.  Each example gets ``n_projections`` independent directions: the batch is
    repeated that many times and handled in one forward and one backward pass.

    Args:
        score_fn: callable ``(N, d) -> (N, d)``, differentiable, acting row by row.
        x: (N, d) data points.
        n_projections: directions per example (M >= 1).
        projection: ``"gaussian"`` (``v ~ N(0, I)``) or ``"rademacher"`` (entries +-1).
        variance_reduced: use the exact ``1/2 |s|^2`` instead of ``1/2 (v^T s)^2``.
        generator: ``torch.Generator`` or int seed for the directions.

    Returns:
        A scalar tensor (mean over examples and projections).
    """
    check_callable(score_fn, "score_fn", _SCORE)
    x = check_batch(x)
    n_projections = check_count(n_projections, "n_projections", minimum=1)
    g = check_generator(generator)
    x_rep = x.detach().repeat(n_projections, 1) if n_projections > 1 else x.detach()
    v = probes(x_rep.shape, projection, g, x_rep, name="projection")
    with torch.enable_grad():
        xg = x_rep.requires_grad_(True)
        s = check_differentiable(check_output(score_fn(xg), xg.shape, "score_fn", " (same as its input)"))
        sv = (s * v).sum(-1)
        (vjp,) = torch.autograd.grad(sv.sum(), xg, create_graph=True)
        vjv = (vjp * v).sum(-1)
        second = 0.5 * (s * s).sum(-1) if variance_reduced else 0.5 * sv**2
        return (vjv + second).mean()


# -- section 4.3.1 ------------------------------------------------------------------

def ncsn_loss(score_fn, x: torch.Tensor, sigmas, *, generator=None) -> torch.Tensor:
    """Multi-scale denoising score matching of NCSN, weight ``lambda(sigma) = sigma^2`` (4.3.1).

    Song & Ermon (2019), "Generative modeling by estimating gradients of the data
    distribution", eq. (6): each example gets a noise level drawn uniformly from ``sigmas``,
    ``x~ = x + sigma eps``, and the loss is
    ``sigma^2 * 1/2 |s(x~, sigma) + eps/sigma|^2 = 1/2 |sigma s(x~, sigma) + eps|^2``, averaged.
    The weight makes every level contribute about equally, since ``|eps/sigma|^2 ~ d/sigma^2``.

    Args:
        score_fn: noise-conditional callable ``score_fn(x (N, d), sigma (N,)) -> (N, d)``.
        x: (N, d) clean data.
        sigmas: (L,) positive noise levels (any order; ``check_levels``).
        generator: ``torch.Generator`` or int seed (draws the levels, then the noise).

    Returns:
        A scalar tensor.
    """
    check_callable(score_fn, "score_fn", "score_fn(x, sigma)")
    x = check_batch(x)
    levels = check_levels(sigmas, "sigmas").to(dtype=x.dtype, device=x.device)
    g = check_generator(generator)
    idx = torch.randint(0, levels.numel(), (x.shape[0],), generator=g, device=x.device)
    sigma = levels[idx]
    eps = gaussian_like(x, g)
    x_noisy = x + sigma[:, None] * eps
    s = check_output(score_fn(x_noisy, sigma), x.shape, "score_fn", " for (x, sigma (N,))")
    return 0.5 * ((sigma[:, None] * s + eps) ** 2).sum(-1).mean()


# -- section 4.5.1 ------------------------------------------------------------------

def sde_score_matching_loss(score_fn, x0: torch.Tensor, sde: SDE, *, t_eps: float = 1e-5,
                            generator=None, t=None, eps=None) -> torch.Tensor:
    """Denoising score matching over all times, Song et al. (2021) eq. 7 with ``lambda = sigma^2`` (4.5.1).

    Draw ``t ~ U(t_eps, T)`` per example and ``x_t = alpha(t) x0 + sigma(t) eps``; the target
    ``-eps / sigma(t)`` is the score of ``p_0t(x_t | x0)``, and the loss is::

        1/2 E |sigma(t) s(x_t, t) + eps|^2

    whose minimiser over all functions is the exact score of ``p_t`` at every t.  With
    ``s = -eps_theta / sigma`` this is DDPM's ``1/2 E |eps - eps_theta|^2``.

    Args:
        score_fn: ``(x (N, ...), t (N,)) -> shaped like x``, differentiable in its parameters.
        x0: (N, ...) clean data (at time 0).
        sde: the forward SDE.
        t_eps: smallest time drawn (the score is singular at t = 0 for point data).
        generator: ``torch.Generator`` or int seed for t and the noise.
        t, eps: optional pre-drawn times (N,) in ``[t_eps, T]`` and noise shaped like x0, used instead
            of drawing them (both or neither); a data-parallel run draws them for the whole batch
            and gives each process its share, so that it computes the same loss as one process.

    Returns:
        A scalar tensor (batch mean).
    """
    check_callable(score_fn, "score_fn", "(x (N, ...), t (N,)) -> tensor shaped like x")
    check_type(sde, SDE, "sde", "a scorelab SDE (VESDE, VPSDE, SubVPSDE)")
    x0 = check_batch(x0, "x0", images=True)
    t_eps = check_t_eps(t_eps, sde.T)
    if (t is None) != (eps is None):
        raise ValueError("t, eps: expected both (pre-drawn times and noise) or neither")
    if t is None:
        g = check_generator(generator)
        t = t_eps + (sde.T - t_eps) * torch.rand(x0.shape[0], generator=g, dtype=x0.dtype, device=x0.device)
        x_t, eps = sde.perturb(x0, t, generator=g)
    else:
        if not isinstance(eps, torch.Tensor) or eps.shape != x0.shape:
            got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
            raise ValueError(f"eps: expected a tensor of shape {tuple(x0.shape)} (same as x0), got {got}")
        mean, std = sde.marginal_prob(x0, t)
        x_t = mean + append_dims(std, x0.ndim) * eps
    s = check_output(score_fn(x_t, t), x0.shape, "score_fn")
    resid = append_dims(sde.sigma(t), x0.ndim) * s + eps
    return 0.5 * resid.reshape(x0.shape[0], -1).pow(2).sum(-1).mean()
